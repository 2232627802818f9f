"""A part of the video (``--start``/``--end``): only its frames are upscaled, with their audio and subtitles.

Times are seconds from the video's first frame (``12.5``, ``1:02.5``, ``01:02:03``), as a player's clock
shows them. The part is every frame whose time lies in ``[start, end)``; the output starts where the whole
video's would (frame ``first`` takes the first frame's time: every pts moves back by ``shift``), and the
audio and subtitle packets from the part's first frame's time up to its end come with it, moved back alike
(:class:`Span`). Inputs whose timestamps need repair (missing, repeated, out of display order) are refused:
their frames' times are only known once decoded.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, replace
from fractions import Fraction

from .probe import VideoInfo
from .seek import scan

_CLOCK = re.compile(r"^(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d*)?)$")


def parse_time(text: str) -> float:
    """Seconds from ``SS[.f]``, ``MM:SS[.f]`` or ``HH:MM:SS[.f]``; ValueError naming the text."""
    m = _CLOCK.match(text.strip())
    if not m:
        raise ValueError(f"expects seconds (12.5) or [HH:]MM:SS[.f] (1:02.5), got {text!r}")
    parts = [p for p in m.groups() if p is not None]
    seconds = 0.0
    for p in parts:
        seconds = seconds * 60 + float(p)
    return seconds


@dataclass(frozen=True)
class Span:
    """The part of a video a job reads: frames ``first..stop-1`` (pts less ``shift``), and the source times
    ``t_from`` (the first frame's) to ``t_to`` (the frame after the last's; None: the video's end), seconds
    in the input's own clock, of the audio and subtitle packets that go with them (moved back by
    ``shift_s``)."""

    first: int
    stop: int
    shift: int
    t_from: Fraction
    t_to: Fraction | None
    shift_s: Fraction

    @property
    def frames(self) -> tuple[int, int, int]:
        """``(first, stop, shift)``: what a reader takes (``ReadSettings.span``)."""
        return self.first, self.stop, self.shift


def check_times(start: float | None, end: float | None) -> None:
    """``start`` >= 0, ``end`` > 0 and after ``start``; ValueError otherwise."""
    if (start is not None and start < 0) or (end is not None and end <= 0):
        raise ValueError("--start must be >= 0 and --end > 0 (seconds from the first frame)")
    if start is not None and end is not None and end <= start:
        raise ValueError(f"--end {end:g} is not after --start {start:g}")


def resolve_span(info: VideoInfo, start: float | None, end: float | None) -> Span:
    """The frames of ``info`` whose time from its first frame lies in ``[start, end)``; ValueError when the
    times are out of order (:func:`check_times`), select no frame, or the input's timestamps need repair."""
    check_times(start, end)
    if info.is_image_folder:
        rate = Fraction(info.fps)
        pts = list(range(info.frames))
        base = Fraction(1, 1) / rate
    else:
        index = scan(info.path)
        problem = "some frames have no timestamp" if index.missing_pts else index.repair or index.in_order
        if problem or len(index.pts) != info.frames:
            raise ValueError("--start/--end need each frame's own time, which this input lacks "
                             f"({problem or 'its frame count is uncertain'})")
        pts, base = list(index.pts), Fraction(info.time_base)
    times = [(p - pts[0]) * base for p in pts]
    # the times as written (0.28, not the binary float just above it), to compare with exact frame times
    first = bisect.bisect_left(times, Fraction(str(start))) if start is not None else 0
    stop = bisect.bisect_left(times, Fraction(str(end))) if end is not None else len(pts)
    length = float(times[-1]) if times else 0.0
    if first >= stop:
        shown = f"--start {start or 0:g}" + (f" --end {end:g}" if end is not None else "")
        raise ValueError(f"{shown} selects no frame (the video's frames run from 0 to {length:.3f} s)")
    shift = pts[first] - pts[0]
    return Span(first, stop, shift, pts[first] * base, pts[stop] * base if stop < len(pts) else None,
                shift * base)


def span_info(info: VideoInfo, first: int, stop: int) -> VideoInfo:
    """``info`` for frames ``first..stop-1`` only."""
    if (first, stop) == (0, info.frames):
        return info
    frames = stop - first
    return replace(info, frames=frames, duration_s=float(frames / Fraction(info.fps)) if info.fps else 0.0)
