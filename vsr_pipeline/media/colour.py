"""YUV <-> RGB conversion with the exact matrix and range a stream is tagged with.

The reader and the writer use the same matrices, so decode -> encode keeps colours. Rules:

- matrix from the ``colorspace`` tag (AVColorSpace ints); unspecified and unknown -> BT.601, as swscale does;
- range from ``color_range``: 2 (JPEG) is full range, anything else limited (16-235/240);
- chroma: decode replicates each chroma sample over its 2x2 (4:2:0) or 2x1 (4:2:2) block (what swscale's
  default path and OpenCV do); encode averages each block. Replicate-then-average is exact, so a round trip
  does not blur chroma.

OpenCV's ``COLOR_YUV2RGB_I420`` is used where its matrix is the one needed (BT.601, limited, 4:2:0, even
size); it is ~3x faster than the general path. Everything else goes through ``cv2.transform`` with our own
3x4 matrix; pixel formats we do not handle (high bit depth, semi-planar, palettes) go through swscale with
the same colorspace and range passed explicitly.
"""

from __future__ import annotations

from functools import lru_cache

import av
import cv2
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

RANGE_FULL = 2  # AVCOL_RANGE_JPEG
SPC_BT709 = 1
SPC_UNSPECIFIED = 2

# AVColorSpace -> (Kr, Kb)
_KR_KB: dict[int, tuple[float, float]] = {
    1: (0.2126, 0.0722),  # BT.709
    4: (0.30, 0.11),  # FCC
    5: (0.299, 0.114),  # BT.470BG
    6: (0.299, 0.114),  # SMPTE 170M
    7: (0.212, 0.087),  # SMPTE 240M
    9: (0.2627, 0.0593),  # BT.2020 NCL
    10: (0.2627, 0.0593),  # BT.2020 CL (approximated as NCL)
}
_BT601 = (0.299, 0.114)

# AVColorSpace -> swscale SWS_CS_* for the swscale fallback
_SWS_CS = {1: Colorspace.ITU709, 4: Colorspace.FCC, 7: Colorspace.SMPTE240M, 9: Colorspace.BT2020,
           10: Colorspace.BT2020}

_YUV_8BIT = {
    "yuv420p": (2, 2), "yuvj420p": (2, 2), "yuv422p": (2, 1), "yuvj422p": (2, 1),
    "yuv444p": (1, 1), "yuvj444p": (1, 1), "yuv440p": (1, 2), "yuvj440p": (1, 2),
}


def is_full_range(color_range: int, pix_fmt: str = "") -> bool:
    """Full range when tagged JPEG, or for the deprecated ``yuvj*`` formats."""
    return color_range == RANGE_FULL or pix_fmt.startswith("yuvj")


def matrix_name(colorspace: int) -> str:
    """Human-readable name of the matrix actually used for ``colorspace``."""
    kr_kb = _KR_KB.get(colorspace, _BT601)
    return {(0.2126, 0.0722): "bt709", (0.30, 0.11): "fcc", (0.212, 0.087): "smpte240m",
            (0.2627, 0.0593): "bt2020"}.get(kr_kb, "bt601")


@lru_cache(maxsize=32)
def yuv_to_rgb_matrix(colorspace: int, full: bool) -> np.ndarray:
    """3x4 float32 matrix M with rgb = M @ [y, u, v, 1] for 8-bit samples."""
    kr, kb = _KR_KB.get(colorspace, _BT601)
    kg = 1.0 - kr - kb
    a = np.array([
        [1.0, 0.0, 2 * (1 - kr)],
        [1.0, -2 * (1 - kb) * kb / kg, -2 * (1 - kr) * kr / kg],
        [1.0, 2 * (1 - kb), 0.0],
    ])
    if full:
        offset = np.array([0.0, 128.0, 128.0])
    else:
        a = a * np.array([255 / 219, 255 / 224, 255 / 224])
        offset = np.array([16.0, 128.0, 128.0])
    m = np.hstack([a, (-a @ offset)[:, None]]).astype(np.float32)
    m.setflags(write=False)
    return m


@lru_cache(maxsize=32)
def rgb_to_yuv_matrix(colorspace: int, full: bool) -> np.ndarray:
    """3x4 float32 matrix, the exact inverse of :func:`yuv_to_rgb_matrix`."""
    m = yuv_to_rgb_matrix(colorspace, full).astype(np.float64)
    a_inv = np.linalg.inv(m[:, :3])
    out = np.hstack([a_inv, (-a_inv @ m[:, 3])[:, None]]).astype(np.float32)
    out.setflags(write=False)
    return out


def _plane(frame: av.VideoFrame, i: int) -> np.ndarray:
    p = frame.planes[i]
    return np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width]


def frame_to_rgb(frame: av.VideoFrame, colorspace: int, color_range: int) -> np.ndarray:
    """Decoded frame -> (H, W, 3) uint8 RGB, with the matrix for ``colorspace`` and ``color_range``."""
    fmt = frame.format.name
    h, w = frame.height, frame.width
    full = is_full_range(color_range, fmt)
    if fmt == "rgb24":
        return frame.to_ndarray()
    if fmt == "gray":
        y = _plane(frame, 0)
        if not full:
            y = np.clip((y.astype(np.float32) - 16) * (255 / 219) + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(y[:, :, None], 3, axis=2))
    sub = _YUV_8BIT.get(fmt)
    if sub is None:
        sws_cs = _SWS_CS.get(colorspace, Colorspace.ITU601)
        rng = ColorRange.JPEG if full else ColorRange.MPEG
        return frame.reformat(format="rgb24", src_colorspace=sws_cs, src_color_range=rng).to_ndarray()
    y, u, v = _plane(frame, 0), _plane(frame, 1), _plane(frame, 2)
    kr_kb = _KR_KB.get(colorspace, _BT601)
    if sub == (2, 2) and not full and kr_kb == _BT601 and h % 2 == 0 and w % 2 == 0:
        i420 = np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(h * 3 // 2, w)
        return cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
    if sub != (1, 1):
        size = (u.shape[1] * sub[0], u.shape[0] * sub[1])
        u = cv2.resize(u, size, interpolation=cv2.INTER_NEAREST)[:h, :w]
        v = cv2.resize(v, size, interpolation=cv2.INTER_NEAREST)[:h, :w]
    return cv2.transform(cv2.merge([y, u, v]), yuv_to_rgb_matrix(colorspace, full))


def rgb_to_frame(rgb: np.ndarray, pix_fmt: str, colorspace: int, color_range: int) -> av.VideoFrame:
    """(H, W, 3) uint8 RGB -> ``yuv420p`` (even size) or ``yuv444p`` VideoFrame, tagged."""
    h, w = rgb.shape[:2]
    full = is_full_range(color_range)
    yuv = cv2.transform(np.ascontiguousarray(rgb), rgb_to_yuv_matrix(colorspace, full))
    if pix_fmt == "yuv444p":
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv444p", channel_last=True)
    elif pix_fmt == "yuv420p":
        y, u, v = cv2.split(yuv)
        half = (w // 2, h // 2)
        u = cv2.resize(u, half, interpolation=cv2.INTER_AREA)
        v = cv2.resize(v, half, interpolation=cv2.INTER_AREA)
        i420 = np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(h * 3 // 2, w)
        frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
    else:
        raise ValueError(f"unsupported output pixel format {pix_fmt!r}")
    frame.colorspace = colorspace
    frame.color_range = RANGE_FULL if full else 1
    return frame
