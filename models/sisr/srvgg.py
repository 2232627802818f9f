"""SRVGGNetCompact (Wang, Xie, Dong and Shan, "Real-ESRGAN: Training Real-World Blind Super-Resolution with
Pure Synthetic Data", ICCV Workshops 2021; the compact VGG-style network of the Real-ESRGAN repository, used
by its ``realesr-animevideov3`` and ``realesr-general-x4v3`` models).

Post-upsampling, everything at LR resolution:

    Conv 3x3 (in -> F), act -> num_conv x (Conv 3x3 (F -> F), act) -> Conv 3x3 (F -> out*s^2)
    -> PixelShuffle(s) [+ nearest-upsampled input when num_in_ch == num_out_ch]

``(N, num_in_ch, H, W) -> (N, num_out_ch, s*H, s*W)``. Module names follow Real-ESRGAN (``body.{i}``: the
convolutions at even indices, the activations after them at odd ones, the last convolution at
``body.{2 * num_conv + 2}``; one PReLU of ``num_feat`` slopes per position), so its checkpoints and its ncnn
exports load strictly.

Parameters (F = 64, PReLU, RGB, x4): 621,424 with ``num_conv=16`` (realesr-animevideov3), 1,213,296 with 32
(realesr-general-x4v3).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from models.blocks import check_image_batch

_ACTS = ("prelu", "relu", "leakyrelu")


def _activation(act_type: str, num_feat: int) -> nn.Module:
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act_type == "relu":
        return nn.ReLU(inplace=True)
    return nn.LeakyReLU(negative_slope=0.1, inplace=True)


class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN's compact network: plain 3x3 convolutions with activations, a sub-pixel output and an
    image-space skip (the nearest-upsampled input) when input and output channels agree."""

    def __init__(self, scale: int = 4, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64,
                 num_conv: int = 16, act_type: str = "prelu") -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"SRVGGNetCompact supports scales 2, 3 and 4, not {scale}")
        if act_type not in _ACTS:
            raise ValueError(f"SRVGGNetCompact act_type must be one of {', '.join(_ACTS)}, not {act_type!r}")
        self.scale, self.num_in_ch, self.num_out_ch = scale, num_in_ch, num_out_ch
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), _activation(act_type, num_feat)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), _activation(act_type, num_feat)]
        layers.append(nn.Conv2d(num_feat, num_out_ch * scale * scale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(scale)

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch(x, self.num_in_ch, "SRVGGNetCompact")
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        if self.num_in_ch == self.num_out_ch:
            out = out + F.interpolate(x, scale_factor=self.scale, mode="nearest")
        return out
