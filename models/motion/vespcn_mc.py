"""VESPCN's motion compensation (Caballero et al., "Real-Time Video Super-Resolution with Spatio-Temporal
Networks and Motion Compensation", CVPR 2017, Sec. 3.2 and Fig. 3): a coarse x4 and a fine x2 spatial
transformer whose flows add up."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.motion.base import FlowEstimator
from models.motion.warp import flow_warp


class Compensation(NamedTuple):
    """One motion-compensation result; all ``(N, ., H, W)`` at the input size."""

    flow: Tensor  # (N, 2, H, W) final flow = coarse + fine, pixels
    warped: Tensor  # (N, 3, H, W) neighbour warped onto the reference with ``flow``
    coarse_flow: Tensor  # (N, 2, H, W) the coarse estimate alone


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, k // 2)


class VESPCNMotionCompensation(FlowEstimator):
    """Two-stage spatial-transformer flow, ``(N, 3, H, W) x 2 -> (N, 2, H, W)`` (any H, W).

    Layers (paper Fig. 3 / Sec. 3.2; "k5n24s2" = 5x5 kernel, 24 filters, stride 2):

    - coarse: input [reference, neighbour] (6 ch) -> k5n24s2 ReLU, k3n24s1 ReLU, k5n24s2 ReLU, k3n24s1 ReLU,
      k3n32s1 Tanh -> PixelShuffle(4): a flow at full size estimated at 1/4 resolution;
    - the neighbour is warped with the coarse flow;
    - fine: input [reference, neighbour, coarse flow, coarse-warped neighbour] (11 ch) -> k5n24s2 ReLU,
      3 x k3n24s1 ReLU, k3n8s1 Tanh -> PixelShuffle(2): a correction estimated at 1/2 resolution;
    - flow = coarse + fine; the neighbour is warped with it (bilinear spatial transformer).

    The paper works on luminance (2 and 5 input channels); this RGB version (the project's convention) has
    35,408 (coarse) + 23,984 (fine) = 59,392 parameters (the paper does not report the module's size).

    Flow units: the paper bounds both outputs with tanh in the spatial transformer's normalised coordinates,
    which would tie the reachable motion in pixels to the frame size; a convolutional net trained on patches
    must mean the same motion in pixels at every size, so each tanh output is scaled by ``max_flow`` pixels
    (coarse and fine alike; the total is bounded by ``2 * max_flow``).
    Sizes: the two stride-2 stages need H, W divisible by 4, so inputs are padded (replicate) at the
    bottom/right to the next multiple of 4 and the flow is cropped back.
    Initialisation: the last convolution of each stage starts at zero (``zero_init=True``), so an untrained
    module returns zero flow (the identity warp) and VESPCN starts as plain early fusion.
    Warping uses ``padding_mode`` (default ``"border"``: pixels whose source leaves the frame repeat the
    edge instead of turning black, which the fusion net would otherwise have to learn to ignore).
    """

    def __init__(self, num_ch: int = 3, num_feat: int = 24, max_flow: float = 16.0,
                 padding_mode: str = "border", zero_init: bool = True) -> None:
        super().__init__()
        self.max_flow = float(max_flow)
        self.padding_mode = padding_mode
        f = num_feat
        self.coarse = nn.Sequential(
            _conv(2 * num_ch, f, 5, 2), nn.ReLU(inplace=True),
            _conv(f, f, 3), nn.ReLU(inplace=True),
            _conv(f, f, 5, 2), nn.ReLU(inplace=True),
            _conv(f, f, 3), nn.ReLU(inplace=True),
            _conv(f, 2 * 16, 3), nn.Tanh(),
            nn.PixelShuffle(4),
        )
        self.fine = nn.Sequential(
            _conv(3 * num_ch + 2, f, 5, 2), nn.ReLU(inplace=True),
            _conv(f, f, 3), nn.ReLU(inplace=True),
            _conv(f, f, 3), nn.ReLU(inplace=True),
            _conv(f, f, 3), nn.ReLU(inplace=True),
            _conv(f, 2 * 4, 3), nn.Tanh(),
            nn.PixelShuffle(2),
        )
        if zero_init:
            for head in (self.coarse[-3], self.fine[-3]):
                assert isinstance(head, nn.Conv2d)
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)

    def compensate(self, reference: Tensor, neighbour: Tensor) -> Compensation:
        """Flow, warped neighbour and coarse flow for ``(N, C, H, W)`` pairs."""
        h, w = reference.shape[-2:]
        pad_h, pad_w = -h % 4, -w % 4
        ref, nb = reference, neighbour
        if pad_h or pad_w:
            ref = F.pad(ref, [0, pad_w, 0, pad_h], mode="replicate")
            nb = F.pad(nb, [0, pad_w, 0, pad_h], mode="replicate")
        coarse = self.coarse(torch.cat([ref, nb], dim=1)) * self.max_flow
        coarse_warped = flow_warp(nb, coarse, padding_mode=self.padding_mode)
        fine = self.fine(torch.cat([ref, nb, coarse, coarse_warped], dim=1)) * self.max_flow
        flow = (coarse + fine)[..., :h, :w]
        warped = flow_warp(neighbour, flow, padding_mode=self.padding_mode)
        return Compensation(flow, warped, coarse[..., :h, :w])

    def forward(self, reference: Tensor, neighbour: Tensor) -> Tensor:
        return self.compensate(reference, neighbour).flow
