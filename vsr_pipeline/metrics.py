"""PSNR and SSIM on the Y channel, as the published super-resolution tables compute them (numpy only).

Follows BasicSR ``basicsr/metrics/psnr_ssim.py`` (``calculate_psnr``/``calculate_ssim`` with
``test_y_channel=True``) and mmagic ``mmagic/evaluation/metrics/{psnr,ssim}.py`` (``convert_to='Y'``):

- Y is ITU-R BT.601 studio range, ``16 + (65.481 R + 128.553 G + 24.966 B)`` with RGB in [0, 1]
  (MATLAB ``rgb2ycbcr``), kept in float: neither BasicSR (``to_y_channel``) nor mmagic rounds it.
- PSNR: ``10 log10(255^2 / MSE)`` over the (border-cropped) Y plane; ``inf`` for identical frames.
- SSIM: Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5), ``C1 = (0.01*255)^2``,
  ``C2 = (0.03*255)^2``, statistics only where the window fits ('valid'), mean of the SSIM map.

Averaging (Vid4 protocol, BasicSR ``VideoBaseModel._log_validation_metric_values``, mmagic
``BaseSampleWiseMetric.process``): per frame, mean over the frames of a sequence, then mean over
sequences -- see :class:`SequenceScore`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

try:  # optional: ~8x faster separable filtering; the numpy path gives the same numbers (1e-12)
    import cv2
except ImportError:  # pragma: no cover - cv2 is a project dependency
    cv2 = None

__all__ = ["SequenceScore", "gaussian_window_1d", "psnr_y", "rgb_to_y", "score_frames", "ssim_y", "tdiff_y"]

_Y_WEIGHTS = np.array([65.481, 128.553, 24.966], dtype=np.float64)


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 studio-range luma of RGB in [0, 255] (uint8 or float): float64 in [16, 235], unrounded.

    A single-channel image, ``(H, W)`` or ``(H, W, 1)``, is returned as its values in float64 (what
    BasicSR's ``to_y_channel`` does with grayscale, e.g. Set14 ``bridge``).
    """
    x = np.asarray(img, dtype=np.float64)
    if x.ndim >= 3 and x.shape[-1] == 3:
        return 16.0 + (x / 255.0) @ _Y_WEIGHTS
    if x.ndim >= 3 and x.shape[-1] == 1:
        return x[..., 0]
    if x.ndim == 2:
        return x
    raise ValueError(f"expected (..., H, W, 3), (H, W, 1) or (H, W), got shape {x.shape}")


def _crop(y: np.ndarray, border: int) -> np.ndarray:
    if border < 0:
        raise ValueError(f"crop_border must be >= 0, got {border}")
    if border == 0:
        return y
    if 2 * border >= min(y.shape[-2:]):
        raise ValueError(f"crop_border {border} leaves nothing of a {y.shape[-2]}x{y.shape[-1]} frame")
    return y[..., border:-border, border:-border]


def _pair(a: np.ndarray, b: np.ndarray, crop_border: int, round_y: bool) -> tuple[np.ndarray, np.ndarray]:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    ya, yb = _crop(rgb_to_y(a), crop_border), _crop(rgb_to_y(b), crop_border)
    if round_y:  # MATLAB rgb2ycbcr on uint8 images returns uint8 Y (round half away from zero)
        ya, yb = np.floor(ya + 0.5), np.floor(yb + 0.5)
    return ya, yb


def psnr_y(a: np.ndarray, b: np.ndarray, crop_border: int = 0, round_y: bool = False) -> float:
    """Y-channel PSNR (data range 255) of two RGB frames ``(H, W, 3)`` in [0, 255]; ``inf`` if equal.

    ``crop_border`` pixels are dropped on every side first (Set5/Set14 use ``scale``; Vid4 uses 0).
    ``round_y=True`` rounds Y to integers first, as MATLAB evaluation scripts on uint8 images do
    (BasicSR and mmagic do not; docs/evaluation.md says which tables match which).
    """
    ya, yb = _pair(a, b, crop_border, round_y)
    mse = float(np.mean((ya - yb) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(255.0 * 255.0 / mse))


def gaussian_window_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 1-D Gaussian (``cv2.getGaussianKernel(11, 1.5)``); SSIM's window is its outer product."""
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(t * t) / (2.0 * sigma * sigma))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray, use_cv2: bool = True) -> np.ndarray:
    """Separable 'valid' correlation of the last two axes with ``outer(g, g)``."""
    n = len(g)
    if use_cv2 and cv2 is not None and x.ndim >= 2:
        r = n // 2
        flat = x.reshape(-1, *x.shape[-2:])
        out = [cv2.sepFilter2D(p, cv2.CV_64F, g, g)[r : p.shape[0] - r, r : p.shape[1] - r] for p in flat]
        return np.stack(out).reshape(*x.shape[:-2], x.shape[-2] - n + 1, x.shape[-1] - n + 1)
    h, w = x.shape[-2] - n + 1, x.shape[-1] - n + 1
    rows = np.zeros((*x.shape[:-2], h, x.shape[-1]), dtype=np.float64)
    for k, t in enumerate(g):
        rows += t * x[..., k : k + h, :]
    out = np.zeros((*x.shape[:-2], h, w), dtype=np.float64)
    for k, t in enumerate(g):
        out += t * rows[..., :, k : k + w]
    return out


def _ssim_plane(x: np.ndarray, y: np.ndarray, use_cv2: bool = True) -> float:
    c1 = (0.01 * 255.0) ** 2
    c2 = (0.03 * 255.0) ** 2
    g = gaussian_window_1d(11, 1.5)
    if min(x.shape) < len(g):
        raise ValueError(f"SSIM needs at least 11x11 pixels, got {x.shape}")
    stats = _filter_valid(np.stack([x, y, x * x, y * y, x * y]), g, use_cv2)
    mu_x, mu_y, xx, yy, xy = stats
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    num = (2.0 * mu_xy + c1) * (2.0 * (xy - mu_xy) + c2)
    den = (mu_xx + mu_yy + c1) * ((xx - mu_xx) + (yy - mu_yy) + c2)
    return float(np.mean(num / den))


def ssim_y(a: np.ndarray, b: np.ndarray, crop_border: int = 0, round_y: bool = False) -> float:
    """Y-channel SSIM of two RGB frames ``(H, W, 3)`` in [0, 255] (BasicSR ``_ssim`` on float64 Y)."""
    ya, yb = _pair(a, b, crop_border, round_y)
    return _ssim_plane(ya, yb)


def tdiff_y(pred: Iterable[np.ndarray], gt: Iterable[np.ndarray], crop_border: int = 0) -> float:
    """Temporal flicker of ``pred`` against ``gt`` (two equally long RGB sequences, at least two frames).

    ``tdiff = 1/(T-1) sum_{t=1}^{T-1} mean_pixels |(Y_p[t] - Y_p[t-1]) - (Y_g[t] - Y_g[t-1])|`` on BT.601 Y
    (unrounded, ``crop_border`` dropped), in 8-bit levels: how much the error ``Y_p - Y_g`` changes from one
    frame to the next. 0 for a perfect output and for any error that stays still; lower is better.
    """
    total, steps, previous = 0.0, 0, None
    for p, g in zip(pred, gt, strict=True):
        if p.shape != g.shape:
            raise ValueError(f"shapes differ: {p.shape} vs {g.shape}")
        error = _crop(rgb_to_y(p), crop_border) - _crop(rgb_to_y(g), crop_border)
        if previous is not None:
            total += float(np.mean(np.abs(error - previous)))
            steps += 1
        previous = error
    if steps == 0:
        raise ValueError("tdiff needs at least two frames")
    return total / steps


def score_frames(
    gt: Iterable[np.ndarray], pred: Iterable[np.ndarray], crop_border: int = 0, round_y: bool = False
) -> tuple[list[float], list[float]]:
    """Per-frame ``(psnr_y list, ssim_y list)`` of two equally long frame sequences."""
    psnrs: list[float] = []
    ssims: list[float] = []
    for a, b in zip(gt, pred, strict=True):
        psnrs.append(psnr_y(a, b, crop_border, round_y))
        ssims.append(ssim_y(a, b, crop_border, round_y))
    return psnrs, ssims


@dataclass
class SequenceScore:
    """Collects per-frame scores by sequence and averages them as the Vid4 tables do.

    ``add(name, psnr, ssim)`` per frame; :meth:`per_sequence` gives each sequence's frame mean;
    :meth:`mean` is the unweighted mean of those (BasicSR/mmagic, "average among folders"), while
    :meth:`frame_mean` (every frame weighted equally) is reported by some papers and differs slightly.
    """

    psnr: dict[str, list[float]] = field(default_factory=dict)
    ssim: dict[str, list[float]] = field(default_factory=dict)

    def add(self, sequence: str, psnr: float, ssim: float) -> None:
        self.psnr.setdefault(sequence, []).append(float(psnr))
        self.ssim.setdefault(sequence, []).append(float(ssim))

    def add_frames(
        self,
        sequence: str,
        gt: Iterable[np.ndarray],
        pred: Iterable[np.ndarray],
        crop_border: int = 0,
        round_y: bool = False,
    ) -> None:
        """Score a whole sequence frame by frame and add it."""
        for p, s in zip(*score_frames(gt, pred, crop_border, round_y), strict=True):
            self.add(sequence, p, s)

    def per_sequence(self) -> dict[str, dict[str, float]]:
        """``{name: {"psnr": mean, "ssim": mean, "frames": n}}`` in insertion order."""
        return {
            name: {
                "psnr": float(np.mean(self.psnr[name])),
                "ssim": float(np.mean(self.ssim[name])),
                "frames": len(self.psnr[name]),
            }
            for name in self.psnr
        }

    def mean(self) -> dict[str, float]:
        """Mean over sequences of the per-sequence means (the published Vid4 figure)."""
        seqs = self.per_sequence()
        if not seqs:
            raise ValueError("no scores added")
        return {
            "psnr": float(np.mean([s["psnr"] for s in seqs.values()])),
            "ssim": float(np.mean([s["ssim"] for s in seqs.values()])),
        }

    def frame_mean(self) -> dict[str, float]:
        """Mean over all frames of all sequences (each frame weighted equally)."""
        if not self.psnr:
            raise ValueError("no scores added")
        return {
            "psnr": float(np.mean([v for vals in self.psnr.values() for v in vals])),
            "ssim": float(np.mean([v for vals in self.ssim.values() for v in vals])),
        }
