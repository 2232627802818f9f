"""Chunk planning: split a video (or a live stream as it arrives) into chunks of core frames with padding;
the chunk-size and padding policy.

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


#: Budget for one chunk's activations on the CPU/GPU, used to size the default chunk.
CHUNK_FEATURE_BYTES = 2 * 1024**3
#: Core frames per chunk of a recurrent model on a live stream (latency: chunk + padding - 1 frames).
LIVE_RECURRENT_CHUNK = 16


def default_padding(model: str) -> int:
    """Context frames each side of a chunk for ``model`` (its ``ModelSpec.default_padding``)."""
    from models.registry import get_spec

    return get_spec(model).default_padding


def default_chunk(width: int, height: int, frames: int, padding: int,
                  bytes_per_pixel: int = 64 * 4 * 3) -> int:
    """Core frames per chunk of a ``frames``-frame video of ``width`` x ``height``, where ``fit`` is what
    :data:`CHUNK_FEATURE_BYTES` allows at ``bytes_per_pixel`` of activations per window frame
    (``ModelSpec.chunk_bytes_per_pixel``; fewer frames for large frames).

    - Single-image and window models (no padding): 50, or ``fit`` if smaller; small chunks let the encoder
      start early, which matters where the codec costs as much as the model (ESPCN).
    - Recurrent models (``padding`` context frames recomputed on each side of a chunk): as large as ``fit``
      allows, spread evenly over the video, since padding is pure extra work (20 % of BasicVSR's model
      time with chunks of 50, docs/benchmarks.md 8.3b; on 250 frames it is 16 % more frames computed with
      chunks of 100, 8 % with this rule's 2 x 125). Unknown length (``frames`` 0): 10x the padding.
    """
    per_frame = bytes_per_pixel * width * height
    fit = max(1, CHUNK_FEATURE_BYTES // per_frame - 2 * padding)
    floor = min(8, frames or 8)
    if padding == 0:
        return int(max(min(50, fit), floor))
    if not frames:
        return int(max(min(10 * padding, fit), floor))
    pieces = -(-frames // fit)  # ceil: as few chunks as memory allows, then equal sizes
    return int(max(-(-frames // pieces), floor))


@dataclass(frozen=True)
class LivePolicy:
    """How a live stream (frames arriving, length unknown) is cut into chunks as frames arrive.

    ``context`` frames each side of a chunk, at most ``core`` core frames per chunk; ``whole`` (recurrent
    models): a chunk waits for its ``core`` frames plus ``context`` later ones; otherwise (single-image and
    window models) whatever has arrived with its context is computed at once. Chunks are truncated only at
    the stream's ends, like :func:`plan_chunks`, so their HR frames equal the file pipeline's.
    """

    core: int
    context: int
    whole: bool

    @property
    def latency_frames(self) -> int:
        """Frames that must arrive after frame ``t`` before output frame ``t`` can be computed."""
        return self.core + self.context - 1 if self.whole else self.context

    def next_chunk(self, index: int, done: int, received: int, eof: bool) -> Chunk | None:
        """Chunk ``index`` starting at frame ``done`` if it can be computed with ``received`` frames
        (``eof``: no more will come), else None."""
        if eof:
            stop = min(received, done + self.core)
        elif self.whole:
            stop = done + self.core if received >= done + self.core + self.context else done
        else:
            stop = max(done, min(received - self.context, done + self.core))
        if stop <= done:
            return None
        return Chunk(index, done, stop, max(0, done - self.context), min(received, stop + self.context))


def live_policy(temporal: str, radius: int, batch: int, chunk: int | None, padding: int | None,
                default_padding: int) -> LivePolicy:
    """The :class:`LivePolicy` of a model (``temporal``, ``radius``) with the user's ``chunk``/``padding``."""
    if temporal == "recurrent":
        return LivePolicy(LIVE_RECURRENT_CHUNK if chunk is None else chunk,
                          default_padding if padding is None else padding, True)
    return LivePolicy(batch, radius if temporal == "window" else 0, False)
