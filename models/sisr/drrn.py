"""DRRN (Tai, Yang, Liu, "Image Super-Resolution via Deep Recursive Residual Network", CVPR 2017).

Pre-upsampling, B recursive blocks of U residual units, 3x3 convolutions with 128 filters in pre-activation
order (ReLU before each convolution). Inside a block the U units share one pair of convolutions, and every
unit adds the block's entry features (multi-path local residual learning):

    u  = bicubic x s (x)
    per block b:  H0  = Conv_b(ReLU(input))       (block 1: Conv_1(u), no ReLU on the image)
                  H_k = Conv_b2(ReLU(Conv_b1(ReLU(H_{k-1})))) + H0,  k = 1..U
    y  = Conv(ReLU(H_U) -> out) (+ u when in == out)

Depth ``(1 + 2U) * B + 1``: the paper's B1U25 has 52 layers. ``(N, num_in_ch, H, W) ->
(N, num_out_ch, s*H, s*W)``; the global skip exists only when ``num_in_ch == num_out_ch``. The official Caffe
model also puts an (unshared) batch norm before every ReLU; it is left out here, as in the common PyTorch
re-implementations (it changes no convolution and the paper's count leaves it out).

Parameters: the paper reports 297K for B1U25 on the Y channel (1 in, 1 out): 297,216 convolution weights
(9*128 + 2 * 9*128*128 + 9*128), 297,601 with biases. RGB: 302,211.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.blocks import bicubic_upscale, check_image_batch


class RecursiveBlock(nn.Module):
    """One DRRN recursive block: an entry convolution and ``num_units`` units sharing two convolutions."""

    def __init__(self, in_ch: int, num_feat: int, num_units: int, pre_act: bool = True) -> None:
        super().__init__()
        self.num_units = num_units
        self.pre_act = pre_act
        self.conv_in = nn.Conv2d(in_ch, num_feat, 3, 1, 1)
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        entry = self.conv_in(F.relu(x) if self.pre_act else x)
        h = entry
        for _ in range(self.num_units):
            h = self.conv2(F.relu(self.conv1(F.relu(h)))) + entry
        return h


class DRRN(nn.Module):
    """DRRN B``num_blocks``U``num_units`` with ``num_feat`` filters."""

    def __init__(self, scale: int = 4, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 128,
                 num_blocks: int = 1, num_units: int = 25) -> None:
        super().__init__()
        if num_blocks < 1 or num_units < 1:
            raise ValueError(f"DRRN needs B >= 1 and U >= 1, not B{num_blocks}U{num_units}")
        self.scale = scale
        self.num_in_ch = num_in_ch
        self.skip = num_in_ch == num_out_ch
        # the first block sees the image itself: no ReLU before its entry convolution
        self.blocks = nn.Sequential(*(RecursiveBlock(num_in_ch if b == 0 else num_feat, num_feat, num_units,
                                                     pre_act=b > 0) for b in range(num_blocks)))
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        with torch.no_grad():  # without the official batch norm: keep the 25 shared units near identity
            for block in self.blocks:
                block.conv2.weight.mul_(0.1)
        nn.init.normal_(self.conv_last.weight, std=1e-3)  # the residual starts near zero

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch(x, self.num_in_ch, "DRRN")
        up = bicubic_upscale(x, self.scale)
        out = self.conv_last(F.relu(self.blocks(up)))
        return out + up if self.skip else out
