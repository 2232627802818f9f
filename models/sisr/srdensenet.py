"""SRDenseNet (Tong, Li, Liu and Gao, "Image Super-Resolution Using Dense Skip Connections", ICCV 2017), the
SRDenseNet_All variant (dense skip connections from the low-level features and every dense block).

The layout as we read the paper: a low-level Conv 3x3 + ReLU with 128 filters (= one dense block's output), 8
dense blocks of 8 Conv 3x3 + ReLU layers with growth rate 16 (each block outputs 8 * 16 = 128 maps, layer
``i`` seeing the concatenation of the earlier layers' maps), a 1x1 bottleneck + ReLU to 256 maps over the
concatenated features, two 3x3 deconvolutions (stride 2, 256 maps, ReLU) for x4, and a 3x3 reconstruction
layer. Where the text leaves freedom we follow the public re-implementations: the first layer of block ``b``
sees the concatenation of the low-level features and blocks ``1..b-1`` (``128 * b`` channels), and the
bottleneck sees all of them (``128 * 9 = 1152``). The paper works on luminance; this version maps
``num_in_ch`` to ``num_out_ch`` channels (RGB by default), ``[0, 1]`` in and out, no mean subtraction, no
global skip.

Scales: x4 is the paper's (two x2 deconvolutions); x2 uses one of them; x3 (ours) one 3x3 deconvolution with
stride 3. We found no parameter count in the paper to check against; this layout has 2,666,499 parameters at
x4 with RGB in and out (2,659,585 on luminance), 2,076,419 at x2 and x3.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class DenseBlock(nn.Module):
    """``num_layer`` Conv 3x3 + ReLU layers; layer 1 sees the block input, layer ``i > 1`` the concatenated
    outputs of layers ``1..i-1``. ``(N, in_ch, H, W) -> (N, num_layer * growth, H, W)`` (the new maps
    only)."""

    def __init__(self, in_ch: int, growth: int = 16, num_layer: int = 8) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Conv2d(in_ch if i == 0 else i * growth, growth, 3, 1, 1) for i in range(num_layer))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        outs = [self.relu(self.layers[0](x))]
        for conv in self.layers[1:]:
            outs.append(self.relu(conv(torch.cat(outs, 1))))
        return torch.cat(outs, 1)


def _deconv(num_ch: int, stride: int) -> nn.ConvTranspose2d:
    """3x3 transposed convolution that enlarges exactly ``stride`` times (``stride`` 2 or 3)."""
    if stride == 2:
        return nn.ConvTranspose2d(num_ch, num_ch, 3, 2, padding=1, output_padding=1)
    return nn.ConvTranspose2d(num_ch, num_ch, 3, 3, padding=0)


class SRDenseNet(nn.Module):
    """SRDenseNet_All: Conv 3x3 (``block_ch``) -> ``num_block`` dense blocks with dense skips -> Conv 1x1
    bottleneck (``bottleneck``) -> deconvolutions -> Conv 3x3 (see the module docstring).

    ``(N, num_in_ch, H, W) -> (N, num_out_ch, s*H, s*W)``, scales 2, 3, 4.
    """

    def __init__(self, scale: int = 4, num_in_ch: int = 3, num_out_ch: int = 3, num_block: int = 8,
                 num_layer: int = 8, growth: int = 16, bottleneck: int = 256) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"SRDenseNet supports scales 2, 3 and 4, not {scale}")
        self.scale = scale
        self.num_in_ch = num_in_ch
        block_ch = num_layer * growth
        self.conv_first = nn.Conv2d(num_in_ch, block_ch, 3, 1, 1)
        self.blocks = nn.ModuleList(
            DenseBlock(block_ch * (b + 1), growth, num_layer) for b in range(num_block))
        self.bottleneck = nn.Conv2d(block_ch * (num_block + 1), bottleneck, 1)
        strides = {2: [2], 3: [3], 4: [2, 2]}[scale]
        layers: list[nn.Module] = []
        for s in strides:
            layers += [_deconv(bottleneck, s), nn.ReLU(inplace=True)]
        self.deconv = nn.Sequential(*layers)
        self.conv_last = nn.Conv2d(bottleneck, num_out_ch, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.num_in_ch:
            raise ValueError(f"SRDenseNet expects (N, {self.num_in_ch}, H, W); got {tuple(x.shape)}")
        feats = [self.relu(self.conv_first(x))]
        for block in self.blocks:
            feats.append(block(torch.cat(feats, 1)))
        feat = self.relu(self.bottleneck(torch.cat(feats, 1)))
        return self.conv_last(self.deconv(feat))
