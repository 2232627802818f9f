"""The flow-estimator interface shared by every motion estimator in :mod:`models.motion`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from torch import Tensor, nn


def check_pair(reference: Tensor, neighbour: Tensor, who: str) -> None:
    """Raise ``ValueError`` unless both are ``(N, 3, H, W)`` float batches of one shape."""
    if reference.dim() != 4 or reference.shape[1] != 3 or reference.shape != neighbour.shape:
        raise ValueError(f"{who} expects two (N, 3, H, W) RGB batches of one shape; got "
                         f"{tuple(reference.shape)} and {tuple(neighbour.shape)}")
    if not reference.is_floating_point() or not neighbour.is_floating_point():
        raise ValueError(f"{who} expects float RGB in [0, 1]; got {reference.dtype} and {neighbour.dtype}")


class FlowEstimator(nn.Module, ABC):
    """Dense optical flow between two frames, in the project's layout.

    ``flow(reference, neighbour)`` takes two ``(N, 3, H, W)`` float RGB batches in ``[0, 1]`` and returns
    ``(N, 2, H, W)`` in pixels (channel 0 = x right, channel 1 = y down) such that
    ``flow_warp(neighbour, flow) ≈ reference``: the point of ``neighbour`` that matches pixel ``p`` of
    ``reference`` is ``p + flow(p)`` (backward warping, see :func:`models.motion.warp.flow_warp`).

    Subclasses implement ``forward(reference, neighbour)``; ``flow`` checks the inputs and calls it.
    ``differentiable`` says whether gradients reach the inputs/parameters (False for OpenCV estimators,
    which run on the CPU in numpy and return a detached tensor on the inputs' device).
    """

    differentiable: ClassVar[bool] = True

    def flow(self, reference: Tensor, neighbour: Tensor) -> Tensor:
        """Flow that warps ``neighbour`` onto ``reference``, ``(N, 2, H, W)`` pixels."""
        check_pair(reference, neighbour, type(self).__name__)
        return self(reference, neighbour)

    @abstractmethod
    def forward(self, reference: Tensor, neighbour: Tensor) -> Tensor:
        """See :meth:`flow` (no input checks are promised here)."""
