"""ESRGAN (Wang, Yu, Wu, Gu, Liu, Dong, Qiao and Loy, "ESRGAN: Enhanced Super-Resolution Generative
Adversarial Networks", ECCV Workshops (PIRM) 2018): the RRDBNet generator, the VGG-style discriminator and
the relativistic average GAN losses.

Module names follow BasicSR (``conv_first``, ``body.{i}.rdb{1,2,3}.conv{1..5}``, ``conv_body``, ``conv_up1``,
``conv_up2``, ``conv_hr``, ``conv_last``; ``conv{k}_{j}``, ``bn{k}_{j}``, ``linear{1,2}``), so ESRGAN /
Real-ESRGAN checkpoints load with ``strict=True``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.blocks import make_layer


def _scaled_kaiming_(convs: list[nn.Conv2d], scale: float) -> None:
    """Kaiming-normal weights multiplied by ``scale``, zero biases (ESRGAN's initialisation of the dense
    blocks)."""
    for conv in convs:
        nn.init.kaiming_normal_(conv.weight)
        with torch.no_grad():
            conv.weight.mul_(scale)
        if conv.bias is not None:
            nn.init.zeros_(conv.bias)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convolutions (LeakyReLU 0.2 after the first four); ``x + 0.2 * conv5(...)``.

    ``(N, num_feat, H, W) -> (N, num_feat, H, W)``; conv ``k`` sees ``num_feat + (k-1) * num_grow_ch``
    channels.
    """

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)
        _scaled_kaiming_([self.conv1, self.conv2, self.conv3, self.conv4, self.conv5], 0.1)

    def forward(self, x: Tensor) -> Tensor:
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(self.lrelu(conv(torch.cat(feats, 1))))
        return x + 0.2 * self.conv5(torch.cat(feats, 1))


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks in sequence, ``x + 0.2 * rdb3(rdb2(rdb1(x)))``."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: Tensor) -> Tensor:
        return x + 0.2 * self.rdb3(self.rdb2(self.rdb1(x)))


class RRDBNet(nn.Module):
    """ESRGAN generator: Conv 3x3 -> ``num_block`` RRDBs -> Conv 3x3 (+ long skip) -> two (nearest x2 ->
    Conv 3x3 -> LeakyReLU) stages -> Conv 3x3 -> LeakyReLU -> Conv 3x3.

    ``(N, num_in_ch, H, W) -> (N, num_out_ch, s*H, s*W)`` for scale 4 and 2. At x2 the input is first
    pixel-unshuffled by 2 (``(N, C, H, W) -> (N, 4C, H/2, W/2)``, so ``conv_first`` takes ``4 * num_in_ch``
    channels) and the same two x2 stages follow, as in Real-ESRGAN's x2 model: the x2 network has the x4
    network's layout and loads Real-ESRGAN's ``RealESRGAN_x2plus`` weights. An odd height or width is padded
    by one replicated row/column before the unshuffle and the output cropped back to ``2H x 2W``.
    Paper configuration (64 features, 23 RRDBs, growth 32): 16,697,987 parameters at x4 (ESRGAN's ~16.7M).
    """

    def __init__(self, scale: int = 4, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64,
                 num_block: int = 23, num_grow_ch: int = 32) -> None:
        super().__init__()
        if scale not in (2, 4):
            raise ValueError(f"RRDBNet supports scales 2 and 4, not {scale}")
        self.scale = scale
        self.num_in_ch = num_in_ch
        first_in = num_in_ch * 4 if scale == 2 else num_in_ch
        self.conv_first = nn.Conv2d(first_in, num_feat, 3, 1, 1)
        self.body = make_layer(lambda: RRDB(num_feat, num_grow_ch), num_block)
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_up2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.num_in_ch:
            raise ValueError(f"RRDBNet expects (N, {self.num_in_ch}, H, W); got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if self.scale == 2:
            x = F.pad(x, (0, w % 2, 0, h % 2), mode="replicate") if h % 2 or w % 2 else x
            x = F.pixel_unshuffle(x, 2)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(F.interpolate(feat, scale_factor=2, mode="nearest")))
        feat = self.lrelu(self.conv_up2(F.interpolate(feat, scale_factor=2, mode="nearest")))
        out = self.conv_last(self.lrelu(self.conv_hr(feat)))
        return out[..., : self.scale * h, : self.scale * w]


class VGGStyleDiscriminator(nn.Module):
    """ESRGAN's discriminator (as in BasicSR): five stages of (Conv 3x3 s1, Conv 4x4 s2), batch norm after
    every convolution but the first, LeakyReLU 0.2; channels ``nf, nf, 2nf, 4nf, 8nf, 8nf``; then
    Linear(8nf*4*4 -> 100), LeakyReLU, Linear(100 -> 1).

    ``(N, num_in_ch, S, S) -> (N, 1)`` raw logits (no sigmoid), ``S = input_size`` = 128 (ESRGAN's patch size)
    or 256 (one more stage). With ``num_feat=64`` and S=128: 14,499,401 parameters.
    """

    def __init__(self, num_in_ch: int = 3, num_feat: int = 64, input_size: int = 128) -> None:
        super().__init__()
        if input_size not in (128, 256):
            raise ValueError(f"VGGStyleDiscriminator takes 128x128 or 256x256 inputs, not {input_size}")
        self.input_size = input_size
        self.num_in_ch = num_in_ch
        chans = [num_feat, num_feat * 2, num_feat * 4, num_feat * 8, num_feat * 8]
        if input_size == 256:
            chans.append(num_feat * 8)
        self.conv0_0 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.conv0_1 = nn.Conv2d(num_feat, num_feat, 4, 2, 1, bias=False)
        self.bn0_1 = nn.BatchNorm2d(num_feat)
        for k in range(1, len(chans)):
            self.add_module(f"conv{k}_0", nn.Conv2d(chans[k - 1], chans[k], 3, 1, 1, bias=False))
            self.add_module(f"bn{k}_0", nn.BatchNorm2d(chans[k]))
            self.add_module(f"conv{k}_1", nn.Conv2d(chans[k], chans[k], 4, 2, 1, bias=False))
            self.add_module(f"bn{k}_1", nn.BatchNorm2d(chans[k]))
        self.num_stage = len(chans)
        self.linear1 = nn.Linear(num_feat * 8 * 4 * 4, 100)
        self.linear2 = nn.Linear(100, 1)
        self.lrelu = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        size = self.input_size
        if x.dim() != 4 or x.shape[1] != self.num_in_ch or tuple(x.shape[-2:]) != (size, size):
            raise ValueError(f"VGGStyleDiscriminator expects (N, {self.num_in_ch}, {size}, {size}); "
                             f"got {tuple(x.shape)}")
        feat = self.lrelu(self.conv0_0(x))
        feat = self.lrelu(self.bn0_1(self.conv0_1(feat)))
        for k in range(1, self.num_stage):
            for j in (0, 1):
                conv, bn = getattr(self, f"conv{k}_{j}"), getattr(self, f"bn{k}_{j}")
                feat = self.lrelu(bn(conv(feat)))
        return self.linear2(self.lrelu(self.linear1(feat.flatten(1))))


def relativistic_average_logits(real_logits: Tensor, fake_logits: Tensor) -> tuple[Tensor, Tensor]:
    """Relativistic average discriminator logits (Jolicoeur-Martineau, 2018; ESRGAN eq. 1):
    ``(C(x_r) - E[C(x_f)], C(x_f) - E[C(x_r)])``, the expectations taken over the batch."""
    return real_logits - fake_logits.mean(), fake_logits - real_logits.mean()


def relativistic_discriminator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """ESRGAN's ``L_D^Ra = -E[log D_Ra(x_r, x_f)] - E[log(1 - D_Ra(x_f, x_r))]`` with ``D_Ra = sigmoid(.)``,
    from the raw logits ``C(x)``. Pass ``fake_logits`` detached when training the discriminator. (BasicSR's
    ESRGAN model weighs each term by 0.5; this is the paper's sum.)"""
    rel_real, rel_fake = relativistic_average_logits(real_logits, fake_logits)
    return F.softplus(-rel_real).mean() + F.softplus(rel_fake).mean()


def relativistic_generator_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """ESRGAN's ``L_G^Ra = -E[log(1 - D_Ra(x_r, x_f))] - E[log D_Ra(x_f, x_r)]``: the discriminator's loss
    with the roles of real and fake swapped, so the generator gains from both real and generated data."""
    rel_real, rel_fake = relativistic_average_logits(real_logits, fake_logits)
    return F.softplus(rel_real).mean() + F.softplus(-rel_fake).mean()
