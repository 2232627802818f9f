"""Motion: the one warping function (:func:`flow_warp`) and flow estimators behind :class:`FlowEstimator`.

Flow layout everywhere: ``(N, 2, H, W)`` pixels, channel 0 = x (right), channel 1 = y (down), backward
warping ``flow_warp(x, flow)(p) = x(p + flow(p))``; an estimator's ``flow(reference, neighbour)`` is the flow
with ``flow_warp(neighbour, flow) ≈ reference``.
"""

from models.motion.base import FlowEstimator
from models.motion.factory import build_flow_estimator, list_flow_estimators, spynet_state_from_basicvsr
from models.motion.warp import FlowWarp, affine_flow, flow_warp

__all__ = [
    "FlowEstimator",
    "FlowWarp",
    "affine_flow",
    "build_flow_estimator",
    "flow_warp",
    "list_flow_estimators",
    "spynet_state_from_basicvsr",
]
