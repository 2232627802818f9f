"""Temporal windows for window models (VESPCN, EDVR): which frames each output frame sees.

A window model with radius ``r`` turns the ``2r + 1`` frames ``t - r .. t + r`` into output frame ``t``.

Edge policy: **replicate**. Where ``t + k`` falls before the first or after the last frame of the video, the
first or last frame is used instead (index clamped to ``[0, length - 1]``), as BasicSR's
``generate_frame_indices(..., padding="replicate")``. Frame 0 with ``r = 2`` sees ``0 0 0 1 2``.

The policy is applied at the *video's* edges only. A chunk's frames ``[read_start, read_stop)`` are
truncated only where the video ends (see ``vsr_pipeline.plan``), so with ``padding >= r`` clamping indices to
the chunk's own frames gives exactly the indices clamping to the video gives, for every core frame: inside
the video the chunk holds all ``r`` neighbours, and a chunk that lacks them starts at frame 0 or ends at the
last frame.
Hence chunked output equals whole-video output frame for frame (``check_padding`` enforces ``padding >= r``).
"""

from __future__ import annotations

import numpy as np

EDGE_POLICY = "replicate"


def window_indices(centre: int, radius: int, length: int) -> list[int]:
    """Indices of the ``2 * radius + 1`` frames that output frame ``centre`` of ``length`` frames sees."""
    if not 0 <= centre < length:
        raise ValueError(f"frame {centre} is outside a sequence of {length} frames")
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    return [min(max(centre + k, 0), length - 1) for k in range(-radius, radius + 1)]


def window_table(length: int, radius: int, targets: slice | range | None = None) -> np.ndarray:
    """``(T, 2 * radius + 1)`` int64 frame indices for the output frames ``targets`` (default: all)."""
    centres = range(length) if targets is None else range(length)[targets]
    out = np.empty((len(centres), 2 * radius + 1), dtype=np.int64)
    for row, centre in enumerate(centres):
        out[row] = window_indices(centre, radius, length)
    return out


def check_padding(model: str, radius: int, padding: int) -> None:
    """Chunks of a window model need ``padding >= radius`` to equal whole-video output."""
    if padding < radius:
        raise ValueError(
            f"model {model} sees {radius} frame(s) each side; "
            f"--padding {padding} is too small (use >= {radius})"
        )
