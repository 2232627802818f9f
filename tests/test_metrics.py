import math

import numpy as np
import pytest

from vsr_pipeline import metrics
from vsr_pipeline.metrics import SequenceScore, psnr_y, rgb_to_y, score_frames, ssim_y


def _rand(shape: tuple[int, ...], seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_rgb_to_y_studio_range() -> None:
    px = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], dtype=np.uint8)
    y = rgb_to_y(px)
    assert y.dtype == np.float64
    assert np.allclose(y[0], [16.0, 235.0, 16 + 65.481])
    assert np.allclose(rgb_to_y(px.astype(np.float32)), y)  # float in [0, 255] works too
    gray = _rand((5, 6), 0)
    assert np.array_equal(rgb_to_y(gray), gray.astype(np.float64))


def test_psnr_identical_and_known_mse() -> None:
    a = _rand((20, 30, 3), 1)
    assert psnr_y(a, a) == math.inf
    b = np.full((20, 30, 3), 100, dtype=np.uint8)
    c = b.copy()
    c[..., :] = 110  # every Y differs by 10 * (65.481 + 128.553 + 24.966) / 255 = 10 * 219/255
    d = 10 * 219 / 255
    assert math.isclose(psnr_y(b, c), 10 * math.log10(255**2 / d**2), rel_tol=1e-12)


def test_crop_border() -> None:
    a = np.zeros((20, 20, 3), dtype=np.uint8)
    b = a.copy()
    b[:3] = 255  # differences only in the top 3 rows
    assert psnr_y(a, b) < 20
    assert psnr_y(a, b, crop_border=3) == math.inf
    assert ssim_y(a, b, crop_border=3) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        psnr_y(a, b, crop_border=10)
    with pytest.raises(ValueError):
        psnr_y(a, b[:-1])


def _ssim_reference(a: np.ndarray, b: np.ndarray) -> float:
    """Straight transcription of Wang et al.: per valid 11x11 window, Gaussian-weighted statistics."""
    x, y = rgb_to_y(a), rgb_to_y(b)
    t = np.arange(11) - 5.0
    g = np.exp(-(t**2) / (2 * 1.5**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            px, py = x[i : i + 11, j : j + 11], y[i : i + 11, j : j + 11]
            mx, my = (w * px).sum(), (w * py).sum()
            vx, vy = (w * (px - mx) ** 2).sum(), (w * (py - my) ** 2).sum()
            cxy = (w * (px - mx) * (py - my)).sum()
            vals.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(vals))


def test_ssim_identical_and_reference() -> None:
    a = _rand((24, 31, 3), 2)
    assert ssim_y(a, a) == pytest.approx(1.0, abs=1e-12)
    noise = np.random.default_rng(3).normal(0, 20, size=a.shape)
    b = np.clip(a + noise, 0, 255).astype(np.uint8)
    ref = _ssim_reference(a, b)
    assert abs(ssim_y(a, b) - ref) < 1e-6
    assert abs(metrics._ssim_plane(rgb_to_y(a), rgb_to_y(b), use_cv2=False) - ref) < 1e-6
    assert ssim_y(a, b) < 0.99


def test_ssim_with_border_matches_cropped_frames() -> None:
    a, b = _rand((30, 30, 3), 4), _rand((30, 30, 3), 5)
    assert ssim_y(a, b, crop_border=4) == pytest.approx(ssim_y(a[4:-4, 4:-4], b[4:-4, 4:-4]), abs=1e-12)


def test_sequence_score_averaging() -> None:
    s = SequenceScore()
    for p in (30.0, 32.0):  # sequence A: 2 frames, mean 31
        s.add("A", p, 0.9)
    for p in (20.0, 20.0, 20.0, 20.0):  # sequence B: 4 frames, mean 20
        s.add("B", p, 0.5)
    per = s.per_sequence()
    assert per["A"] == {"psnr": 31.0, "ssim": 0.9, "frames": 2}
    assert s.mean()["psnr"] == pytest.approx(25.5)  # mean of sequence means
    assert s.frame_mean()["psnr"] == pytest.approx((30 + 32 + 80) / 6)
    assert s.mean()["ssim"] == pytest.approx(0.7)


def test_add_frames_and_score_frames() -> None:
    gt = [_rand((16, 16, 3), i) for i in range(3)]
    p, q = score_frames(gt, gt)
    assert p == [math.inf] * 3 and q == pytest.approx([1.0] * 3)
    s = SequenceScore()
    s.add_frames("x", gt, [g // 2 for g in gt])
    assert s.per_sequence()["x"]["frames"] == 3
    with pytest.raises(ValueError):
        score_frames(gt, gt[:2])


def test_round_y() -> None:
    a = np.full((16, 16, 3), 100, dtype=np.uint8)
    b = a.copy()
    b[0, 0] = [101, 100, 100]  # Y moves by 65.481/255 = 0.257: rounds to the same integer
    assert psnr_y(a, b) < math.inf
    assert psnr_y(a, b, round_y=True) == math.inf
    assert ssim_y(a, b, round_y=True) == pytest.approx(1.0)
