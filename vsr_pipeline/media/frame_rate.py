"""Frame rates of encoders that take only a list of them (MPEG-1/2: 23.976, 24, 25, 29.97, ... fps).

Such an encoder numbers frames at one constant rate: a frame's time becomes the nearest period of that
rate (rounded as FFmpeg rescales a timestamp, half away from zero). A source at a listed rate, or at a rate
with a listed multiple (12.5 fps at 25), keeps every timestamp exactly; another constant rate is written
at the nearest listed one (within 0.5 %) or the lowest listed rate above it, so that every frame still
has a period of its own. A variable-rate source
whose frames come closer than one period cannot be written so: :func:`shared_period_problem` says which
frames, before any work.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Sequence
from fractions import Fraction
from functools import cache, reduce
from pathlib import Path

import av

from .errors import MediaError
from .probe import VideoInfo, video_pts

log = logging.getLogger(__name__)

#: a listed rate this close to the source's (relative) is the source's own, measured with rounding
SAME_RATE = Fraction(1, 200)


#: rates FFmpeg lists for an encoder that it refuses at the default strictness (Xing's MPEG-1 rates)
UNOFFICIAL = {"mpeg1video": frozenset({Fraction(5), Fraction(10), Fraction(12), Fraction(15)})}


@cache
def listed_rates(codec: str) -> tuple[Fraction, ...]:
    """The frame rates ``codec`` takes, lowest first; () where it takes any."""
    try:
        rates = av.Codec(codec, "w").frame_rates or ()
    except (ValueError, av.FFmpegError):
        return ()
    listed = {Fraction(r.numerator, r.denominator) for r in rates} - UNOFFICIAL.get(codec, frozenset())
    return tuple(sorted(listed))


def codec_frame_rate(codec: str, fps: Fraction) -> Fraction:
    """The rate ``codec`` is told for a source at ``fps``: ``fps`` itself unless the codec takes only listed
    rates; then the lowest listed multiple of ``fps`` (exact timing), else the listed one within 0.5 % of
    ``fps``, else the lowest listed above it (the highest listed where none is)."""
    rates = listed_rates(codec)
    fps = Fraction(fps)
    if not rates or fps <= 0:
        return fps
    multiple = next((r for r in rates if (r / fps).denominator == 1), None)
    if multiple is not None:  # fps itself, or 12.5 fps at 25: every frame on the grid, one period in two
        return multiple
    nearest = min(rates, key=lambda r: abs(r - fps))
    if abs(nearest - fps) <= SAME_RATE * fps:
        return nearest
    return next((r for r in rates if r > fps), rates[-1])


def choose_frame_rate(codec: str, pts: Sequence[int], time_base: Fraction, fps: Fraction) -> Fraction:
    """The rate ``codec`` is told for frames at ``pts`` (increasing, in ``time_base``): the lowest listed
    rate on whose periods every frame lies (exact timing: 25 for 12.5 fps), else :func:`codec_frame_rate`
    of their mean rate (``fps`` for fewer than two frames); ``fps`` where the codec takes any."""
    rates = listed_rates(codec)
    if not rates:
        return Fraction(fps)
    step = grid_step(pts, time_base)
    exact = next((r for r in rates if (step * r).denominator == 1), None) if step else None
    if exact is not None:
        return exact
    span = (pts[-1] - pts[0]) * Fraction(time_base) if len(pts) > 1 else 0
    return codec_frame_rate(codec, (len(pts) - 1) / span if span > 0 else Fraction(fps))


def grid_step(pts: Iterable[int], time_base: Fraction) -> Fraction:
    """The longest time (seconds) every one of ``pts`` is a multiple of (0 for none but 0): frames lie on
    the periods of a rate ``r`` exactly where ``grid_step * r`` is a whole number."""
    return reduce(math.gcd, (int(p) for p in pts), 0) * Fraction(time_base)


def output_frame_rate(codec: str, info: VideoInfo, output: str | Path) -> Fraction | None:
    """The rate ``codec`` writes ``info``'s frames at where it takes only listed rates (None where it takes
    any), chosen from the pts of every frame (:func:`choose_frame_rate`); MediaError naming ``output`` where
    two of them would share a period. A live stream's are not known ahead: its writer checks as it goes."""
    if not listed_rates(codec):
        return None
    if info.is_image_folder:
        pts: list[int] | None = list(range(info.frames))
    elif Path(info.path).is_file():
        pts = video_pts(info.path)
    else:
        pts = None
    if not pts:
        return codec_frame_rate(codec, info.fps)
    pts = sorted(set(pts))  # a repeated pts is the reader's to renumber
    rate = choose_frame_rate(codec, pts, info.time_base, info.fps)
    pair = first_shared_period(pts, info.time_base, rate)
    if pair is not None:
        raise MediaError(f"{output}: " + shared_period_problem(codec, info.fps, rate, pair, info.time_base))
    if (grid_step(pts, info.time_base) * rate).denominator != 1:
        log.warning("%s: the frames' times lie on the periods of no rate %s takes: written at %s fps, each "
                    "within half a period (%.4f s) of its time (libx264, libx265 or ffv1 keep every time)",
                    output, codec, rate, float(1 / rate / 2))
    return rate


def frame_period(pts: int, time_base: Fraction, rate: Fraction) -> int:
    """The period of ``rate`` a frame at ``pts`` (in ``time_base``) is numbered with: FFmpeg's rescale,
    rounded to nearest, half away from zero."""
    x = pts * time_base * rate
    return math.floor(x + Fraction(1, 2)) if x >= 0 else -math.floor(-x + Fraction(1, 2))


def first_shared_period(pts: Iterable[int], time_base: Fraction, rate: Fraction) -> tuple[int, int] | None:
    """The first two of ``pts`` (increasing) that are numbered with one period of ``rate``, else None."""
    last: tuple[int, int] | None = None
    for p in pts:
        period = frame_period(p, time_base, rate)
        if last is not None and period <= last[1]:
            return last[0], p
        last = (p, period)
    return None


def shared_period_problem(codec: str, fps: Fraction, rate: Fraction, pair: tuple[int, int],
                          time_base: Fraction) -> str:
    """One line: ``codec`` at ``rate`` cannot give the two frames of ``pair`` periods of their own."""
    a, b = (float(p * time_base) for p in pair)
    source = f"for the source's {float(fps):.3f}" if rate != fps else "the source's own"
    return (f"{codec} takes only constant frame rates (here {rate} fps, {source}); the "
            f"frames at {a:.4f} s and {b:.4f} s fall in one frame period, as the source's rate varies: use "
            "libx264, libx265 or ffv1, which keep every timestamp")


#: encoders whose time base denominator is at most 16 bits ("timebase 1/90000 not supported by MPEG 4
#: standard, the maximum admitted value for the timebase denominator is 65535")
SHORT_TIME_BASE = {"mpeg4": 2**16 - 1}


def codec_time_base(codec: str, time_base: Fraction, rate: Fraction) -> Fraction:
    """The time base ``codec`` counts in, for frames whose pts are in ``time_base``: one period of ``rate``
    for MPEG-1/2 (which take only a frame rate); for MPEG-4 part 2 with a denominator over 16 bits (MPEG-TS
    and many phone files: 1/90000) the finest coarser one it takes (1/45000: pts within 11 us);
    ``time_base`` itself otherwise."""
    if listed_rates(codec) and rate:
        return 1 / Fraction(rate)
    limit = SHORT_TIME_BASE.get(codec)
    tb = Fraction(time_base)
    if limit is None or tb.denominator <= limit:
        return tb
    den = next((d for d in range(limit, limit // 2, -1) if tb.denominator % d == 0), limit)
    coarser = Fraction(tb.numerator, den)
    return coarser if coarser.denominator <= limit and coarser.numerator == 1 else Fraction(1, limit)
