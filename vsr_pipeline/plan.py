"""Chunk planning: split a video into chunks of core frames with temporal padding.

A chunk owns the core frames ``[start, stop)`` and reads the wider window
``[read_start, read_stop)``; the model sees the window, the pipeline keeps the core.

Edge policy: at the first and last frames the window is *truncated* (no frames are
invented), so the first chunk starts at frame 0 exactly as whole-video processing
does. Window models (radius ``r``) need ``padding >= r`` and replicate the video's
first/last frame where a window runs past it (``vsr_pipeline.windows``): because a
chunk is truncated only at the video's ends, that gives the same windows, and the
same output, as processing the whole video.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chunk:
    """One unit of work: core frames ``[start, stop)`` read with padding."""

    index: int
    start: int
    stop: int
    read_start: int
    read_stop: int

    @property
    def core(self) -> int:
        return self.stop - self.start

    @property
    def keep(self) -> slice:
        """Slice of the window's frames that are this chunk's core."""
        return slice(self.start - self.read_start, self.stop - self.read_start)


def plan_chunks(frames: int, chunk: int, padding: int) -> list[Chunk]:
    """Split ``frames`` frames into chunks of ``chunk`` core frames with ``padding`` on each side."""
    if frames < 0:
        raise ValueError(f"frame count must be >= 0, got {frames}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1 frame, got {chunk}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    out = []
    for index, start in enumerate(range(0, frames, chunk)):
        stop = min(start + chunk, frames)
        out.append(Chunk(index, start, stop, max(0, start - padding), min(frames, stop + padding)))
    return out


def batches_for(chunk: Chunk, batch: int) -> range:
    """Indices of the fixed-size decode batches (``batch`` frames each) that cover a chunk's window."""
    return range(chunk.read_start // batch, (chunk.read_stop - 1) // batch + 1)
