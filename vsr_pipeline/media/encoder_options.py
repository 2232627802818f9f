"""What an encoder is told: rate control from ``--crf``/``--preset``, ``--tune``, and ``--codec-option
KEY=VALUE`` (FFmpeg's ``-KEY:v VALUE``: ``profile=4444xq`` for ProRes 4444 XQ, ``b=8M`` for a bit rate,
``g=1`` for intra-only, ``x264-params=...``), whose names are checked against the encoder's own AVOptions:
FFmpeg's encoders ignore a name they do not know, so a typo would otherwise change nothing without a word.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
from functools import cache

import av

#: ``--tune`` values of each encoder (x264/x265 ``--tune``); ``fastdecode`` and ``zerolatency`` combine with
#: one other (comma-separated): x264 ignores a second psycho-visual tuning
TUNES = {"libx264": ("film", "animation", "grain", "stillimage", "psnr", "ssim", "fastdecode", "zerolatency"),
         "libx265": ("animation", "grain", "psnr", "ssim", "fastdecode", "zerolatency")}
COMBINABLE_TUNES = ("fastdecode", "zerolatency")
X26X = frozenset({"libx264", "libx265"})
VPX = frozenset({"libvpx", "libvpx-vp9"})
#: encoders with a constant-quality ``crf`` of their own scale (SVT-AV1: 0-63, its default 35)
CRF_ONLY = frozenset({"libsvtav1", "libaom-av1"})
#: FFmpeg's MPEG-1/2/4-part-2 encoders: no crf; ``--crf`` sets a fixed quantiser (:func:`fixed_quantiser`)
QUANTISER_ENCODERS = frozenset({"mpeg1video", "mpeg2video", "mpeg4"})
LAMBDA_PER_QP = 118  # FFmpeg's FF_QP2LAMBDA
#: options the writer sets itself from the frames and the container (the stream's geometry and timing)
#: options holding a ``key=value:key=value`` list of the encoder library's own parameters
PARAM_LISTS = ("x264-params", "x265-params", "svtav1-params")
RESERVED = frozenset({"pix_fmt", "s", "video_size", "time_base", "r", "framerate", "width", "height"})
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
#: SVT-AV1 prints ~40 lines of its configuration per encoder (every segment) unless told to say only errors;
#: read once per process, when its first encoder starts
os.environ.setdefault("SVT_LOG", "1")


def tune_problem(codec: str, tune: str) -> str | None:
    """Why ``codec`` cannot take ``tune`` (one line), or None when it can."""
    if codec not in TUNES:
        return f"{codec} takes no tune (libx264 and libx265 do)"
    parts = tune.split(",")
    unknown = [t for t in parts if t not in TUNES[codec]]
    if unknown:
        return f"{codec} has no tune {unknown[0]!r}; known: {', '.join(TUNES[codec])}"
    if len(parts) != len(set(parts)) or len([t for t in parts if t not in COMBINABLE_TUNES]) > 1:
        return f"{tune!r}: at most one tune besides {' and '.join(COMBINABLE_TUNES)}, each once"
    return None


def fixed_quantiser(q: int) -> dict[str, str]:
    """Options that pin FFmpeg's MPEG-1/2/4 rate control to quantiser ``q`` (1-31) on every frame, I-frames
    too: what ``ffmpeg -q:v Q`` gives (PyAV cannot set a frame's quality, so the quantiser and lambda
    bounds are pinned instead)."""
    lam = str(q * LAMBDA_PER_QP)
    return {"qmin": str(q), "qmax": str(q), "lmin": lam, "lmax": lam, "i_qfactor": "1", "i_qoffset": "0"}


def crf_quantiser(crf: int) -> int:
    """The fixed quantiser ``--crf`` means for MPEG-1/2/4 (our mapping, they have no crf): crf / 6 rounded,
    1-31 (crf 18 -> 3, high quality; 0 -> 1, the finest)."""
    return max(1, min(31, round(crf / 6)))


def rate_control(codec: str, crf: int, preset: str, user: dict[str, str] | None = None) -> dict[str, str]:
    """Encoder options for ``--crf`` and ``--preset``: x264/x265 both, libvpx constant quality (``b=0``),
    SVT-AV1 its own crf, MPEG-1/2/4 a fixed quantiser (:func:`crf_quantiser`; FFmpeg's default, a 200 kb/s
    target, would write mush) unless the ``user``'s options name a bit rate (``b``); others have neither
    (ProRes, DNxHR, FFV1: their profile sets the rate)."""
    if codec in X26X:
        # x264's VUI timing is its time base unless told the input is constant-rate: the stream said 12800
        # fps (1/time base), which Matroska readers took for its rate; pts pass through unchanged either way
        params = {"libx264": ("x264-params", "force-cfr=1"), "libx265": ("x265-params", "log-level=error")}
        key, value = params[codec]
        return {"crf": str(crf), "preset": preset, key: value}
    if codec in VPX:
        return {"crf": str(crf), "b": "0"}
    if codec in CRF_ONLY:
        return {"crf": str(crf)}
    if codec in QUANTISER_ENCODERS and "b" not in (user or {}):
        return fixed_quantiser(crf_quantiser(crf))
    return {}


def codec_defaults(codec: str, pix_fmt: str) -> dict[str, str]:
    """Options ``codec`` needs to open at all for ``pix_fmt``: DNxHD's default profile takes only its
    broadcast sizes and bit rates: dnxhd gets the DNxHR profile for the layout (HQ, HQX at 10 bits, 444)."""
    if codec == "dnxhd":
        return {"profile": "dnxhr_444" if pix_fmt.startswith("yuv444") else
                "dnxhr_hqx" if pix_fmt.endswith("le") else "dnxhr_hq"}
    return {}


def encoder_options(codec: str, pix_fmt: str, crf: int, preset: str, user: dict[str, str]) -> dict[str, str]:
    """Everything ``codec`` is told for ``pix_fmt``: :func:`rate_control`, :func:`codec_defaults`, then the
    ``user``'s options (``--tune``, ``--codec-option``, a live stream's) over them (:func:`merge_options`)."""
    return merge_options({**rate_control(codec, crf, preset, user), **codec_defaults(codec, pix_fmt)}, user)


def merge_options(base: dict[str, str], user: dict[str, str]) -> dict[str, str]:
    """``user``'s options over ``base``; ``x264-params``/``x265-params``/``svtav1-params`` are joined, ours
    first (they keep x265's log quiet, x264's declared frame rate right and carry HDR10 metadata; the user's
    win where both set one)."""
    out = {**base, **user}
    for key in PARAM_LISTS:
        if key in base and key in user:
            out[key] = f"{base[key]}:{user[key]}"
    return out


def parse_codec_option(text: str) -> tuple[str, str]:
    """``"KEY=VALUE"`` -> (KEY, VALUE); ValueError naming what is wrong."""
    key, sep, value = text.partition("=")
    key = key.strip().lstrip("-").split(":")[0]  # "-b:v" as FFmpeg writes it is "b"
    if not sep or not value or not _NAME.fullmatch(key):
        raise ValueError(f"{text!r} is not KEY=VALUE (e.g. profile=4444xq, b=8M, g=1)")
    if key in RESERVED:
        raise ValueError(f"{key} is set from the frames and the container; use --chroma, --bit-depth, --fps")
    return key, value


def _pyav_libraries() -> tuple[str, str] | None:
    """Paths of the libavcodec and libavutil PyAV loaded, or None where that is not certain: other packages
    bring copies of their own (OpenCV's wheel: libavcodec 63 beside PyAV's 62 here), and a context of one
    passed to the other's functions would crash. Each pair comes from one folder; PyAV's wheel keeps its own
    in ``av.libs`` beside the package."""
    av.Codec("rawvideo", "w")  # PyAV's libraries are loaded by now
    try:
        with open("/proc/self/maps") as maps:
            mapped = {ln.split()[-1] for ln in maps if ".so" in ln}
    except OSError:
        return None
    folders: dict[str, dict[str, str]] = {}
    for path in mapped:
        for stem in ("libavcodec", "libavutil"):
            if os.path.basename(path).startswith(stem):
                folders.setdefault(os.path.dirname(path), {})[stem] = path
    pairs = {folder: (libs["libavcodec"], libs["libavutil"])
             for folder, libs in folders.items() if len(libs) == 2}
    own = os.path.join(os.path.dirname(os.path.dirname(av.__file__)), "av.libs")
    if own in pairs:
        return pairs[own]
    return next(iter(pairs.values())) if len(pairs) == 1 else None


@cache
def _libs() -> tuple[ctypes.CDLL, ctypes.CDLL] | None:
    """PyAV's own libavcodec and libavutil (the same loaded copies), or None where they cannot be found."""
    paths = _pyav_libraries()
    if paths is None:
        return None
    try:
        lavc, lavu = ctypes.CDLL(paths[0]), ctypes.CDLL(paths[1])
    except OSError:
        return None
    lavc.avcodec_find_encoder_by_name.restype = ctypes.c_void_p
    lavc.avcodec_find_encoder_by_name.argtypes = [ctypes.c_char_p]
    lavc.avcodec_alloc_context3.restype = ctypes.c_void_p
    lavc.avcodec_alloc_context3.argtypes = [ctypes.c_void_p]
    lavc.avcodec_free_context.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
    lavu.av_opt_find.restype = ctypes.c_void_p
    lavu.av_opt_find.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int,
                                 ctypes.c_int]
    return lavc, lavu


@cache
def has_option(codec: str, name: str) -> bool | None:
    """Whether encoder ``codec`` has an AVOption ``name`` (a generic one or its own), asked of a context
    allocated for it; None where that cannot be asked (libraries not found, unknown encoder)."""
    libs = _libs()
    if libs is None:
        return None
    lavc, lavu = libs
    enc = lavc.avcodec_find_encoder_by_name(codec.encode())
    ctx = ctypes.c_void_p(lavc.avcodec_alloc_context3(enc) if enc else None)
    if not ctx.value:
        return None
    try:
        return bool(lavu.av_opt_find(ctx, name.encode(), None, 0, 1))  # 1: AV_OPT_SEARCH_CHILDREN
    finally:
        lavc.avcodec_free_context(ctypes.byref(ctx))


def codec_option_problem(codec: str, options: dict[str, str]) -> str | None:
    """Why ``options`` cannot go to ``codec`` (a name it does not have), or None."""
    try:
        av.Codec(codec, "w")
    except (av.FFmpegError, ValueError):
        return None  # the writer says the encoder is unknown
    unknown = [k for k in options if has_option(codec, k) is False]
    if unknown:
        return f"encoder {codec} has no option {unknown[0]!r} (see ffmpeg -h encoder={codec})"
    return None


#: encoders that raise their threads, and the thread that opens them, to realtime scheduling: SVT-AV1 run
#: as root (a container's default) makes them SCHED_FIFO priority 99, 41 of 42 threads of a process here; on
#: a few cores those starve Ray's own processes and the decoders (a test process hung waiting on Ray after it)
REALTIME_ENCODERS = frozenset({"libsvtav1"})


def ordinary_scheduling() -> int:
    """Put every thread of this process that has a realtime policy back to ``SCHED_OTHER``; how many were.
    Linux only (0 elsewhere)."""
    if not hasattr(os, "sched_setscheduler") or not os.path.isdir("/proc/self/task"):
        return 0
    changed = 0
    for name in os.listdir("/proc/self/task"):
        tid = int(name)
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            if os.sched_getscheduler(tid) in (os.SCHED_FIFO, os.SCHED_RR):
                os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
                changed += 1
    return changed
