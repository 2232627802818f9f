"""Degradations that make low-resolution (LR) test material from ground truth (numpy only).

The published video super-resolution tables (Vid4, Vimeo-90K-T, UDM10; BasicVSR, EDVR, DUF, ...)
use two degradations; docs/evaluation.md cites the scripts each one follows.

- **BI**: MATLAB ``imresize(img, 1/s, 'bicubic')`` (antialiased). :func:`imresize` is a
  numpy port of MATLAB's ``imresize``/``contributions`` (the algorithm BasicSR's
  ``basicsr/utils/matlab_functions.py`` and mmagic's ``MATLABLikeResize`` also port).
- **BD**: Gaussian blur (sigma 1.6 at x4) then decimation. Default ``method="matlab"`` is
  ``BD_degradation`` of KAIR ``scripts/matlab_scripts/generate_LR_Vimeo90K_BD.m`` (and its Python
  port ``bd_downsample`` in mmagic ``tools/dataset_converters/vimeo90k/preprocess_vimeo90k_dataset.py``):
  ``fspecial('gaussian', ceil(3*sigma)*2+2, sigma)``, ``imfilter(..., 'replicate')`` in double,
  keep rows/columns ``s/2 : s : end-s/2`` (1-based). ``method="duf"`` is the DUF paper's
  TensorFlow degradation (yhjo09/VSR-DUF ``test.py``/``utils.py``; BasicSR ``duf_downsample``):
  13x13 Gaussian, reflect padding, keep rows/columns ``0 : s : end`` (0-based).

Arrays: ``(H, W)``, ``(H, W, C)`` or ``(T, H, W, C)``; the frame functions take and return uint8.
Nothing here crops: frames whose size is not a multiple of the scale should go through
:func:`crop_to_multiple` first (top-left crop, MATLAB ``modcrop``), as the benchmark protocols do.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

__all__ = [
    "crop_to_multiple",
    "degrade_bd",
    "degrade_bi",
    "gaussian_kernel",
    "gaussian_kernel_1d",
    "imresize",
    "resize_matrix",
    "to_uint8",
]

BDMethod = Literal["matlab", "duf"]


def _spatial_axes(ndim: int) -> tuple[int, int]:
    if ndim == 2:
        return 0, 1
    if ndim == 3:
        return 0, 1
    if ndim == 4:
        return 1, 2
    raise ValueError(f"expected (H, W), (H, W, C) or (T, H, W, C), got {ndim} dimensions")


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB ``imresize>cubic``)."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return inner + outer


def resize_matrix(in_length: int, out_length: int, scale: float, antialias: bool = True) -> np.ndarray:
    """Dense ``(out_length, in_length)`` matrix of MATLAB's bicubic ``contributions`` along one axis.

    Output pixel ``x`` (1-based) maps to input coordinate ``u = x/scale + 0.5*(1 - 1/scale)``; when
    shrinking with antialiasing the kernel is stretched to ``h(t) = scale*cubic(scale*t)`` with width
    ``4/scale``. Weights are normalised per output pixel *before* out-of-range indices are mirrored
    (symmetric, edge pixel repeated), exactly as MATLAB does.
    """
    if in_length < 1 or out_length < 1:
        raise ValueError("lengths must be positive")
    shrink = scale < 1 and antialias
    width = 4.0 / scale if shrink else 4.0
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
    dist = u[:, None] - idx
    w = scale * _cubic(dist * scale) if shrink else _cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    # MATLAB: aux = [1:in, in:-1:1]; indices = aux(mod(indices-1, 2*in) + 1)  (1-based).
    period = 2 * in_length
    m = np.mod(idx.astype(np.int64) - 1, period)
    src = np.where(m < in_length, m, period - 1 - m)
    mat = np.zeros((out_length, in_length), dtype=np.float64)
    rows = np.broadcast_to(np.arange(out_length)[:, None], src.shape)
    np.add.at(mat, (rows, src), w)
    return mat


#: output rows of a resize computed per matrix product (``_apply_axis``)
BAND_ROWS = 32


def _apply_axis(x: np.ndarray, mat: np.ndarray, axis: int) -> np.ndarray:
    """``mat`` (out, in) applied along ``axis`` of ``x``, block by block of ``BAND_ROWS`` output rows, each
    over only the input rows its weights touch: the same products and sums as the dense product (the
    skipped terms are zeros), 5x faster for a 4x shrink of 2560x1088 frames."""
    n_out, n_in = mat.shape
    nonzero = mat != 0
    first = nonzero.argmax(axis=1)
    last = n_in - 1 - nonzero[:, ::-1].argmax(axis=1)
    moved = np.moveaxis(x, axis, 0)  # resized axis first (a view)
    out = np.empty((n_out, *moved.shape[1:]), dtype=np.result_type(mat, x))
    for start in range(0, n_out, BAND_ROWS):
        stop = min(n_out, start + BAND_ROWS)
        lo, hi = int(first[start:stop].min()), int(last[start:stop].max()) + 1
        out[start:stop] = np.tensordot(mat[start:stop, lo:hi], moved[lo:hi], axes=1)
    return np.ascontiguousarray(np.moveaxis(out, 0, axis))


def imresize(
    img: np.ndarray,
    scale: float | None = None,
    output_shape: tuple[int, int] | None = None,
    antialias: bool = True,
) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` (or ``imresize(img, [h w], 'bicubic')``) in float64.

    ``img`` is ``(H, W)``, ``(H, W, C)`` or a batch ``(T, H, W, C)`` of any numeric dtype and range;
    the result is float64, neither rounded nor clipped. Give ``scale`` (output size
    ``ceil(scale * size)``) or ``output_shape=(h, w)`` (per-axis scale ``h/H``, ``w/W``). As in MATLAB
    the axis with the smaller scale is resized first (rows on a tie).
    """
    arr = np.asarray(img, dtype=np.float64)
    ah, aw = _spatial_axes(arr.ndim)
    in_h, in_w = arr.shape[ah], arr.shape[aw]
    if scale is not None:
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        scales = (float(scale), float(scale))
        out_h, out_w = math.ceil(scale * in_h), math.ceil(scale * in_w)
    elif output_shape is not None:
        out_h, out_w = int(output_shape[0]), int(output_shape[1])
        if out_h < 1 or out_w < 1:
            raise ValueError(f"output_shape must be positive, got {output_shape}")
        scales = (out_h / in_h, out_w / in_w)
    else:
        raise ValueError("give scale or output_shape")
    plan = [(scales[0], ah, in_h, out_h), (scales[1], aw, in_w, out_w)]
    plan.sort(key=lambda p: p[0])  # stable: rows first on a tie, like MATLAB's sort
    out = arr
    for s, axis, n_in, n_out in plan:
        out = _apply_axis(out, resize_matrix(n_in, n_out, s, antialias), axis)
    return out


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Clip to [0, 255] and round half away from zero, as MATLAB's ``uint8()``/``im2uint8`` do."""
    return np.floor(np.clip(x, 0.0, 255.0) + 0.5).astype(np.uint8)


def crop_to_multiple(frames: np.ndarray, scale: int) -> np.ndarray:
    """Top-left crop so height and width are multiples of ``scale`` (MATLAB ``modcrop``); a view."""
    ah, aw = _spatial_axes(frames.ndim)
    h, w = frames.shape[ah], frames.shape[aw]
    index = [slice(None)] * frames.ndim
    index[ah] = slice(0, h - h % scale)
    index[aw] = slice(0, w - w % scale)
    return frames[tuple(index)]


def _check_frames(frames: np.ndarray, scale: int) -> None:
    if frames.dtype != np.uint8:
        raise TypeError(f"frames must be uint8, got {frames.dtype}")
    if frames.ndim not in (3, 4):
        raise ValueError(f"frames must be (H, W, C) or (T, H, W, C), got shape {frames.shape}")
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")


def degrade_bi(frames: np.ndarray, scale: int) -> np.ndarray:
    """BI: MATLAB bicubic downscaling by ``1/scale`` of uint8 frames, back to uint8.

    ``imresize(x/255, 1/scale)*255``, clipped and rounded half away from zero (``im2double`` ->
    ``imresize`` -> ``imwrite``). No crop: the LR size is ``ceil(H/scale) x ceil(W/scale)``.
    """
    _check_frames(frames, scale)
    if frames.ndim == 4:  # frame by frame: a float64 copy of one frame stays in cache, not of the batch
        if len(frames) == 0:
            return frames[:, ::scale, ::scale]  # ceil(H/scale) x ceil(W/scale)
        return np.stack([degrade_bi(f, scale) for f in frames])
    lr = imresize(np.true_divide(frames, 255.0, dtype=np.float64), 1.0 / scale)  # one pass
    return to_uint8(lr * 255.0)


def gaussian_kernel_1d(size: int, sigma: float) -> np.ndarray:
    """Normalised 1-D Gaussian sampled at ``k - (size-1)/2`` (even sizes are centred between taps)."""
    if size < 1 or sigma <= 0:
        raise ValueError("size must be >= 1 and sigma > 0")
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(t * t) / (2.0 * sigma * sigma))
    return g / g.sum()


def gaussian_kernel(size: int, sigma: float) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', size, sigma)``: a ``(size, size)`` kernel summing to 1.

    fspecial's zeroing of values below ``eps*max`` is kept; it never triggers for the kernels used
    here, so the kernel equals the outer product of :func:`gaussian_kernel_1d` with itself.
    """
    g = gaussian_kernel_1d(size, sigma)
    k = np.outer(g, g)
    k[k < np.finfo(np.float64).eps * k.max()] = 0.0
    return k / k.sum()


def _correlate_decimate(
    x: np.ndarray, taps: np.ndarray, axis: int, anchor: int, mode: str, phase: int, step: int, count: int
) -> np.ndarray:
    """Samples ``phase + step*j`` (``j < count``) of the 'same'-size correlation
    ``y[i] = sum_k taps[k] * x[i + k - anchor]`` along ``axis``, borders padded by ``mode``.

    Only the kept samples are computed (blur-then-decimate without the discarded work).
    """
    pad = [(0, 0)] * x.ndim
    pad[axis] = (anchor, len(taps) - 1 - anchor)
    xp = np.moveaxis(np.pad(x, pad, mode=mode), axis, 0)
    out = np.zeros((count, *xp.shape[1:]), dtype=np.float64)
    for k, t in enumerate(taps):
        start = phase + k
        out += t * xp[start : start + step * (count - 1) + 1 : step]
    return np.moveaxis(out, 0, axis)


def degrade_bd(
    frames: np.ndarray,
    scale: int,
    sigma: float = 1.6,
    method: BDMethod = "matlab",
) -> np.ndarray:
    """BD: Gaussian blur then keep every ``scale``-th pixel; uint8 in, uint8 out.

    ``method="matlab"`` (default; the Vid4/Vimeo-90K ``BDx4`` sets that BasicVSR and mmagic test on --
    the official BasicVSR BD weights need this sampling phase, see docs/evaluation.md):
    kernel ``fspecial('gaussian', ceil(3*sigma)*2+2, sigma)`` (12x12 at sigma 1.6, even, so it is centred
    half a pixel right/down of its anchor), ``imfilter`` correlation with anchor ``floor((n+1)/2)``
    (1-based) and replicate borders, in float; keep 0-based rows/columns ``scale//2 - 1 + scale*j`` -- with
    the half-pixel kernel offset each LR pixel is centred on its ``scale x scale`` HR block, as in BI.
    Whether the blurred frame is rounded to uint8 before decimation (``imfilter`` on a uint8 image, as in
    TTVSR's ``degradation/BD_degradation.m``) or after it (KAIR/mmagic, double precision) makes no
    difference: decimation only selects pixels, so both round each kept value once.

    ``method="duf"``: DUF's degradation (13x13 Gaussian, reflect padding without edge repeat, keep
    0-based rows/columns ``scale*j``; DUF uses ``sigma = 0.4*scale``). DUF itself fed the float LR to its
    network; here it is rounded to uint8 like every LR set stored as PNG.

    Output size is ``floor(H/scale) x floor(W/scale)``; crop with :func:`crop_to_multiple` first.
    """
    _check_frames(frames, scale)
    x = frames.astype(np.float64)
    ah, aw = _spatial_axes(x.ndim)
    if method == "matlab":
        size = math.ceil(sigma * 3) * 2 + 2
        taps = gaussian_kernel_1d(size, sigma)
        anchor, mode, phase = (size + 1) // 2 - 1, "edge", max(scale // 2 - 1, 0)
    elif method == "duf":
        size = 13
        taps = gaussian_kernel_1d(size, sigma)
        anchor, mode, phase = size // 2, "reflect", 0
    else:
        raise ValueError(f"unknown BD method {method!r}; use 'matlab' or 'duf'")
    h, w = x.shape[ah], x.shape[aw]
    if h < scale or w < scale:
        raise ValueError(f"frame {h}x{w} is smaller than the scale {scale}")
    blurred = _correlate_decimate(x, taps, ah, anchor, mode, phase, scale, h // scale)
    blurred = _correlate_decimate(blurred, taps, aw, anchor, mode, phase, scale, w // scale)
    return to_uint8(blurred)
