"""Losses of the super-resolution literature, as plain functions plus the trainer's weighted sum.

- MSE (SRCNN, ESPCN, VESPCN), L1 (EDSR), Charbonnier ``sqrt((x-y)^2 + eps^2)`` (LapSRN, EDVR, BasicVSR).
- Total variation (anisotropic, mean absolute forward difference).
- VESPCN's motion-compensation terms (Caballero et al., CVPR 2017, Eq. 6): warped neighbours vs the centre
  frame (MSE) and a Huber smoothness of the flow, from ``models.video.vespcn``.
- Perceptual loss on VGG19 ``conv5_4`` features before activation (ESRGAN; SRGAN used after activation)
  and a standard GAN loss with a small patch discriminator -- these need VGG19 weights on disk
  (``loss.vgg_weights``); nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vsr_pipeline.train.config import LossConfig, TrainConfigError

__all__ = [
    "PatchDiscriminator",
    "VGG19Features",
    "charbonnier",
    "gan_loss",
    "pixel_loss",
    "total_variation",
]


def charbonnier(x: Tensor, y: Tensor, eps: float = 1e-3) -> Tensor:
    """Mean of ``sqrt((x - y)^2 + eps^2)`` (a differentiable L1)."""
    return torch.sqrt((x - y).square() + eps * eps).mean()


def pixel_loss(kind: str, x: Tensor, y: Tensor, eps: float = 1e-3) -> Tensor:
    """``kind`` = mse | l1 | charbonnier."""
    if kind == "mse":
        return F.mse_loss(x, y)
    if kind == "l1":
        return F.l1_loss(x, y)
    if kind == "charbonnier":
        return charbonnier(x, y, eps)
    raise ValueError(f"unknown pixel loss {kind!r}")


def total_variation(x: Tensor) -> Tensor:
    """Anisotropic total variation: mean |horizontal difference| + mean |vertical difference|."""
    return (x[..., :, 1:] - x[..., :, :-1]).abs().mean() + (x[..., 1:, :] - x[..., :-1, :]).abs().mean()


# VGG19 convolution widths ("M" = 2x2 max-pool), torchvision's ``vgg19().features`` layout.
_VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]


class VGG19Features(nn.Module):
    """VGG19 ``features`` up to ``conv5_4`` (before its ReLU), ImageNet-normalised input in ``[0, 1]``.

    Keys match torchvision's ``vgg19().features`` (``features.0.weight`` ... ``features.34.bias``) so its
    checkpoint loads once the ``features.`` prefix is kept; frozen.
    """

    def __init__(self, weights: str | Path) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        ch = 3
        for v in _VGG19:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(ch, int(v), 3, 1, 1), nn.ReLU(inplace=False)]
                ch = int(v)
        self.features = nn.Sequential(*layers[:-1])  # stop before the last ReLU (conv5_4 pre-activation)
        path = Path(weights).expanduser()
        if not path.is_file():
            raise TrainConfigError(
                f"perceptual/adversarial losses need VGG19 weights on disk; {path} does not exist. "
                "Nothing is downloaded: put torchvision's vgg19 ImageNet checkpoint (or a safetensors copy) "
                "at that path and set loss.vgg_weights, or set loss.perceptual and loss.adversarial to 0"
            )
        from models.weights import read_state_dict

        state = {k: v for k, v in read_state_dict(path).items() if k.startswith("features.")}
        missing, _ = self.load_state_dict(state, strict=False)
        if missing:
            raise TrainConfigError(f"{path}: not a VGG19 checkpoint (missing {missing[0]} ...)")
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: Tensor) -> Tensor:
        return self.features((x - self.mean) / self.std)


class PatchDiscriminator(nn.Module):
    """Small VGG-style patch discriminator (SRGAN's layout, strided 3x3 convolutions, LeakyReLU 0.2, no
    dense head): ``(N, 3, H, W) -> (N, 1, H/16, W/16)`` real/fake logits."""

    def __init__(self, num_feat: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, num_feat, 3, 1, 1), nn.LeakyReLU(0.2, True)]
        ch = num_feat
        for i in range(4):
            out = num_feat * 2 ** min(i + 1, 3)
            layers += [
                nn.Conv2d(ch, out, 4, 2, 1),
                nn.LeakyReLU(0.2, True),
                nn.Conv2d(out, out, 3, 1, 1),
                nn.LeakyReLU(0.2, True),
            ]
            ch = out
        layers.append(nn.Conv2d(ch, 1, 3, 1, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def gan_loss(logits: Tensor, real: bool) -> Tensor:
    """Vanilla GAN (binary cross-entropy on logits) toward ``real``."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


class GeneratorLoss(nn.Module):
    """The weighted sum a config asks for; ``forward(sr, hr, aux, disc)`` -> ``(total, terms)``.

    ``aux`` is VESPCN's auxiliary output (or None); ``disc`` the discriminator when ``adversarial > 0``.
    """

    def __init__(self, cfg: LossConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # SRGAN/ESRGAN train the adversarial term together with the perceptual one: both need VGG19.
        needs_vgg = cfg.perceptual > 0 or cfg.adversarial > 0
        self.vgg = VGG19Features(cfg.vgg_weights or "~/.cache/vsr-data/vgg19.pth") if needs_vgg else None

    def forward(
        self, sr: Tensor, hr: Tensor, aux: object = None, disc: nn.Module | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        c = self.cfg
        pix = pixel_loss(c.pixel, sr, hr, c.charbonnier_eps)
        total = c.pixel_weight * pix
        terms = {c.pixel: float(pix.detach())}
        if c.tv > 0:
            tv = total_variation(sr)
            total = total + c.tv * tv
            terms["tv"] = float(tv.detach())
        if aux is not None and (c.motion > 0 or c.smoothness > 0):
            from models.video.vespcn import huber_smoothness

            k = aux.warped.shape[1]  # type: ignore[attr-defined]
            centre = aux.centre[:, None].expand_as(aux.warped)  # type: ignore[attr-defined]
            warp = sum(F.mse_loss(aux.warped[:, i], centre[:, i]) for i in range(k))  # type: ignore[attr-defined]
            smooth = sum(huber_smoothness(aux.flows[:, i]) for i in range(k))  # type: ignore[attr-defined]
            total = total + c.motion * warp + c.smoothness * smooth
            terms["motion"] = float(warp.detach())  # type: ignore[union-attr]
            terms["smoothness"] = float(smooth.detach())  # type: ignore[union-attr]
        if self.vgg is not None and c.perceptual > 0:
            perc = F.l1_loss(self.vgg(sr), self.vgg(hr).detach())
            total = total + c.perceptual * perc
            terms["perceptual"] = float(perc.detach())
        if c.adversarial > 0 and disc is not None:
            adv = gan_loss(disc(sr), True)
            total = total + c.adversarial * adv
            terms["adversarial"] = float(adv.detach())
        terms["total"] = float(total.detach())
        return total, terms
