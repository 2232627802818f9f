"""Building blocks shared by the models (BasicSR module naming, so official checkpoints load)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def make_layer(block_fn: Callable[[], nn.Module], n: int) -> nn.Sequential:
    """``nn.Sequential`` of ``n`` blocks, each a fresh ``block_fn()`` (state-dict keys ``0..n-1``)."""
    return nn.Sequential(*(block_fn() for _ in range(n)))


class ResidualBlockNoBN(nn.Module):
    """Residual block without batch norm (EDSR, Lim et al. 2017): ``x + res_scale * conv2(relu(conv1(x)))``.

    Shapes ``(N, num_feat, H, W) -> (N, num_feat, H, W)``. Both 3x3 convolutions start from Kaiming-normal
    weights scaled by 0.1 (as BasicSR does), which keeps a deep stack near identity at initialisation.
    """

    def __init__(self, num_feat: int = 64, res_scale: float = 1.0) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight)
            with torch.no_grad():
                conv.weight.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.res_scale * self.conv2(self.relu(self.conv1(x)))


class PixelShuffleUpsampler(nn.Sequential):
    """Sub-pixel upsampling (Shi et al., CVPR 2016): ``(N, C, H, W) -> (N, C, s*H, s*W)``.

    Scales that are powers of two use ``log2(s)`` stages of Conv(C -> 4C, 3x3) + PixelShuffle(2); scale 3
    uses one Conv(C -> 9C) + PixelShuffle(3). ``act`` (a module factory, e.g. LeakyReLU) follows each stage.
    """

    def __init__(self, scale: int, num_feat: int, act: Callable[[], nn.Module] | None = None) -> None:
        if scale >= 2 and scale & (scale - 1) == 0:
            stages = [2] * (scale.bit_length() - 1)
        elif scale == 3:
            stages = [3]
        else:
            raise ValueError(f"PixelShuffleUpsampler supports scales 2^n and 3, not {scale}")
        layers: list[nn.Module] = []
        for s in stages:
            layers += [nn.Conv2d(num_feat, num_feat * s * s, 3, 1, 1), nn.PixelShuffle(s)]
            if act is not None:
                layers.append(act())
        super().__init__(*layers)


def bicubic_upscale(x: Tensor, scale: int) -> Tensor:
    """Bicubic upscaling by an integer factor, ``(N, C, H, W) -> (N, C, s*H, s*W)``, unclamped.

    PyTorch's bicubic (Keys kernel, a = -0.75, half-pixel centres, ``align_corners=False``): the first step
    of the pre-upsampling models (SRCNN, VDSR, DRCN, RED, DRRN), which take the LR image like every other
    model and interpolate inside the module.
    """
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)


def check_image_batch(x: Tensor, num_ch: int, model: str) -> None:
    """Raise a one-line ``ValueError`` unless ``x`` is ``(N, num_ch, H, W)``."""
    if x.dim() != 4 or x.shape[1] != num_ch:
        raise ValueError(f"{model} expects (N, {num_ch}, H, W); got {tuple(x.shape)}")
