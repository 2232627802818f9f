"""Repairs at decode time for what real exports contain: timestamps that repeat, go backwards or are missing,
and interlaced frames.

- :class:`TimestampRepair`: every frame's pts strictly increasing, as FFmpeg's decoder front end makes them: a
  frame whose pts is missing, equal to or below the previous one gets the previous pts plus one frame duration
  (:func:`frame_step`: the stream's frame rate, else the container's), so later frames stay monotonic. Valid
  increasing pts are kept exactly, however far apart (low frame rates, gaps).
- :class:`Deinterlacer`: FFmpeg's ``bwdif`` (else ``yadif``) through PyAV's filter graph, one frame out per
  frame in (``mode=send_frame``), keeping each frame's pts; other items of the decoded sequence (markers for
  lost frames) keep their place. With ``field_match`` (telecined film: 3:2 pulldown) FFmpeg's ``fieldmatch``
  first rebuilds each frame from the fields that belong together, and only the frames it leaves combed are
  deinterlaced: the film's progressive pictures at full height, one repeated in every five, as in the source
  (frames are not dropped: the count and times stay the input's).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Iterator
from fractions import Fraction
from typing import Any, TypeVar

import av

from .errors import MediaError, short_reason

T = TypeVar("T")

#: AVFieldOrder values of an interlaced stream: top or bottom field first, coded either way
INTERLACED_FIELD_ORDERS = frozenset({2, 3, 4, 5})


#: a frame rate in a codec's headers above this is its time base, not a rate: x264 declares 1/time base
#: unless told the rate (12800 fps for an MP4 time base of 1/12800), and a raw H.264 export of such a stream
#: (a recorder's .264) has nothing else: its frames, which carry no pts, were numbered 1/12800 s apart
MAX_HEADER_FPS = 480


def stream_rate(stream: Any) -> Fraction | None:
    """The stream's frame rate from its codec headers, else the container's (average, then guessed, then
    base rate): the first at most :data:`MAX_HEADER_FPS` (None: none is). An RTSP stream's guessed and base
    rates are its RTP clock (90000), and so is its header rate where the camera's SPS has no timing."""
    for rate in (stream.codec_context.framerate, stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate <= MAX_HEADER_FPS:
            return Fraction(rate)
    return None


def frame_step(rate: Fraction | None, time_base: Fraction | None) -> int:
    """One frame duration in ``time_base`` units (at least 1; 1 when either is unknown)."""
    if not rate or not time_base:
        return 1
    return max(1, round(1 / (Fraction(rate) * Fraction(time_base))))


def is_interlaced(stream: Any, first: av.VideoFrame | None = None) -> bool:
    """Whether the stream's field order says interlaced, or its first frame is flagged interlaced."""
    order = getattr(stream.codec_context, "field_order", 0)
    return int(order or 0) in INTERLACED_FIELD_ORDERS or bool(first is not None and first.interlaced_frame)


def repair_message(repaired: int, first: int | None, step: int, time_base: Fraction) -> str:
    """The one-line warning about ``repaired`` frame timestamps (``TimestampRepair``'s counts)."""
    seconds = float(step * Fraction(time_base))
    return (f"{repaired} frame timestamp(s) missing, repeated or going backwards (the first at frame "
            f"{first}) repaired: each set to the previous + one frame ({seconds:.4g} s)")


def timestamp_warnings(ts: dict[str, Any], time_base: Fraction) -> list[str]:
    """Warning lines for a decode's timestamp repairs (``workers.decoder.Decoder.timestamps``): pts repaired
    (:func:`repair_message`), and pts that were not display times, renumbered (:mod:`.frame_order`)."""
    lines = [repair_message(ts["repaired"], ts["first"], ts["step"], time_base)] if ts["repaired"] else []
    if ts.get("renumbered"):
        lines.append(f"{ts['renumbered']} frame timestamp(s) were not display times (an AVI's guesses, or a "
                     f"file remuxed from one; the first at frame {ts['renumbered_first']}): frames numbered "
                     f"in the decoder's output order instead")
    return lines


class TimestampRepair:
    """Strictly increasing pts: ``fix(pts)`` returns ``pts`` when it is above the previous one, else (missing,
    repeated, backwards) the previous plus ``step``; ``repaired`` counts the frames changed and ``first``
    is the index of the first (None: none)."""

    def __init__(self, step: int):
        self.step = max(1, int(step))
        self.last: int | None = None
        self.repaired = 0
        self.first: int | None = None
        self._seen = 0

    def fix(self, pts: int | None, count: bool = True) -> int:
        """The pts the next frame gets; ``count`` False: a repair is not counted (a lost frame's stand-in)."""
        index, self._seen = self._seen, self._seen + 1
        if pts is not None and (self.last is None or pts > self.last):
            self.last = int(pts)
            return self.last
        self.last = 0 if self.last is None else self.last + self.step
        if count:
            self.repaired += 1
            self.first = index if self.first is None else self.first
        return self.last

    def restart(self, last: int | None, seen: int) -> None:
        """Continue after a seek: the previous frame had pts ``last`` and ``seen`` frames came before."""
        self.last, self._seen = last, seen


class Deinterlacer:
    """Deinterlace decoded frames with ``bwdif`` (``yadif`` where the FFmpeg build lacks it), one frame out
    per frame in, each keeping its pts. The graph is made at the first frame: frames flagged interlaced are
    deinterlaced (``deint=interlaced``, progressive ones of a mixed stream pass untouched) when that frame
    is flagged, else every frame (a stream tagged interlaced only by its field order). ``filter`` is used
    once per decode: it flushes the graph at the end of ``items``."""

    def __init__(self, time_base: Fraction, name: str = "input", field_match: bool = False):
        self.time_base = Fraction(time_base)
        self.name = name
        self.field_match = field_match
        self.filter_name = ""
        self._graph: av.filter.Graph | None = None
        self._sink: Any = None

    def _build(self, frame: av.VideoFrame) -> None:
        # after field matching, only the frames it could not match are flagged interlaced
        deint = "interlaced" if frame.interlaced_frame or self.field_match else "all"
        last: Exception | None = None
        for name in ("bwdif", "yadif"):
            try:
                graph = av.filter.Graph()
                src = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format.name,
                                       time_base=self.time_base)
                chain = [src]
                if self.field_match:  # fields of one film frame put together; combed leftovers flagged
                    chain.append(graph.add("fieldmatch", "order=auto:combmatch=full"))
                chain.append(graph.add(name, f"mode=send_frame:parity=auto:deint={deint}"))
                chain.append(graph.add("buffersink"))
                for a, b in itertools.pairwise(chain):
                    a.link_to(b)
                graph.configure()
            except (av.FFmpegError, ValueError) as exc:
                last = exc
                continue
            self._graph, self._sink = graph, chain[-1]
            self.filter_name = f"fieldmatch+{name}" if self.field_match else name
            return
        reason = short_reason(last) if last is not None else "no deinterlacing filter"
        raise MediaError(f"{self.name}: cannot deinterlace {frame.width}x{frame.height} {frame.format.name} "
                         f"frames ({reason}); --no-deinterlace keeps them as they are")

    def _pull(self) -> Iterator[av.VideoFrame]:
        assert self._graph is not None
        while True:
            try:
                yield self._sink.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                return

    def filter(self, items: Iterable[T]) -> Iterator[T]:
        """``items`` with every ``av.VideoFrame`` replaced by its deinterlaced frame, in the same order."""
        waiting: deque[Any] = deque()  # non-frame items, and a _Slot for each frame inside the filter
        for item in items:
            if not isinstance(item, av.VideoFrame):
                if waiting:
                    waiting.append(item)
                else:
                    yield item
                continue
            if self._graph is None:
                self._build(item)
            assert self._graph is not None
            self._graph.push(item)
            waiting.append(_Slot(item.pts))
            for out in self._pull():
                yield from _release(waiting, out)
        if self._graph is not None:
            self._graph.push(None)
            for out in self._pull():
                yield from _release(waiting, out)
        while waiting:
            item = waiting.popleft()
            if not isinstance(item, _Slot):
                yield item


class _Slot:
    """A frame inside the filter: its place in the sequence and its pts (the filter's output counts time in
    half the input's time base; the frame gets its own pts back)."""

    def __init__(self, pts: int | None):
        self.pts = pts


def _release(waiting: deque[Any], frame: av.VideoFrame) -> Iterator[Any]:
    """The items queued before the oldest frame inside the filter, then ``frame`` in that frame's place."""
    while waiting:
        item = waiting.popleft()
        if isinstance(item, _Slot):
            frame.pts = item.pts
            break
        yield item
    yield frame
