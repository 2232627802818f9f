"""SPyNet optical flow (Ranjan & Black, "Optical Flow Estimation using a Spatial Pyramid Network", CVPR 2017).

This is the variant BasicSR embeds in BasicVSR (``basicsr/archs/spynet_arch.py``), with the same module and
buffer names, so the ``spynet.*`` entries of the official BasicVSR checkpoints load unchanged.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.motion.base import FlowEstimator
from models.motion.warp import flow_warp

LEVELS = 6  # pyramid levels; the coarsest is 1/32 of the processing size


class SpyNetLevel(nn.Module):
    """One pyramid level: five 7x7 convolutions, ``(N, 8, h, w) -> (N, 2, h, w)`` residual flow.

    Input channels: reference RGB (3), warped supporting RGB (3), current flow estimate (2).
    Weights live under ``basic_module.{0,2,4,6,8}`` (BasicSR's ``BasicModule``).
    """

    def __init__(self) -> None:
        super().__init__()
        chans = (8, 32, 64, 32, 16, 2)
        layers: list[nn.Module] = []
        for i, (cin, cout) in enumerate(itertools.pairwise(chans)):
            layers.append(nn.Conv2d(cin, cout, 7, 1, 3))
            if i < len(chans) - 2:
                layers.append(nn.ReLU(inplace=False))
        self.basic_module = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.basic_module(x)


class SpyNet(FlowEstimator):
    """Coarse-to-fine flow estimator, 1,440,300 parameters (6 levels x 240,050) plus two 3-value buffers.

    ``forward(ref, supp)`` takes two ``(N, 3, H, W)`` RGB batches in ``[0, 1]`` (any H, W) and returns the
    flow ``(N, 2, H, W)`` in pixels, channel 0 = x (right), channel 1 = y (down), such that
    ``flow_warp(supp, flow) ≈ ref``: for each pixel ``p`` of ``ref`` the matching point of ``supp`` is
    ``p + flow(p)``. These are the conventions the pretrained weights were trained with:

    - input is RGB (not BGR), normalised with the ImageNet ``mean``/``std`` buffers;
    - the images are resized (bilinear, ``align_corners=False``) to the next multiple of 32 in each dimension;
      the flow is resized back the same way and its x/y components scaled by ``W/W'`` and ``H/H'``;
    - pyramid: 5 average poolings by 2 (floor on odd sizes); level 0 (coarsest) starts from zero flow;
    - at each level the previous flow is upsampled x2 (bilinear, ``align_corners=True``) and doubled, padded
      by one replicated row/column if the level is one pixel larger (odd sizes), the supporting image is
      warped with it (bilinear, ``padding_mode="border"``, ``align_corners=True``), and the level's network
      predicts a residual added to the upsampled flow.

    A :class:`FlowEstimator`: ``flow(ref, supp)`` is ``forward`` with input checks. Pretrained weights:
    ``build_flow_estimator("spynet", pretrained=True)`` loads the ``spynet.*`` entries of the official
    BasicVSR checkpoint (see :mod:`models.motion.factory`).
    """

    def __init__(self) -> None:
        super().__init__()
        self.basic_module = nn.ModuleList(SpyNetLevel() for _ in range(LEVELS))
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def _pyramid(self, img: Tensor) -> list[Tensor]:
        """Normalised image and its 5 average-pooled halvings, coarsest first."""
        levels = [(img - self.mean) / self.std]
        for _ in range(LEVELS - 1):
            levels.append(F.avg_pool2d(levels[-1], kernel_size=2, stride=2, count_include_pad=False))
        return levels[::-1]

    def _process(self, ref: Tensor, supp: Tensor) -> Tensor:
        """Flow at the processing size (the input size, a multiple of 32 when called from ``forward``)."""
        refs, supps = self._pyramid(ref), self._pyramid(supp)
        n, _, h0, w0 = refs[0].shape
        flow = refs[0].new_zeros(n, 2, h0, w0)  # the upsampled zero flow of an imaginary coarser level
        for level, (r, s) in enumerate(zip(refs, supps, strict=True)):
            up = flow
            if level > 0:
                up = F.interpolate(flow, scale_factor=2, mode="bilinear", align_corners=True) * 2.0
                pad_w, pad_h = r.shape[3] - up.shape[3], r.shape[2] - up.shape[2]
                if pad_w or pad_h:  # odd size at this level: repeat the last column / row
                    up = F.pad(up, [0, pad_w, 0, pad_h], mode="replicate")
            warped = flow_warp(s, up, padding_mode="border")
            flow = self.basic_module[level](torch.cat([r, warped, up], dim=1)) + up
        return flow

    def forward(self, ref: Tensor, supp: Tensor) -> Tensor:
        if ref.shape != supp.shape or ref.dim() != 4 or ref.shape[1] != 3:
            raise ValueError(f"SpyNet expects two (N, 3, H, W) batches of one shape; got {tuple(ref.shape)} "
                             f"and {tuple(supp.shape)}")
        h, w = ref.shape[2:]
        hp, wp = math.ceil(h / 32) * 32, math.ceil(w / 32) * 32
        if (hp, wp) != (h, w):
            ref = F.interpolate(ref, size=(hp, wp), mode="bilinear", align_corners=False)
            supp = F.interpolate(supp, size=(hp, wp), mode="bilinear", align_corners=False)
        flow = self._process(ref, supp)
        if (hp, wp) != (h, w):
            flow = F.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
            scale = flow.new_tensor([w / wp, h / hp]).view(1, 2, 1, 1)
            flow = flow * scale
        return flow
