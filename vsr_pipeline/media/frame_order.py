"""Decoded frames put against the packets' pts: which frames the decoder lost, and streams whose pts do not
follow the display order.

A decoder puts frames out in display order. Their pts normally equal the packets' pts, sorted: frame ``i``
has ``pts[i]`` of :class:`.seek.StreamIndex`, and a packet pts no frame carries marks a lost frame (placed
where its pts belongs). Some files carry pts that are not display times: AVI stores none (FFmpeg guesses
them from the decode order, so with B-frames the decoder hands out frames whose pts go 1, 3, 4, 2, ... or
1, 2, 3, 5, 4, ...), and a file remuxed from one keeps the guesses. There the frames are numbered in the
order the decoder gives them: frame ``i`` gets the ``i``-th smallest packet pts (what an AVI means: frame
``i`` is shown at ``i`` frame durations), and lost frames can only be counted, at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import av

#: Frames by which a decoder may reorder (H.264/HEVC hold at most 16 in their picture buffer)
REORDER_WINDOW = 16


@dataclass(frozen=True)
class Lost:
    """Marker for a frame the decoder did not produce (pts None: position unknown)."""

    pts: int | None
    reason: str


def decode_order_pts(container: av.container.InputContainer,
                     stream: av.video.stream.VideoStream) -> str | None:
    """Why this stream's pts cannot be display times, known before decoding, or None: an AVI (no pts
    stored; FFmpeg guesses them in decode order) whose codec reorders frames (B-frames)."""
    names = set((container.format.name or "").split(","))
    if "avi" in names and stream.codec_context.has_b_frames:
        return f"AVI stores no display timestamps and {stream.codec_context.name} reorders frames"
    return None


class FrameMatcher:
    """Frames in display order with a :class:`Lost` marker for each frame the decoder did not produce.

    ``expected``: the packets' pts, sorted (None: they need repair; frames then pass as they are and the
    frames short of ``frames`` are lost at the end); ``start``: the position in ``expected`` of the first
    frame (after a seek); ``in_order``: number the frames by output order from the first one (see the
    module docstring). Otherwise a frame whose pts skips packet pts is held (up to
    :data:`REORDER_WINDOW` frames), and a later frame with a lower pts is either
    - before any decode error: proof that the pts are not display times (a decoder puts frames out in
      display order); from then on frames are numbered by output order; or
    - after a decode error: a frame the damaged decoder put out late (seen with frame threading: 10, 22,
      11, 23 after a broken packet); it goes back to its place by pts, or is dropped when its place was
      already given a lost frame's marker (``late``: how many).
    Held frames whose gap no frame filled are handed on after markers for the skipped pts (lost frames).
    ``push(frame)`` and ``end()`` return what can be handed on; ``reason`` is what a lost frame is put
    down to (the last decode error: ``error`` sets it); ``renumbered`` counts frames whose pts were changed
    (``first``: the first one's index).
    """

    def __init__(self, expected: list[int] | None, frames: int, start: int = 0, in_order: bool = False):
        self.expected = expected
        self.frames = frames
        self.next = start  # position in expected of the next frame's pts
        self.produced = start  # frames (and markers) handed on, counting those before a seek
        self.in_order = in_order and expected is not None
        self.held: list[tuple[av.VideoFrame, str]] = []  # with the reason current when each came out
        self.reason = "frame missing from the decoder's output"
        self.damaged = False  # the decoder or demuxer has reported an error
        self.late = 0
        self.renumbered = 0
        self.first: int | None = None

    def push(self, frame: av.VideoFrame) -> list[av.VideoFrame | Lost]:
        """What to hand on after ``frame`` came out of the decoder."""
        if self.expected is None:
            self.produced += 1
            return [frame]
        if self.in_order:
            return [self._numbered(frame)]
        pts = frame.pts
        top = max((f.pts for f, _ in self.held if f.pts is not None), default=None)
        if top is not None and pts is not None and pts < top:  # the decoder went back in pts
            if self.damaged:  # a late frame: back to its place, or too late for it
                if pts < self.expected[min(self.next, len(self.expected) - 1)]:
                    self.late += 1
                    return []
                at = next(i for i, (f, _) in enumerate(self.held) if f.pts is not None and f.pts > pts)
                self.held.insert(at, (frame, self.reason))
                return self._settle(final=False)
            self.in_order = True
            held, self.held = [*(f for f, _ in self.held), frame], []
            return [self._numbered(f) for f in held]
        self.held.append((frame, self.reason))
        return self._settle(final=False)

    def error(self, reason: str) -> None:
        """The decoder or demuxer reported ``reason``: lost frames are put down to it from now on."""
        self.reason, self.damaged = reason, True

    def end(self) -> list[av.VideoFrame | Lost]:
        """What is left to hand on when the decoder has given its last frame."""
        out = self._settle(final=True)
        if self.expected is not None:
            out += [Lost(p, self.reason) for p in self.expected[self.next:]]
            self.produced += len(self.expected) - min(self.next, len(self.expected))
        out += [Lost(None, self.reason) for _ in range(max(0, self.frames - self.produced))]
        return out

    def _skips(self, pts: int | None) -> bool:
        assert self.expected is not None
        return pts is not None and self.next < len(self.expected) and pts > self.expected[self.next]

    def _settle(self, final: bool) -> list[av.VideoFrame | Lost]:
        """Hand on held frames that wait on no gap, or have waited long enough (or all, at the end)."""
        out: list[av.VideoFrame | Lost] = []
        while self.held and (final or len(self.held) > REORDER_WINDOW
                             or not self._skips(self.held[0][0].pts)):
            frame, reason = self.held.pop(0)
            out += self._matched(frame, reason)
        return out

    def _matched(self, frame: av.VideoFrame, reason: str) -> list[av.VideoFrame | Lost]:
        """``frame`` by its own pts, after a marker (put down to ``reason``: the last error when ``frame``
        came out) for each packet pts below it that no frame had."""
        assert self.expected is not None
        out: list[av.VideoFrame | Lost] = []
        while self._skips(frame.pts):
            out.append(Lost(self.expected[self.next], reason))
            self.next += 1
            self.produced += 1
        if frame.pts is not None and self.next < len(self.expected) and frame.pts == self.expected[self.next]:
            self.next += 1
        self.produced += 1
        out.append(frame)
        return out

    def _numbered(self, frame: av.VideoFrame) -> av.VideoFrame:
        """``frame`` with the next packet pts in display order (None past the last: repaired later)."""
        assert self.expected is not None
        pts = self.expected[self.next] if self.next < len(self.expected) else None
        if frame.pts != pts:
            self.renumbered += 1
            self.first = self.produced if self.first is None else self.first
            frame.pts = pts
        self.next += 1
        self.produced += 1
        return frame
