"""Classical dense optical flow from OpenCV behind the :class:`FlowEstimator` interface.

Direction (checked numerically in ``tests/test_motion.py``): for ``flow = calc(prev, next)`` OpenCV
documents ``prev(y, x) ≈ next(y + flow[y, x, 1], x + flow[y, x, 0])`` for both Farnebäck and DIS, i.e. the
flow points from a pixel of the *first* image to where it is found in the *second*. Calling
``calc(reference, neighbour)`` therefore gives exactly our backward-warping flow
(``flow_warp(neighbour, flow) ≈ reference``); channel 0 = x, channel 1 = y as in OpenCV's last axis.

Both run on grayscale uint8 (``cv2.COLOR_RGB2GRAY`` of the rounded 8-bit frame), one pair at a time over the
batch, on the CPU, and need no weights. ``cv2`` is imported lazily so ``models.motion`` stays importable
without OpenCV. OpenCV's own thread pool is used as configured by the caller (``cv2.setNumThreads``).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from models.motion.base import FlowEstimator, check_pair


def to_gray_u8(batch: Tensor) -> list[np.ndarray]:
    """``(N, 3, H, W)`` float RGB in ``[0, 1]`` -> N grayscale ``(H, W)`` uint8 arrays (OpenCV's weights)."""
    import cv2

    rgb = batch.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY) for img in rgb]


class OpenCVFlow(FlowEstimator):
    """Common batching: grayscale both batches, ``_pair(ref, nb) -> (H, W, 2) float32`` per item."""

    differentiable: ClassVar[bool] = False

    def _pair(self, reference: np.ndarray, neighbour: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def forward(self, reference: Tensor, neighbour: Tensor) -> Tensor:
        check_pair(reference, neighbour, type(self).__name__)
        flows = [self._pair(r, n) for r, n in zip(to_gray_u8(reference), to_gray_u8(neighbour), strict=True)]
        out = torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2).contiguous()
        return out.to(device=reference.device, dtype=reference.dtype)


class FarnebackFlow(OpenCVFlow):
    """Farnebäck's polynomial-expansion flow (SCIA 2003), ``cv2.calcOpticalFlowFarneback(ref, nb)``.

    Direction: OpenCV's result satisfies ``ref(y, x) ≈ nb(y + f[y, x, 1], x + f[y, x, 0])``, which is our
    ``flow_warp(nb, flow) ≈ ref`` once moved to ``(N, 2, H, W)`` (no sign flip, no channel swap).

    Defaults: pyramid scale 0.5, 4 levels (a 1/8-size top level, enough for ~20 px motion at 180x320),
    window 15, 3 iterations, polynomial neighbourhood 5 with sigma 1.2, box window.
    """

    def __init__(self, pyr_scale: float = 0.5, levels: int = 4, winsize: int = 15, iterations: int = 3,
                 poly_n: int = 5, poly_sigma: float = 1.2, gaussian: bool = False) -> None:
        super().__init__()
        self.params: dict[str, Any] = dict(pyr_scale=pyr_scale, levels=levels, winsize=winsize,
                                           iterations=iterations, poly_n=poly_n, poly_sigma=poly_sigma)
        self.gaussian = gaussian

    def _pair(self, reference: np.ndarray, neighbour: np.ndarray) -> np.ndarray:
        import cv2

        flags = cv2.OPTFLOW_FARNEBACK_GAUSSIAN if self.gaussian else 0
        return cv2.calcOpticalFlowFarneback(reference, neighbour, None, flags=flags, **self.params)


class DISFlow(OpenCVFlow):
    """Dense Inverse Search (Kroeger et al., ECCV 2016), ``cv2.DISOpticalFlow.calc(ref, nb)``.

    Direction: as Farnebäck, ``ref(y, x) ≈ nb(y + f[y, x, 1], x + f[y, x, 0])``: our layout without a sign
    flip or channel swap.

    ``preset`` is OpenCV's ``"ultrafast"``, ``"fast"`` or ``"medium"`` (default: the most accurate; it
    includes variational refinement). One OpenCV object per estimator (they are not thread-safe: use one
    estimator per thread).
    """

    PRESETS: ClassVar[dict[str, str]] = {"ultrafast": "DISOPTICAL_FLOW_PRESET_ULTRAFAST",
                                         "fast": "DISOPTICAL_FLOW_PRESET_FAST",
                                         "medium": "DISOPTICAL_FLOW_PRESET_MEDIUM"}

    def __init__(self, preset: str = "medium") -> None:
        super().__init__()
        if preset not in self.PRESETS:
            raise ValueError(f"DIS preset must be one of {', '.join(self.PRESETS)}; got {preset!r}")
        self.preset = preset
        self._dis: Any = None

    def _pair(self, reference: np.ndarray, neighbour: np.ndarray) -> np.ndarray:
        import cv2

        if self._dis is None:
            self._dis = cv2.DISOpticalFlow_create(getattr(cv2, self.PRESETS[self.preset]))
        return self._dis.calc(reference, neighbour, None)
