"""The output's pixel format: chroma layout (4:2:0, 4:2:2, 4:4:4) and bits per sample (8, 10, 12, 16).

Chosen per encoder and frame size: 4:2:0 where the encoder takes it (what players expect), else 4:2:2
(ProRes, DNxHR: they have no 4:2:0), else 4:4:4; a side 4:2:0 or 4:2:2 cannot halve (odd) moves on to the
next. ``--chroma`` names one instead. Depth: as deep as the input as far as the encoder goes (a 16-bit scan
stays 16-bit in FFV1, becomes 12 in x265 and 10 in x264), at least 10 where the encoder has no 8-bit format
(ProRes), else 8; ``--bit-depth`` names one instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import av

#: sample depths a video output can have (``--bit-depth``)
BIT_DEPTHS = (8, 10, 12, 16)
#: chroma layouts a video output can have (``--chroma``), in the order auto tries them
CHROMAS = ("420", "422", "444")
#: chroma samples per luma sample, (horizontal, vertical), by layout
SUBSAMPLING = {"420": (2, 2), "422": (2, 1), "444": (1, 1)}
#: pixel format names by (chroma, bits)
PIX_FMTS = {(c, b): f"yuv{c}p" + (f"{b}le" if b > 8 else "") for c in CHROMAS for b in BIT_DEPTHS}


@cache
def encoder_formats(codec: str) -> frozenset[str] | None:
    """Pixel formats encoder ``codec`` takes: empty when it does not say, None for an unknown encoder."""
    try:
        return frozenset(f.name for f in (av.Codec(codec, "w").video_formats or ()))
    except (av.FFmpegError, ValueError):
        return None


def codec_takes(codec: str, pix_fmt: str) -> bool:
    """Whether encoder ``codec`` accepts ``pix_fmt`` (True where it does not say; False if unknown)."""
    formats = encoder_formats(codec)
    return formats is not None and (not formats or pix_fmt in formats)


def size_holds(chroma: str, width: int, height: int) -> bool:
    """Whether a ``width`` x ``height`` frame halves as ``chroma`` subsamples it (no padding, no cropping)."""
    sx, sy = SUBSAMPLING[chroma]
    return width % sx == 0 and height % sy == 0


def output_chroma(codec: str, width: int, height: int, bit_depth: int, chroma: str | None = None) -> str:
    """``chroma``, or for None the first of :data:`CHROMAS` the size holds and ``codec`` takes at
    ``bit_depth`` (where it takes none, the first the size holds: the writer then says what is missing)."""
    if chroma is not None:
        return chroma
    fits = [c for c in CHROMAS if size_holds(c, width, height)]
    return next((c for c in fits if codec_takes(codec, PIX_FMTS[c, bit_depth])), fits[0])


def output_pix_fmt(width: int, height: int, bit_depth: int = 8, codec: str = "libx264",
                   chroma: str | None = None) -> str:
    """The pixel format a ``width`` x ``height`` output of ``bit_depth`` bits gets from ``codec``."""
    return PIX_FMTS[output_chroma(codec, width, height, bit_depth, chroma), bit_depth]


def output_bits(codec: str, width: int, height: int, input_bits: int, chroma: str | None = None) -> int:
    """Auto bit depth at this size (and ``chroma``): for an input of more than 8 bits the least depth that
    holds it (9-10 -> 10, 11-12 -> 12, more -> 16) or, where ``codec`` lacks it, the deepest below it that it
    takes; for 8 bits 8, or the least depth ``codec`` takes where it has no 8-bit format (ProRes: 10)."""
    takes = [b for b in BIT_DEPTHS if codec_takes(codec, output_pix_fmt(width, height, b, codec, chroma))]
    if input_bits <= 8:
        return 8 if 8 in takes or not takes else takes[0]
    want = next(b for b in BIT_DEPTHS if b >= min(input_bits, 16))
    deep = [b for b in takes if 8 < b <= want]
    return deep[-1] if deep else 8


def _either(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def format_problem(codec: str, width: int, height: int, bit_depth: int, chroma: str | None) -> str | None:
    """Why ``codec`` cannot write ``width`` x ``height`` at ``bit_depth`` bits (and ``chroma``), one line
    that names the flags that would work; None when it can."""
    if chroma is not None and not size_holds(chroma, width, height):
        return (f"{chroma[0]}:{chroma[1]}:{chroma[2]} cannot hold a {width}x{height} frame (odd "
                f"{'width' if width % 2 else 'height'}); --chroma 444 can")
    pix_fmt = output_pix_fmt(width, height, bit_depth, codec, chroma)
    if codec_takes(codec, pix_fmt):
        return None
    by_layouts: dict[tuple[str, ...], list[str]] = {}  # depths grouped by the layouts they come in
    for b in BIT_DEPTHS:
        layouts = tuple(c for c in CHROMAS
                        if size_holds(c, width, height) and codec_takes(codec, PIX_FMTS[c, b]))
        if layouts:
            by_layouts.setdefault(layouts, []).append(str(b))
    usable = [f"--bit-depth {_either(bits)} with --chroma {_either(layouts)}"
              for layouts, bits in by_layouts.items()]
    return (f"encoder {codec} cannot take {pix_fmt}"
            + (" (4:4:4 is needed for odd sizes)" if chroma is None and pix_fmt.startswith("yuv444p") else "")
            + (f"; it takes {'; '.join(usable)}" if usable else ""))


#: encoders whose output is read with one YUV matrix whatever the tags say: FFmpeg's DNxHD decoder reports
#: BT.709 for every DNxHD/DNxHR frame (a BT.601 conversion read as 709 shifted colours: luma 37.7 dB from the
#: model's output on Big Buck Bunny), so their frames are converted with it
FIXED_MATRIX = {"dnxhd": 1}
