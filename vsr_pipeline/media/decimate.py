"""Decimation after field matching: the second half of inverse telecine (``--decimate``).

3:2 pulldown turns every 4 film pictures into 5 video frames. Once ``fieldmatch`` has put each frame back
together from the fields that belong to it (:class:`.ingest.Deinterlacer`), one frame in every 5 is a second
copy of its neighbour. As FFmpeg's ``decimate`` filter does, the frames are taken in cycles of
:data:`CYCLE` counted from the first frame, and in each full cycle the one least different from the frame
before it is dropped: any 5 consecutive frames of a steady 3:2 cadence hold exactly one repeat, whatever
the phase. The difference of two frames is the largest mean absolute luma difference of any
:data:`BLOCK` x :data:`BLOCK` block (a small moving object is not averaged away, as FFmpeg's ``maxbdiff``).
Where no frame of a cycle stands out (its difference not :data:`CLEAR` times below every other's: slow
motion under coding noise, a still shot, a repeat the matcher left combed, or a picture the film itself
repeats next to the pulldown's), the frame at the place of the last clear repeat is dropped: the cadence
goes on (as TIVTC's pattern guidance). A last, shorter cycle keeps every frame.

The kept frames are retimed on a uniform grid at ``(CYCLE - 1) / CYCLE`` of the source rate (29.97 ->
23.976 fps): frame ``k`` of the part read gets ``first + round(k * period * CYCLE / (CYCLE - 1))``, so
motion is even again (kept at their source times, one picture in four would stay twice as long); the
whole still lasts as long as the source, and each frame lies within about one source frame period of
where it was, as with FFmpeg's ``decimate``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from fractions import Fraction

import av
import numpy as np

from .frame_order import Lost

#: frames per cycle, of which one is dropped (3:2 pulldown: 4 pictures became 5 frames)
CYCLE = 5
#: side of the luma blocks compared, in pixels
BLOCK = 16
#: a cycle's least different frame is a clear repeat where every other differs this many times more
CLEAR = 3.0


def block_difference(a: np.ndarray, b: np.ndarray, block: int = BLOCK) -> float:
    """The largest mean absolute difference of two luma planes (H, W) over ``block`` x ``block`` blocks (the
    whole plane where it is smaller than one block); in sample levels."""
    diff = np.abs(a.astype(np.int32) - b.astype(np.int32))
    h, w = (diff.shape[0] // block) * block, (diff.shape[1] // block) * block
    if h == 0 or w == 0:
        return float(diff.mean())
    blocks = diff[:h, :w].reshape(h // block, block, w // block, block)
    return float(blocks.mean(axis=(1, 3)).max())


def luma(frame: av.VideoFrame) -> np.ndarray:
    """A frame's luma plane as (H, W) uint8."""
    return frame.to_ndarray(format="gray")


def output_rate(fps: Fraction) -> Fraction:
    """The rate of decimated frames from a source at ``fps`` (30000/1001 -> 24000/1001)."""
    return Fraction(fps) * (CYCLE - 1) / CYCLE


class Decimator:
    """Drops one frame per cycle from a stream of frames and retimes the others (see the module's doc).

    :meth:`filter` passes every frame on in order, deciding each cycle before its first frame goes on;
    :meth:`dropped` then says whether a frame handed on was the cycle's repeat. A frame the decoder lost
    (``Lost``: its stand-in repeats the frame before) counts as the most alike. :meth:`retime` gives the
    kept frames of the part read their new pts."""

    def __init__(self, period: Fraction) -> None:
        #: a kept frame's duration in the time base: ``period`` (the source's) * CYCLE / (CYCLE - 1)
        self.period = Fraction(period) * CYCLE / (CYCLE - 1)
        self._drop: dict[int, bool] = {}
        self._phase: int | None = None  # the place in its cycle of the last clear repeat
        self._first: int | None = None
        self._kept = 0

    def filter(self, frames: Iterator[av.VideoFrame | Lost]) -> Iterator[av.VideoFrame | Lost]:
        """``frames`` as they come, read a cycle ahead; each cycle's repeat noted for :meth:`dropped`."""
        previous: np.ndarray | None = None
        while cycle := list(itertools.islice(frames, CYCLE)):
            scores: list[float] = []
            for frame in cycle:
                if isinstance(frame, Lost):
                    scores.append(-1.0)
                    continue
                y = luma(frame)
                scores.append(math.inf if previous is None else block_difference(y, previous))
                previous = y
            drop = self._choose(scores) if len(cycle) == CYCLE else -1
            for i, frame in enumerate(cycle):
                self._drop[id(frame)] = i == drop
            yield from cycle

    def _choose(self, scores: list[float]) -> int:
        """The place in a full cycle of the frame to drop, from each frame's difference to the one before."""
        low = min(range(CYCLE), key=scores.__getitem__)
        if all(scores[low] * CLEAR < s for i, s in enumerate(scores) if i != low):
            self._phase = low
        return low if self._phase is None else self._phase

    def dropped(self, frame: av.VideoFrame | Lost) -> bool:
        """Whether ``frame`` (handed on by :meth:`filter`, asked once) is its cycle's repeat."""
        return self._drop.pop(id(frame), False)

    def retime(self, pts: int) -> int:
        """The pts of the next kept frame of the part read, whose source pts is ``pts``: the first keeps its
        own, each later one a :attr:`period` after the one before (rounded in the time base)."""
        if self._first is None:
            self._first = pts
        out = self._first + round(self._kept * self.period)
        self._kept += 1
        return out
