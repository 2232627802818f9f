"""RDN (Zhang, Tian, Kong, Zhong and Fu, "Residual Dense Network for Image Super-Resolution", CVPR 2018).

BasicSR has no RDN; module names follow mmagic's (``sfe1``, ``sfe2``, ``rdbs.{i}.layers.{j}.conv``,
``rdbs.{i}.lff``, ``gff.{0,1}``, ``upscale``, ``output``), whose published DIV2K checkpoints use them, so
those load with ``strict=True`` once the ``generator.`` prefix is stripped (``models.weights`` does).

Image mean: the RDN paper describes no mean subtraction, and the public PyTorch implementations
(EDSR-PyTorch's ``rdn.py``, mmagic) feed the image as it is; so does this one: ``[0, 1]`` in, ``[0, 1]`` out,
any channel count.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from models.blocks import PixelShuffleUpsampler


class DenseLayer(nn.Module):
    """Conv 3x3 + ReLU whose output is appended to its input: ``(N, C, H, W) -> (N, C + growth, H, W)``."""

    def __init__(self, in_ch: int, growth: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, growth, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x, self.relu(self.conv(x))], 1)


class RDB(nn.Module):
    """Residual dense block: ``num_layer`` dense layers (contiguous memory), 1x1 local feature fusion back to
    ``num_feat`` channels, local residual: ``x + lff(layers(x))``. Shape ``(N, num_feat, H, W)`` kept."""

    def __init__(self, num_feat: int, growth: int, num_layer: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(*(DenseLayer(num_feat + i * growth, growth) for i in range(num_layer)))
        self.lff = nn.Conv2d(num_feat + num_layer * growth, num_feat, 1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.lff(self.layers(x))


class RDN(nn.Module):
    """RDN: two shallow convolutions (``sfe1``, ``sfe2``) -> ``num_block`` RDBs -> global feature fusion over
    the concatenated RDB outputs (1x1 then 3x3) + global residual from ``sfe1`` -> sub-pixel upsampler ->
    Conv 3x3.

    ``(N, num_in_ch, H, W) -> (N, num_out_ch, s*H, s*W)``, scales 2, 3, 4. Paper configuration D=16 blocks,
    C=8 layers, G=64 growth, G0=64 features: 22,271,107 parameters at x4 (about 22M, as the papers comparing
    with RDN report).
    """

    def __init__(self, scale: int = 4, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64,
                 num_block: int = 16, num_layer: int = 8, growth: int = 64) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"RDN supports scales 2, 3 and 4, not {scale}")
        self.scale = scale
        self.num_in_ch = num_in_ch
        self.sfe1 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.sfe2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.rdbs = nn.ModuleList(RDB(num_feat, growth, num_layer) for _ in range(num_block))
        self.gff = nn.Sequential(nn.Conv2d(num_block * num_feat, num_feat, 1),
                                 nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        self.upscale = PixelShuffleUpsampler(scale, num_feat)
        self.output = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.num_in_ch:
            raise ValueError(f"RDN expects (N, {self.num_in_ch}, H, W); got {tuple(x.shape)}")
        shallow = self.sfe1(x)
        feat = self.sfe2(shallow)
        outs = []
        for rdb in self.rdbs:
            feat = rdb(feat)
            outs.append(feat)
        feat = self.gff(torch.cat(outs, 1)) + shallow
        return self.output(self.upscale(feat))
