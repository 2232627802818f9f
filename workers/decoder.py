"""Decoder worker: reads a video or image folder in fixed-size batches of uint8 RGB frames.

Sequentially (``read``), or batch ``b`` of size ``n`` on request (``read_batch``), so several decoders can
share one seekable input; :func:`assign_batches` says which decoder reads which batch. An actor reads one
input at a time: the one it was made with, or the one ``open`` names (a job taking an idle decoder another
job used, ``vsr_pipeline.warm_actors``).
"""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import asdict
from typing import Any

import numpy as np

from vsr_pipeline.heap import release_free_memory
from vsr_pipeline.media import FrameReader
from vsr_pipeline.media.reader import ReadSettings, open_reader


class Decoder:
    """Plain class wrapped by ``ray.remote`` in the pipeline; reads one input at a time (none until
    ``open`` when made without a ``path``)."""

    def __init__(self, path: str | None = None, settings: ReadSettings | None = None):
        self._reader: FrameReader | None = None
        self._error: Exception | None = None
        if path is not None:
            # kept, and raised by the first read: an actor's constructor must not fail (the driver would see
            # only that the actor died)
            with contextlib.suppress(Exception):
                self.open(path, settings)

    def open(self, path: str, settings: ReadSettings | None = None) -> bool:
        """Read ``path`` from its first frame on (the input before, if any, is closed) with ``settings``
        (default ``ReadSettings()``); True. Its error is also raised by every read until the next
        ``open``."""
        self.close()
        try:
            self._reader = open_reader(path, settings or ReadSettings())
        except Exception as exc:
            self._error = exc
            raise
        return True

    @property
    def reader(self) -> FrameReader:
        if self._reader is None:
            raise self._error or RuntimeError("this decoder has no input open")
        return self._reader

    def read(self, n: int) -> tuple[np.ndarray, list[int | None]]:
        """The next ``n`` frames (fewer at the end) and their PTS (``None``: a lost frame to leave out)."""
        return self.reader.read(n)

    def read_batch(self, b: int, n: int) -> tuple[np.ndarray, list[int | None]]:
        """Batch ``b``: frames [b*n, (b+1)*n) (fewer at the end, none past it) and their PTS, exactly as
        sequential ``read(n)`` calls give them. Reads on when the reader is already at frame b*n, else
        seeks (raises :class:`vsr_pipeline.media.seek.SeekError` when the input is not exactly seekable:
        check :func:`vsr_pipeline.media.seek.seek_problem` first and decode sequentially then)."""
        if b < 0 or n < 1:
            raise ValueError(f"batch must be >= 0 and n >= 1, got b={b}, n={n}")
        start = min(b * n, self.reader.info.frames)
        if self.reader.position != start:
            self.reader.seek(start)
        return self.reader.read(n)

    def frames_decoded(self) -> int:
        """Frames the decoder has produced so far, including those dropped after seeks."""
        return self.reader.frames_decoded

    def skip(self, n: int) -> int:
        """Decode and drop the next ``n`` frames (chunks a resumed job has already done); returns how many."""
        return len(self.reader.read(n)[1])

    def corrupt(self) -> list[dict[str, Any]]:
        """Frames found undecodable so far (index, pts, time_s, reason), and those decoded from damaged data
        (``FrameReader.concealed``: the same, and ``concealed: True``)."""
        return [asdict(c) for c in self.reader.corrupt] + \
            [asdict(c) | {"concealed": True} for c in self.reader.concealed]

    def timestamps(self) -> dict[str, Any]:
        """Timestamp repairs so far: ``repaired`` frames, the ``first`` one's index (None: none), ``step``
        (one frame duration in the time base), frames ``renumbered`` in display order (pts that were not
        display times, :mod:`vsr_pipeline.media.frame_order`) and the first one's index, and whether frames
        are ``deinterlaced`` (and ``field_matched``), and the input's numbers of the frames ``decimated``
        (``--decimate``)."""
        t = self.reader.timestamps
        renumbered, renumbered_first = self.reader.timestamps_renumbered
        return {"repaired": t.repaired, "first": t.first, "step": t.step, "renumbered": renumbered,
                "renumbered_first": renumbered_first, "deinterlaced": self.reader.deinterlace,
                "field_matched": self.reader.field_match, "decimated": list(self.reader.decimated)}

    def close(self) -> None:
        """Close the input (the decoder can ``open`` another) and return the heap's free memory to the OS."""
        reader, self._reader, self._error = self._reader, None, None
        if reader is not None:
            reader.close()
            release_free_memory()


def assign_batches(total_frames: int, n: int, decoders: int, keyframes: list[int] | None) -> list[int]:
    """Owner decoder (0..decoders-1) of each batch of ``n`` frames (ceil(total_frames / n) entries).

    Each decoder gets contiguous blocks of batches, and blocks go round-robin over the decoders. A block
    is at least one GOP long (the median keyframe interval, and at least one batch) and ends at the
    first batch boundary after that at which a keyframe starts a batch or lies less than ``n`` frames
    before it, so the next block's seek decodes fewer than ``n`` frames it then drops (plus an open
    GOP's leading pictures). ``keyframes``: frame indices of keyframes in presentation order
    (``StreamIndex.keyframes``); None means every frame is one (image folders), giving one-batch blocks.

    Trade-off: longer blocks mean fewer seeks and so less wasted decoding, but the consumer takes batches
    in order, so a decoder whose block lies ahead idles or its output waits in memory, and the last
    blocks balance worse; shorter blocks keep all decoders busy on nearby batches but each seek costs up
    to a GOP of decoding. One GOP per block keeps the waste under about one batch per block. A stream
    with one keyframe is a single block: one decoder does all of it (seeking would redo the whole GOP).
    """
    if total_frames < 0 or n < 1 or decoders < 1:
        raise ValueError(f"need total_frames >= 0, n >= 1, decoders >= 1; got {total_frames}, {n}, "
                         f"{decoders}")
    batches = -(-total_frames // n)
    if keyframes is None:
        return [b % decoders for b in range(batches)]
    keys = sorted(k for k in set(keyframes) if 0 <= k < total_frames)
    gaps = sorted(b - a for a, b in itertools.pairwise(keys))
    gop = gaps[len(gaps) // 2] if len(keys) > 1 else total_frames
    min_len = max(n, gop)
    owners: list[int] = []
    block, block_start = 0, 0
    ki = 0
    for b in range(batches):
        start = b * n
        while ki + 1 < len(keys) and keys[ki + 1] <= start:
            ki += 1
        near_key = bool(keys) and keys[ki] <= start and start - keys[ki] < n
        if b > 0 and start - block_start >= min_len and near_key:
            block, block_start = block + 1, start
        owners.append(block % decoders)
    return owners
