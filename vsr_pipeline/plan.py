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

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from models.registry import ModelSpec


_T = TypeVar("_T")


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

    @property
    def shape(self) -> tuple[int, int, int]:
        """Window length and kept range: what chunks run as one batch of sequences must share."""
        return self.read_stop - self.read_start, self.start - self.read_start, self.stop - self.read_start


def grouped(items: Iterable[_T], size: int, shape: Callable[[_T], object]) -> Iterator[list[_T]]:
    """Consecutive ``items`` of equal ``shape`` in groups of at most ``size``, lazily: a full group is given
    before the next item is asked for (a live stream's next chunk may be seconds away); an incomplete one
    when the next item's shape differs, or at the end."""
    held: list[_T] = []
    for item in items:
        if held and shape(held[0]) != shape(item):
            yield held
            held = []
        held.append(item)
        if len(held) >= size:
            yield held
            held = []
    if held:
        yield held


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


#: The least a chunk's kept activations may take (and all they take where the upscalers' memory is not
#: known: a joined cluster), used to size the default chunk of a recurrent model.
CHUNK_FEATURE_BYTES = 2 * 1024**3
#: The most, however large the machine (BasicVSR at 640x272: 42 core frames, so 20 padding frames are a
#: third of the frames computed, against 5/7 at the floor of 8).
MAX_CHUNK_FEATURE_BYTES = 8 * 1024**3
#: The share of the upscaler's memory (RAM, or the GPU's) a chunk's kept activations may take: the rest is
#: for the per-frame reconstruction (BasicVSR x4: ~12 KB per LR pixel at once, 2 GB at 640x272, whatever the
#: chunk), Ray's object store, the decoder and encoder and everything else on the machine.
CHUNK_MEMORY_SHARE = 8
#: Core frames per chunk of a recurrent model on a live stream (latency: chunk + padding - 1 frames).
LIVE_RECURRENT_CHUNK = 16


def default_padding(model: str) -> int:
    """Context frames each side of a chunk for ``model`` (its ``ModelSpec.default_padding``)."""
    from models.registry import get_spec

    return get_spec(model).default_padding


def chunk_budget(memory_bytes: int | None, sharing: int = 1) -> int:
    """Bytes a recurrent chunk's kept activations may take on an upscaler with ``memory_bytes`` of memory
    (None: not known) shared by ``sharing`` upscalers: 1/:data:`CHUNK_MEMORY_SHARE` of it each, within
    [:data:`CHUNK_FEATURE_BYTES`, :data:`MAX_CHUNK_FEATURE_BYTES`]."""
    if not memory_bytes:
        return CHUNK_FEATURE_BYTES
    share = memory_bytes // (CHUNK_MEMORY_SHARE * max(1, sharing))
    return int(min(MAX_CHUNK_FEATURE_BYTES, max(CHUNK_FEATURE_BYTES, share)))


def machine_memory(device: str = "cpu") -> int | None:
    """Total memory of this machine's RAM (``cpu``) or of its first CUDA device (``cuda``); None if unknown.
    The total, not what is free now: the chunk size it sizes is part of a job's settings, so a rerun on the
    same machine must plan the same chunks to resume."""
    if device == "cuda":
        try:
            import torch

            return int(torch.cuda.get_device_properties(0).total_memory)
        except Exception:  # no CUDA here after all: the floor applies
            return None
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def spec_chunk(spec: ModelSpec, width: int, height: int, frames: int, padding: int, memory_bytes: int | None,
               sharing: int = 1) -> int:
    """:func:`default_chunk` for model ``spec`` (its kind and per-pixel bytes) on an upscaler with
    ``memory_bytes`` (None: not known) shared by ``sharing`` upscalers."""
    return default_chunk(width, height, frames, padding, spec.temporal == "recurrent",
                         spec.chunk_bytes_per_pixel, spec.context_bytes_per_pixel,
                         chunk_budget(memory_bytes, sharing))


def default_chunk(width: int, height: int, frames: int, padding: int, recurrent: bool = True,
                  bytes_per_pixel: int = 1024, context_bytes_per_pixel: int = 96,
                  budget: int = CHUNK_FEATURE_BYTES) -> int:
    """Core frames per chunk of a ``frames``-frame video of ``width`` x ``height``.

    - Recurrent models (``padding`` context frames recomputed on each side of a chunk): as many core frames
      as ``budget`` holds, spread evenly over the video, since padding is pure extra work (BasicVSR at
      640x272 with 8 core frames computed 2.75 frames per output frame, docs/benchmarks.md 8.5d). A core
      frame keeps ``bytes_per_pixel`` per LR pixel until the chunk ends (``ModelSpec.chunk_bytes_per_pixel``:
      BasicVSR's backward features and its HR output), every window frame ``context_bytes_per_pixel``
      (its input and flows). Unknown length (``frames`` 0): 10x the padding.
    - Single-image and window models: 50, fewer for large frames (as many as 2 GiB holds at 768 bytes per LR
      pixel: 16 at 640x272); small chunks let the encoder start early, which matters where the codec costs
      as much as the model (ESPCN x4 at 640x272: chunks of 8 ran 4 % faster for 6 % more bytes, 16 kept,
      docs/performance.md). A window model computes only its core frames, so its context costs little.
    """
    pixels = width * height
    floor = min(8, frames or 8)
    if not recurrent:
        return int(max(min(50, CHUNK_FEATURE_BYTES // (768 * pixels)), floor))
    per_core = (bytes_per_pixel + context_bytes_per_pixel) * pixels
    fit = max(1, (budget - 2 * padding * context_bytes_per_pixel * pixels) // per_core)
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
