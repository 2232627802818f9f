"""Aligner worker: warps every window's neighbours onto its centre with the ``Motion`` flows.

The result is the pre-aligned window ``(T, 2r+1, H, W, 3)`` a window model (VESPCN, EDVR) takes as input in
place of the raw frames (``vsr upscale --align ESTIMATOR``): the optical-flow / spatial-transformer stage
of the pipeline. Warping is ``models.motion.warp.flow_warp`` (backward, bilinear, ``align_corners=True``)
with ``border`` padding, so pixels whose match lies outside the neighbour take its nearest edge pixel rather
than black. The centre frame (and any neighbour replicated from it at the video's edges) is copied exactly.

Output dtype: ``uint8`` (the frames' own type, a quarter of float32) or ``float16`` in ``[0, 1]`` (twice the
bytes, keeps the sub-level values bilinear interpolation makes); see benchmarks/speed_motion_align.py.
"""

from __future__ import annotations

import numpy as np
import torch

from models.motion.warp import flow_warp
from vsr_pipeline.engine import resolve_device, to_tensor
from vsr_pipeline.windows import window_table

#: what the Aligner hands the Upscaler; ``align_windows`` also gives float32 (the unrounded reference)
ALIGNED_DTYPES = ("uint8", "float16")


@torch.inference_mode()
def align_windows(
    frames: np.ndarray,
    flows: np.ndarray,
    radius: int,
    keep: slice | None = None,
    device: torch.device | None = None,
    batch: int = 8,
    dtype: str = "uint8",
    padding_mode: str = "border",
) -> np.ndarray:
    """Aligned windows ``(T, 2r+1, H, W, 3)`` of output frames ``keep`` of ``frames`` uint8 or uint16
    ``(L, H, W, 3)``, ``flows`` ``(T, 2r+1, 2, H, W)`` from ``compute_flows`` on the same frames and ``keep``.
    ``dtype`` "uint8" keeps the frames' own type (uint16 frames of a deep video give uint16 windows)."""
    if dtype not in (*ALIGNED_DTYPES, "float32"):
        raise ValueError(f"aligned dtype must be one of {', '.join(ALIGNED_DTYPES)}, float32; got {dtype!r}")
    device = device or torch.device("cpu")
    table = window_table(len(frames), radius, keep)
    if flows.shape[:2] != table.shape or flows.shape[2:] != (2, *frames.shape[1:3]):
        raise ValueError(
            f"flows of shape {flows.shape} do not fit {table.shape[0]} windows of "
            f"{table.shape[1]} frames {frames.shape[1]}x{frames.shape[2]}"
        )
    lr = to_tensor(frames, device)
    deep = dtype == "uint8" and frames.dtype == np.uint16
    out = np.empty((*table.shape, *frames.shape[1:]), dtype=np.uint16 if deep else np.dtype(dtype))
    for i in range(0, len(table), batch):
        idx = torch.from_numpy(table[i : i + batch]).to(device)
        x = lr[idx]  # (b, 2r+1, 3, H, W)
        f = torch.from_numpy(np.array(flows[i : i + batch])).to(device)  # Ray hands out read-only arrays
        warped = flow_warp(x.flatten(0, 1), f.flatten(0, 1), padding_mode=padding_mode).view_as(x)
        centre = (idx == idx[:, radius : radius + 1])[..., None, None, None]
        warped = torch.where(centre, x, warped).clamp_(0.0, 1.0)
        if deep:
            warped = warped.mul_(65535.0).round_().to(torch.int32).to(torch.uint16)
        elif dtype == "uint8":
            warped = warped.mul_(255.0).round_().to(torch.uint8)
        elif dtype == "float16":
            warped = warped.half()
        out[i : i + len(idx)] = warped.movedim(-3, -1).cpu().numpy()
    return out


class Aligner:
    """Warps a chunk's windows with their flows; returns them for ``Upscaler.process_windows``."""

    def __init__(
        self, radius: int, dtype: str = "uint8", device: str = "auto", threads: int = 0, batch: int = 8
    ):
        if dtype not in ALIGNED_DTYPES:
            raise ValueError(f"aligned dtype must be one of {', '.join(ALIGNED_DTYPES)}, got {dtype!r}")
        if threads > 0:
            torch.set_num_threads(threads)
        self.device = resolve_device(device)
        self.radius = radius
        self.dtype = dtype
        self.batch = batch

    def align(self, frames: np.ndarray, flows: np.ndarray, keep: slice | None = None) -> np.ndarray:
        return align_windows(frames, flows, self.radius, keep, self.device, self.batch, self.dtype)

    def process(self, window: slice, keep: slice, flows: np.ndarray, *batches: np.ndarray) -> np.ndarray:
        """Same chunk addressing as ``Motion.process``, plus that call's ``flows``."""
        frames = batches[0] if len(batches) == 1 else np.concatenate(batches)
        return self.align(frames[window], flows, keep)
