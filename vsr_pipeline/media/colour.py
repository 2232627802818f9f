"""YUV <-> RGB conversion with the exact matrix and range a stream is tagged with.

The reader and the writer use the same matrices, so decode -> encode keeps colours. Rules:

- matrix from the ``colorspace`` tag (AVColorSpace ints); unspecified and unknown -> BT.601, as swscale does;
- range from ``color_range``: 2 (JPEG) is full range, anything else limited (16-235/240);
- chroma: decode interpolates subsampled chroma (4:2:0, 4:2:2, 4:1:1) bicubically to full size, each
  sample at the centre of its block (OpenCV's ``INTER_CUBIC``), as quality players do; encode averages each
  block. Before 2026-12-06 decode repeated each sample over its block (swscale's default path and OpenCV's
  ``COLOR_YUV2RGB_I420`` do): models that read RGB saw blocky colour edges; on real clips stored 4:2:0
  BasicVSR scored 0.70 dB lower in Y and every model's colour was further from the truth
  (``benchmarks/quality_chroma_upsampling.py``, docs/evaluation.md (j)). Interpolated chroma is not a
  lossless round trip: decoding and re-encoding at one size changes chroma a little each time (the
  pipeline encodes only what the model made, at the output's size).

Every planar YUV frame goes through ``cv2.transform`` with our own 3x4 matrix, for 8-bit and deeper alike
(swscale's own 10-bit limited range maps white to 65283 of 65535); pixel formats we do not handle
(semi-planar, palettes, RGB) go through swscale with the same colorspace and range passed explicitly.

High bit depth: with ``deep``, a frame of more than 8 bits per sample (``yuv420p10le``, ...) becomes
(H, W, 3) **uint16** RGB scaled to the full 0-65535 range (as ``rgb48``), and :func:`rgb_to_frame` takes
such frames to ``yuv420p10le`` / ``yuv422p10le`` / ``yuv444p10le``. Samples of b bits are scaled as the
ITU-R BT.2100 / FFmpeg convention has it: limited range is the 8-bit range times 2^(b-8); full range spans
0..2^b-1.
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

#: RGB frames' sample types: 8 bits, or 16 for video of more than 8 bits (``deep``)
RGB_MAX = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}

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


def _sample_scale(bits: int, full: bool) -> np.ndarray:
    """4x4 affine map from ``bits``-bit [y, u, v, 1] to the 8-bit samples that mean the same colour."""
    s = np.eye(4)
    if bits == 8:
        return s
    if not full:  # limited range: 8-bit levels times 2^(bits-8)
        s[:3, :3] /= 2 ** (bits - 8)
        return s
    k = 255 / (2**bits - 1)  # full range: 0..2^bits-1, chroma centred at 2^(bits-1)
    s[:3, :3] *= k
    s[1:3, 3] = 128 - 2 ** (bits - 1) * k
    return s


@lru_cache(maxsize=32)
def yuv_to_rgb_matrix(colorspace: int, full: bool, bits: int = 8, rgb_max: int = 255) -> np.ndarray:
    """3x4 float32 matrix M with rgb = M @ [y, u, v, 1] for ``bits``-bit samples, RGB in 0..``rgb_max``."""
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
    m8 = np.hstack([a, (-a @ offset)[:, None]]) * (rgb_max / 255)
    m = (m8 @ _sample_scale(bits, full)).astype(np.float32)
    m.setflags(write=False)
    return m


@lru_cache(maxsize=32)
def rgb_to_yuv_matrix(colorspace: int, full: bool, bits: int = 8, rgb_max: int = 255) -> np.ndarray:
    """3x4 float32 matrix, the exact inverse of :func:`yuv_to_rgb_matrix`."""
    m = yuv_to_rgb_matrix(colorspace, full, bits, rgb_max).astype(np.float64)
    a_inv = np.linalg.inv(m[:, :3])
    out = np.hstack([a_inv, (-a_inv @ m[:, 3])[:, None]]).astype(np.float32)
    out.setflags(write=False)
    return out


def _plane(frame: av.VideoFrame, i: int, dtype: type = np.uint8) -> np.ndarray:
    p = frame.planes[i]
    size = np.dtype(dtype).itemsize
    return np.frombuffer(p, dtype).reshape(p.height, p.line_size // size)[:, : p.width]


def _planar_yuv(fmt: str) -> tuple[tuple[int, int], int] | None:
    """Chroma subsampling and bits per sample of a planar YUV format we convert ourselves (None: other)."""
    if fmt in _YUV_8BIT:
        return _YUV_8BIT[fmt], 8
    base, _, rest = fmt.partition("p")
    if rest.endswith("le") and rest[:-2].isdigit() and f"{base}p" in _YUV_8BIT and 8 < int(rest[:-2]) <= 16:
        return _YUV_8BIT[f"{base}p"], int(rest[:-2])
    return None


def frame_to_rgb(frame: av.VideoFrame, colorspace: int, color_range: int, deep: bool = False) -> np.ndarray:
    """Decoded frame -> (H, W, 3) uint8 RGB, with the matrix for ``colorspace`` and ``color_range``; with
    ``deep``, a frame of more than 8 bits per sample -> uint16 RGB (0-65535)."""
    fmt = frame.format.name
    h, w = frame.height, frame.width
    full = is_full_range(color_range, fmt)
    layout = _planar_yuv(fmt)
    if fmt == "rgb24":
        return frame.to_ndarray()
    if fmt == "gray":
        y = _plane(frame, 0)
        if not full:
            y = np.clip((y.astype(np.float32) - 16) * (255 / 219) + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(y[:, :, None], 3, axis=2))
    if layout is None:
        sws_cs = _SWS_CS.get(colorspace, Colorspace.ITU601)
        rng = ColorRange.JPEG if full else ColorRange.MPEG
        out = "rgb48le" if deep and max(c.bits for c in frame.format.components) > 8 else "rgb24"
        return frame.reformat(format=out, src_colorspace=sws_cs, src_color_range=rng).to_ndarray()
    sub, bits = layout
    dtype = np.uint16 if bits > 8 else np.uint8
    planes = [_plane(frame, i, dtype) for i in range(3)]
    rgb_max = 65535 if bits > 8 and deep else 255
    matrix = yuv_to_rgb_matrix(colorspace, full, bits, rgb_max)
    if sub != (1, 1):
        planes, scale = _interpolated(planes, sub, bits, h, w)
        matrix = np.concatenate([matrix[:, :3] / scale, matrix[:, 3:]], axis=1)
    rgb = cv2.transform(cv2.merge(planes), matrix)  # rounded, and saturated at 0 but for float32
    if rgb.dtype == np.float32:  # 16-bit samples, interpolated
        rgb = np.rint(np.clip(rgb, 0, rgb_max, out=rgb), out=rgb).astype(np.uint16)
    if rgb_max == 255 and rgb.dtype != np.uint8:  # 8-bit RGB out of interpolated or deeper samples
        rgb = cv2.convertScaleAbs(rgb)  # saturated at 255
    return rgb


def _interpolated(planes: list[np.ndarray], sub: tuple[int, int], bits: int, h: int,
                  w: int) -> tuple[list[np.ndarray], int]:
    """Y, U, V with the chroma brought to the picture's size, centred bicubic (the module's doc), and the
    factor the samples were scaled by: computed on samples with 2 more bits (uint16; float32 above 14 bits),
    as OpenCV's 8-bit resize rounds with a bias (a quarter of a level on a colour gradient)."""
    if bits <= 14:
        planes, scale = [p.astype(np.uint16) << 2 for p in planes], 4
    else:
        planes, scale = [p.astype(np.float32) for p in planes], 1
    size = (planes[1].shape[1] * sub[0], planes[1].shape[0] * sub[1])  # whole blocks, then the picture's
    for i in (1, 2):
        planes[i] = cv2.resize(planes[i], size, interpolation=cv2.INTER_CUBIC)[:h, :w]
    return planes, scale


def rgb_to_frame(rgb: np.ndarray, pix_fmt: str, colorspace: int, color_range: int) -> av.VideoFrame:
    """(H, W, 3) RGB -> a tagged VideoFrame of planar ``pix_fmt``: 4:2:0, 4:2:2 or 4:4:4 (each chroma sample
    the mean of its block): uint8 to 8 bits (``yuv422p``), uint16 (0-65535) to 10, 12 or 16 bits
    (``yuv422p10le``, ``yuv444p16le``)."""
    h, w = rgb.shape[:2]
    full = is_full_range(color_range)
    layout = _planar_yuv(pix_fmt)
    if layout is None or layout[1] not in (8, 10, 12, 16) or layout[0] == (1, 2) or pix_fmt[:4] == "yuvj":
        raise ValueError(f"unsupported output pixel format {pix_fmt!r}")
    (sx, sy), bits = layout
    if (rgb.dtype == np.uint16) != (bits > 8) or rgb.dtype not in RGB_MAX:
        raise ValueError(f"{rgb.dtype} frames cannot be written as {pix_fmt}")
    if w % sx or h % sy:
        raise ValueError(f"{pix_fmt} cannot hold a {w}x{h} frame")
    m = rgb_to_yuv_matrix(colorspace, full, bits, RGB_MAX[rgb.dtype])
    yuv = cv2.transform(np.ascontiguousarray(rgb), m)
    if bits > 8:  # a 16-bit transform saturates at 65535, not at 2^bits - 1; OpenCV's min is 13x numpy's here
        cv2.min(yuv, (float(2**bits - 1),) * 4, dst=yuv)
    y, u, v = cv2.split(yuv)
    if (sx, sy) != (1, 1):
        u, v = (cv2.resize(c, (w // sx, h // sy), interpolation=cv2.INTER_AREA) for c in (u, v))
    if pix_fmt in ("yuv420p", "yuv420p10le"):  # I420 in one buffer: PyAV's fast path
        i420 = np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(h * 3 // 2, w)
        frame = av.VideoFrame.from_ndarray(i420, format=pix_fmt)
    else:  # PyAV 18 has no from_ndarray for these: fill the planes
        frame = av.VideoFrame(w, h, pix_fmt)
        for plane, samples in zip(frame.planes, (y, u, v), strict=True):
            padded = np.zeros((plane.height, plane.line_size // samples.itemsize), samples.dtype)
            padded[:, : samples.shape[1]] = samples
            plane.update(padded)
    frame.colorspace = colorspace
    frame.color_range = RANGE_FULL if full else 1
    return frame
