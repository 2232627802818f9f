"""LapSRN (Lai, Huang, Ahuja, Yang, "Deep Laplacian Pyramid Networks for Fast and Accurate
Super-Resolution", CVPR 2017).

Progressive: log2(s) levels, each upsampling by 2 (scales 2, 4, 8). 64 filters, LeakyReLU(0.2), layout of
the authors' MatConvNet code (init_LapSRN_model.m, depth 10):

    feature branch   f_0 = LReLU(Conv(in -> 64, 3x3)(x))
                     per level l: g_l = depth x [Conv(64 -> 64, 3x3), LReLU](f_{l-1})
                                  f_l = LReLU(ConvT(64 -> 64, 3x3, stride 2)(g_l))
                                  r_l = Conv(64 -> out, 3x3)(f_l)                   the level's residual
    image branch     i_l = ConvT(out -> out, 4x4, stride 2, no bias)(i_{l-1}) + r_l, i_0 = x
                     (initialised to bilinear x2: the output starts as the bilinear upscale plus residuals)

``forward`` returns the last level ``(N, num_out_ch, s*H, s*W)``; ``forward_pyramid`` returns every level
``[(N, out, 2H, 2W), (N, out, 4H, 4W), ...]`` for multi-scale (Charbonnier) supervision. When
``num_in_ch != num_out_ch`` there is no image to upsample at the first level (no global skip): ``i_1 = r_1``.

Parameters: the paper's 4x model on the Y channel (1 in, 1 out) has 812,768 weights (9*64 +
2 * (10 * 9*64*64 + 9*64*64 + 9*64 + 16)), the "812K" of the comparison tables; 814,242 with biases.
RGB x4: 817,958.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from models.blocks import check_image_batch


def bilinear_upsample_kernel(channels: int) -> Tensor:
    """Weights ``(C, C, 4, 4)`` making ``ConvTranspose2d(C, C, 4, stride=2, padding=1)`` a per-channel
    bilinear x2 upscale (half-pixel centres; equal to ``F.interpolate(..., 'bilinear')`` away from the
    border)."""
    taps = torch.tensor([0.25, 0.75, 0.75, 0.25])
    weight = torch.zeros(channels, channels, 4, 4)
    for c in range(channels):
        weight[c, c] = taps[:, None] * taps[None, :]
    return weight


class LapSRN(nn.Module):
    """LapSRN for scale 2, 4 or 8 with ``depth`` convolutions per level."""

    def __init__(self, scale: int = 4, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64,
                 depth: int = 10) -> None:
        super().__init__()
        if scale not in (2, 4, 8):
            raise ValueError(f"LapSRN supports scales 2, 4 and 8, not {scale}")
        self.scale = scale
        self.num_in_ch = num_in_ch
        self.num_levels = int(math.log2(scale))
        self.skip = num_in_ch == num_out_ch
        self.conv_in = nn.Sequential(nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True))
        self.features = nn.ModuleList()
        self.residuals = nn.ModuleList()
        for _ in range(self.num_levels):
            layers: list[nn.Module] = []
            for _ in range(depth):
                layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True)]
            layers += [nn.ConvTranspose2d(num_feat, num_feat, 3, 2, 1, output_padding=1),
                       nn.LeakyReLU(0.2, inplace=True)]
            self.features.append(nn.Sequential(*layers))
            self.residuals.append(nn.Conv2d(num_feat, num_out_ch, 3, 1, 1))
        # image upsampling of levels 1.. (level 0 too when the input is an image of the output's channels)
        num_img = self.num_levels if self.skip else self.num_levels - 1
        self.img_up = nn.ModuleList(nn.ConvTranspose2d(num_out_ch, num_out_ch, 4, 2, 1, bias=False)
                                    for _ in range(num_img))
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.kaiming_normal_(m.weight, a=0.2, nonlinearity="leaky_relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        with torch.no_grad():
            for up in self.img_up:
                up.weight.copy_(bilinear_upsample_kernel(num_out_ch))

    def forward_pyramid(self, x: Tensor) -> list[Tensor]:
        """Every level's prediction, coarse to fine: ``[x2, x4, ...]``, the last one at ``scale``."""
        check_image_batch(x, self.num_in_ch, "LapSRN")
        feat = self.conv_in(x)
        img: Tensor | None = x if self.skip else None
        ups = iter(self.img_up)
        outs: list[Tensor] = []
        for features, residual in zip(self.features, self.residuals, strict=True):
            feat = features(feat)
            res = residual(feat)
            img = res if img is None else next(ups)(img) + res
            outs.append(img)
        return outs

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_pyramid(x)[-1]
