"""Spatial tiling with overlap and linear blending, and the out-of-memory back-off that uses it.

A model is run on overlapping ``tile x tile`` LR crops (the last two dimensions of any input layout: single
images ``(N, 3, H, W)``, sequences ``(N, T, 3, H, W)``, windows ``(N, 2r+1, 3, H, W)``); each HR crop is
weighted and the weighted crops are summed and divided by the summed weights. Across the ``L`` HR pixels two
neighbours share, a tile's weight is ~0 over the quarter next to its own cut edge (where it lacks context),
rises linearly over the middle half and is 1 over the far quarter; the neighbour's weight is the mirror
image, so they add to 1 and the result fades from one tile to the next instead of switching at a line (no
seam). With ``overlap / 4`` at least a convolutional model's receptive-field radius, only pixels computed
with full context get weight, and tiled output equals untiled output up to float rounding; models that see
the whole frame (optical flow, recurrence) differ slightly, smoothly (tests/test_tiling.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)

#: Smallest tile the back-off goes down to (LR pixels); below it recurrent models lose their motion context.
MIN_TILE = 32
DEFAULT_OVERLAP = 16


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``[0, size)``, neighbours sharing >= ``overlap``
    pixels; the last tile ends exactly at ``size`` (it may overlap its neighbour more)."""
    if tile >= size:
        return [0]
    if overlap < 0 or 2 * overlap > tile:
        raise ValueError(f"tile overlap must be in [0, tile/2], got overlap {overlap} for tile {tile}")
    step = tile - overlap
    starts = list(range(0, size - tile, step))
    starts.append(size - tile)
    return starts


#: Weight of a tile's pixels near its cut edge (not 0, so every pixel has a positive total weight).
EDGE_WEIGHT = 1e-4


def _ramp(length: int, low: int, high: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Weights along one axis of an HR tile of ``length`` whose first ``low`` and last ``high`` pixels are
    shared with a neighbour: across each shared stretch of ``L`` pixels the weight is ~0 over the quarter
    next to the cut, rises linearly over the middle half and is 1 over the far quarter; the neighbour's
    ramp is the mirror image, so the two add to 1."""
    w = torch.ones(length, dtype=dtype, device=device)
    i = torch.arange(length, dtype=dtype, device=device) + 0.5
    for size, pos in ((low, i), (high, i.flip(0))):
        if size > 0:
            margin = size // 4
            w = torch.minimum(w, ((pos - margin) / max(1, size - 2 * margin)).clamp(0.0, 1.0))
    return w.clamp_(min=EDGE_WEIGHT)


def tiled_forward(
    model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int, overlap: int = DEFAULT_OVERLAP
) -> torch.Tensor:
    """``model(x)`` computed on overlapping ``tile``-pixel LR crops of ``x``'s last two dimensions, blended.

    The scale is read from the first crop's output. Output dtype float32 (the accumulation's).
    """
    h, w = x.shape[-2:]
    ys, xs = tile_starts(h, tile, overlap), tile_starts(w, tile, overlap)
    if len(ys) == 1 and len(xs) == 1:
        return model(x)
    th, tw = min(tile, h), min(tile, w)
    out = weight = None
    scale = 0
    for yi, y0 in enumerate(ys):
        for xi, x0 in enumerate(xs):
            hr = model(x[..., y0 : y0 + th, x0 : x0 + tw]).float()
            if out is None:
                scale = hr.shape[-1] // tw
                out = hr.new_zeros(*hr.shape[:-2], h * scale, w * scale)
                weight = hr.new_zeros(h * scale, w * scale)
            assert weight is not None
            # overlap with the previous / next tile along each axis, in HR pixels
            up = (ys[yi - 1] + th - y0) * scale if yi > 0 else 0
            down = (y0 + th - ys[yi + 1]) * scale if yi + 1 < len(ys) else 0
            left = (xs[xi - 1] + tw - x0) * scale if xi > 0 else 0
            right = (x0 + tw - xs[xi + 1]) * scale if xi + 1 < len(xs) else 0
            wy = _ramp(th * scale, up, down, out.dtype, out.device)
            wx = _ramp(tw * scale, left, right, out.dtype, out.device)
            w2 = wy[:, None] * wx[None, :]
            sy, sx = slice(y0 * scale, (y0 + th) * scale), slice(x0 * scale, (x0 + tw) * scale)
            out[..., sy, sx] += hr * w2
            weight[sy, sx] += w2
    assert out is not None and weight is not None
    return out.div_(weight)


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's ``OutOfMemoryError`` or the CPU allocator's failure (a ``RuntimeError`` naming it)."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def back_off(tile: int | None, batch: int, frame_size: tuple[int, int]) -> tuple[int | None, int] | None:
    """The next, smaller setting after an out-of-memory error: first tiles (half the frame's longer side),
    then halving the tile down to :data:`MIN_TILE`, then halving the batch; ``None`` when nothing is left."""
    longest = max(frame_size)
    if tile is None and longest // 2 >= MIN_TILE:
        return max(MIN_TILE, (longest + 1) // 2), batch
    if tile is not None and tile // 2 >= MIN_TILE:
        return tile // 2, batch
    if batch > 1:
        return tile, batch // 2
    return None


def free_cached(device: torch.device) -> None:
    """Give a failed allocation's cached blocks back before retrying (CUDA only)."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
