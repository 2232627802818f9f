"""EDSR and MDSR (Lim, Son, Kim, Nah and Lee, "Enhanced Deep Residual Networks for Single Image
Super-Resolution", CVPR Workshops (NTIRE) 2017).

Both work on ``(x - mean) * 255``: the input is shifted by the DIV2K RGB mean and brought to the 0..255 range
the papers train in, and the output is mapped back. The mean is a non-persistent buffer (not in the state
dict), so BasicSR's EDSR checkpoints (``conv_first``, ``body.{i}.conv{1,2}``, ``conv_after_body``,
``upsample.{0,2}``, ``conv_last``) load with ``strict=True``. The mean is subtracted only when
``num_in_ch == 3`` and added back only when ``num_out_ch == 3``; other channel counts (stacked frames,
features of a host video model) are only scaled by ``img_range``: the host normalises them itself.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.blocks import PixelShuffleUpsampler, ResidualBlockNoBN, make_layer

#: mean of the DIV2K training images, RGB in [0, 1] (the value the EDSR authors and BasicSR use)
DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


def check_input(x: Tensor, num_in_ch: int, name: str) -> None:
    """Raise ``ValueError`` unless ``x`` is ``(N, num_in_ch, H, W)``."""
    if x.dim() != 4 or x.shape[1] != num_in_ch:
        raise ValueError(f"{name} expects (N, {num_in_ch}, H, W); got {tuple(x.shape)}")


class _MeanShift(nn.Module):
    """Input/output normalisation shared by EDSR and MDSR (see the module docstring)."""

    mean: Tensor

    def _init_mean(self, num_in_ch: int, num_out_ch: int, img_range: float,
                   rgb_mean: tuple[float, float, float]) -> None:
        self.img_range = img_range
        self.sub_mean = num_in_ch == 3
        self.add_mean = num_out_ch == 3
        self.register_buffer("mean", torch.tensor(rgb_mean, dtype=torch.float32).view(1, 3, 1, 1),
                             persistent=False)

    def _normalise(self, x: Tensor) -> Tensor:
        if self.sub_mean:
            x = x - self.mean.to(x.dtype)
        return x * self.img_range

    def _denormalise(self, x: Tensor) -> Tensor:
        x = x / self.img_range
        if self.add_mean:
            x = x + self.mean.to(x.dtype)
        return x


class EDSR(_MeanShift):
    """EDSR: Conv 3x3 -> ``num_block`` residual blocks without batch norm (``x + res_scale *
    conv(relu(conv))``) -> Conv 3x3, plus the long skip from the first conv -> sub-pixel upsampler -> Conv
    3x3.

    ``(N, num_in_ch, H, W) -> (N, num_out_ch, s*H, s*W)``, scales 2, 3, 4 (any power of two, and 3).
    Paper configurations: EDSR with 256 features, 32 blocks and residual scaling 0.1 (43M parameters in the
    paper's Table 1; 43,089,923 here at x4) and the baseline with 64 features, 16 blocks, no scaling (1.5M;
    1,517,571 here at x4).
    """

    def __init__(self, scale: int = 4, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64,
                 num_block: int = 16, res_scale: float = 1.0, img_range: float = 255.0,
                 rgb_mean: tuple[float, float, float] = DIV2K_RGB_MEAN) -> None:
        super().__init__()
        self.scale = scale
        self.num_in_ch = num_in_ch
        self._init_mean(num_in_ch, num_out_ch, img_range, rgb_mean)
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = make_layer(lambda: ResidualBlockNoBN(num_feat, res_scale), num_block)
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = PixelShuffleUpsampler(scale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        check_input(x, self.num_in_ch, "EDSR")
        feat = self.conv_first(self._normalise(x))
        feat = feat + self.conv_after_body(self.body(feat))
        return self._denormalise(self.conv_last(self.upsample(feat)))


class PreProcessBlock(nn.Module):
    """MDSR's scale-specific residual block: ``x + conv2(relu(conv1(x)))`` with 5x5 kernels, same shape."""

    def __init__(self, num_feat: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 5, 1, 2)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 5, 1, 2)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.relu(self.conv1(x)))


class MDSR(_MeanShift):
    """MDSR, the multi-scale EDSR: Conv 3x3 -> per-scale pre-processing (two 5x5 residual blocks) -> shared
    trunk of ``num_block`` residual blocks + Conv 3x3 with the long skip -> per-scale sub-pixel upsampler ->
    Conv 3x3.

    One set of parameters serves x2, x3 and x4: ``pre_process.{0,1,2}`` and ``upsample.{0,1,2}`` are the x2,
    x3 and x4 branches, and all of them are always built, so a state dict saved from ``MDSR(scale=2)`` loads
    strictly into ``MDSR(scale=4)``. ``scale`` only picks the branch ``forward`` uses (``forward(x,
    scale=s)`` overrides it).
    ``(N, num_in_ch, H, W) -> (N, num_out_ch, s*H, s*W)``. Paper configuration: 64 features, 80 blocks, no
    residual scaling: 8.0M parameters in the paper's Table 1 (7,953,987 here).
    """

    SCALES = (2, 3, 4)

    def __init__(self, scale: int = 4, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64,
                 num_block: int = 80, res_scale: float = 1.0, img_range: float = 255.0,
                 rgb_mean: tuple[float, float, float] = DIV2K_RGB_MEAN) -> None:
        super().__init__()
        if scale not in self.SCALES:
            raise ValueError(f"MDSR supports scales {self.SCALES}, not {scale}")
        self.scale = scale
        self.num_in_ch = num_in_ch
        self._init_mean(num_in_ch, num_out_ch, img_range, rgb_mean)
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.pre_process = nn.ModuleList(
            nn.Sequential(PreProcessBlock(num_feat), PreProcessBlock(num_feat)) for _ in self.SCALES)
        self.body = make_layer(lambda: ResidualBlockNoBN(num_feat, res_scale), num_block)
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = nn.ModuleList(PixelShuffleUpsampler(s, num_feat) for s in self.SCALES)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: Tensor, scale: int | None = None) -> Tensor:
        check_input(x, self.num_in_ch, "MDSR")
        scale = self.scale if scale is None else scale
        if scale not in self.SCALES:
            raise ValueError(f"MDSR supports scales {self.SCALES}, not {scale}")
        branch = self.SCALES.index(scale)
        feat = self.pre_process[branch](self.conv_first(self._normalise(x)))
        feat = feat + self.conv_after_body(self.body(feat))
        return self._denormalise(self.conv_last(self.upsample[branch](feat)))
