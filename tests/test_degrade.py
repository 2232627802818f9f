import math
from pathlib import Path

import numpy as np
import pytest

from vsr_pipeline.degrade import (
    crop_to_multiple,
    degrade_bd,
    degrade_bi,
    gaussian_kernel,
    imresize,
    resize_matrix,
    to_uint8,
)
from vsr_pipeline.metrics import psnr_y

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "benchmarks"


# --- an independent, deliberately literal transcription of MATLAB's imresize>contributions ---------------
def _cubic_scalar(t: float) -> float:
    a = abs(t)
    if a <= 1:
        return 1.5 * a**3 - 2.5 * a**2 + 1
    if a <= 2:
        return -0.5 * a**3 + 2.5 * a**2 - 4 * a + 2
    return 0.0


def _loop_resize_1d(v: np.ndarray, out_len: int, scale: float) -> np.ndarray:
    n = len(v)
    width = 4.0 / scale if scale < 1 else 4.0
    out = np.zeros(out_len)
    for x in range(1, out_len + 1):  # 1-based, as in MATLAB
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        ws, ids = [], []
        for j in range(math.ceil(width) + 2):
            idx = left + j
            t = u - idx
            ws.append(scale * _cubic_scalar(scale * t) if scale < 1 else _cubic_scalar(t))
            # symmetric extension with the edge repeated: 0 -> 1, -1 -> 2, n+1 -> n, ...
            while idx < 1 or idx > n:
                idx = 1 - idx if idx < 1 else 2 * n + 1 - idx
            ids.append(idx)
        total = sum(ws)
        out[x - 1] = sum(w / total * v[i - 1] for w, i in zip(ws, ids, strict=True))
    return out


def _loop_imresize(img: np.ndarray, scale: float) -> np.ndarray:
    h, w = img.shape
    oh, ow = math.ceil(h * scale), math.ceil(w * scale)
    rows = np.stack([_loop_resize_1d(img[:, c], oh, scale) for c in range(w)], axis=1)
    return np.stack([_loop_resize_1d(rows[r], ow, scale) for r in range(oh)], axis=0)


@pytest.mark.parametrize("scale", [0.25, 1 / 3, 0.5, 0.6, 2.0, 3.0, 4.0])
def test_matches_literal_matlab_transcription(scale: float) -> None:
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, size=(13, 10))
    assert np.allclose(imresize(img, scale), _loop_imresize(img, scale), atol=1e-10, rtol=0)


@pytest.mark.parametrize("scale", [0.25, 1 / 3, 0.5, 2.0, 4.0])
def test_banded_product_equals_the_dense_matrix(scale: float) -> None:
    """``imresize`` applies only each band of output rows' non-zero weights: the dense product of the
    whole ``resize_matrix`` gives the same values, at the borders (mirrored taps) and across bands."""
    rng = np.random.default_rng(1)
    img = rng.uniform(0, 1, size=(2, 150, 97, 3))
    dense = img
    plan = sorted([(scale, 1), (scale, 2)], key=lambda p: p[0])
    for s, axis in plan:
        mat = resize_matrix(dense.shape[axis], math.ceil(s * dense.shape[axis]), s)
        dense = np.moveaxis(np.tensordot(mat, dense, axes=([1], [axis])), 0, axis)
    assert np.allclose(imresize(img, scale), dense, atol=1e-12, rtol=0)


def test_constant_stays_constant_and_shapes() -> None:
    img = np.full((2, 18, 23, 3), 0.37)
    for s in (0.25, 0.5, 2, 4):
        out = imresize(img, s)
        assert out.shape == (2, math.ceil(18 * s), math.ceil(23 * s), 3)
        assert out.dtype == np.float64
        assert np.allclose(out, 0.37, atol=1e-12)
    assert imresize(img[0, :, :, 0], output_shape=(7, 30)).shape == (7, 30)


def test_x2_upscale_uses_the_fixed_bicubic_phases() -> None:
    # Output pixel x (1-based) maps to u = x/2 + 1/4. For x = 11, u = 5.75: inputs 4, 5, 6, 7 (1-based)
    # sit at distances 1.75, 0.75, 0.25, 1.25 and get exact dyadic weights that sum to 1.
    w = [_cubic_scalar(d) for d in (1.75, 0.75, 0.25, 1.25)]
    assert w == [-0.0234375, 0.2265625, 0.8671875, -0.0703125]
    m = resize_matrix(16, 32, 2.0)
    row = m[10]
    assert np.array_equal(row[3:7], w)
    assert np.count_nonzero(row) == 4
    ramp = np.arange(16, dtype=np.float64)
    assert np.allclose((m @ ramp)[3:-3], np.arange(4, 30) / 2 + 0.25 - 1)  # away from edges: exact


def test_batch_equals_per_frame_and_per_channel() -> None:
    rng = np.random.default_rng(1)
    frames = rng.uniform(0, 1, size=(3, 16, 12, 3))
    batch = imresize(frames, 0.25)
    for t in range(3):
        for c in range(3):
            assert np.allclose(batch[t, :, :, c], imresize(frames[t, :, :, c], 0.25), atol=1e-13)


def test_antialiasing_kills_a_checkerboard() -> None:
    board = (np.indices((60, 60)).sum(axis=0) % 2).astype(np.float64)
    for s in (0.25, 1 / 3):
        out = imresize(board, s)
        assert np.abs(out[2:-2, 2:-2] - 0.5).max() < 0.02
    naive = imresize(board, 1 / 3, antialias=False)  # samples land on pixels: the pattern aliases
    assert np.abs(naive[2:-2, 2:-2] - 0.5).min() > 0.49


def test_degrade_bi_rounds_and_clips() -> None:
    assert to_uint8(np.array([-3.0, 0.5, 1.5, 2.49, 254.5, 300.0])).tolist() == [0, 1, 2, 2, 255, 255]
    frames = np.full((2, 8, 12, 3), 200, dtype=np.uint8)
    lr = degrade_bi(frames, 4)
    assert lr.shape == (2, 2, 3, 3) and lr.dtype == np.uint8 and (lr == 200).all()
    with pytest.raises(TypeError):
        degrade_bi(frames.astype(np.float32), 4)


def test_crop_to_multiple() -> None:
    frames = np.zeros((2, 10, 13, 3), dtype=np.uint8)
    assert crop_to_multiple(frames, 4).shape == (2, 8, 12, 3)
    assert crop_to_multiple(frames[0], 3).shape == (9, 12, 3)
    img = np.arange(7 * 9).reshape(7, 9)
    assert np.array_equal(crop_to_multiple(img, 2), img[:6, :8])  # top-left kept


def test_gaussian_kernel_is_fspecial() -> None:
    k = gaussian_kernel(12, 1.6)
    assert k.shape == (12, 12) and math.isclose(k.sum(), 1.0)
    assert np.allclose(k, k.T) and np.allclose(k, k[::-1, ::-1])  # even size: centred between taps
    t = np.arange(12) - 5.5
    ref = np.exp(-(t[:, None] ** 2 + t[None, :] ** 2) / (2 * 1.6**2))
    assert np.allclose(k, ref / ref.sum(), atol=1e-15)
    assert gaussian_kernel(13, 1.6).argmax() == 6 * 13 + 6


@pytest.mark.parametrize("method", ["matlab", "duf"])
def test_degrade_bd_shape_and_constant(method: str) -> None:
    frames = np.full((3, 24, 32, 3), 77, dtype=np.uint8)
    lr = degrade_bd(frames, 4, method=method)
    assert lr.shape == (3, 6, 8, 3) and lr.dtype == np.uint8 and (lr == 77).all()
    assert degrade_bd(frames[0], 4, method=method).shape == (6, 8, 3)


def _bd_reference(img: np.ndarray, scale: int, method: str) -> np.ndarray:
    """Direct 2-D loop: MATLAB imfilter(replicate) + img(s/2:s:end-s/2) or DUF reflect + stride."""
    x = img.astype(np.float64)
    h, w = x.shape
    if method == "matlab":
        size, anchor, phase = 12, 5, scale // 2 - 1
        k = gaussian_kernel(size, 1.6)

        def at(i: int, j: int) -> float:
            return x[min(max(i, 0), h - 1), min(max(j, 0), w - 1)]
    else:
        size, anchor, phase = 13, 6, 0
        k = gaussian_kernel(size, 1.6)

        def at(i: int, j: int) -> float:
            i = -i if i < 0 else (2 * (h - 1) - i if i >= h else i)
            j = -j if j < 0 else (2 * (w - 1) - j if j >= w else j)
            return x[i, j]

    out = np.zeros((h // scale, w // scale))
    for oi in range(h // scale):
        for oj in range(w // scale):
            ci, cj = phase + scale * oi, phase + scale * oj
            out[oi, oj] = sum(
                k[a, b] * at(ci + a - anchor, cj + b - anchor) for a in range(size) for b in range(size)
            )
    return to_uint8(out)


@pytest.mark.parametrize("method", ["matlab", "duf"])
def test_degrade_bd_matches_direct_2d_filter(method: str) -> None:
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, size=(16, 20, 1), dtype=np.uint8)
    got = degrade_bd(img, 4, method=method)[..., 0]
    assert np.array_equal(got, _bd_reference(img[..., 0], 4, method))


def test_bd_sampling_phase_is_centred_for_matlab() -> None:
    # A single bright 4x4 block: the MATLAB-style LR pixel over it is its symmetric centre,
    # so the response is symmetric about that LR pixel; DUF's phase-0 sampling is not.
    img = np.zeros((32, 32, 3), dtype=np.uint8)
    img[12:16, 12:16] = 255
    lr = degrade_bd(img, 4, method="matlab")[..., 0].astype(int)
    assert lr.argmax() == 3 * 8 + 3
    assert lr[3, 2] == lr[3, 4] and lr[2, 3] == lr[4, 3]
    duf = degrade_bd(img, 4, method="duf")[..., 0].astype(int)
    assert duf[3, 2] != duf[3, 4]


def test_imresize_speed_720x576() -> None:
    import time

    frame = np.random.default_rng(3).integers(0, 256, size=(576, 720, 3), dtype=np.uint8)
    degrade_bi(frame, 4)
    t = time.perf_counter()
    degrade_bi(frame, 4)
    assert time.perf_counter() - t < 0.5  # ~15 ms on a laptop core; generous for CI


@pytest.mark.skipif(not (DATA / "vid4" / "calendar" / "0001.png").exists(), reason="no ../shared/data (Vid4)")
def test_vid4_calendar_bicubic_baseline() -> None:
    cv2 = pytest.importorskip("cv2")
    gt = cv2.imread(str(DATA / "vid4" / "calendar" / "0001.png"))[..., ::-1].copy()
    gt = crop_to_multiple(gt, 4)
    lr = degrade_bi(gt, 4)
    assert lr.shape == (144, 180, 3)
    up = to_uint8(imresize(lr.astype(np.float64), 4))
    p = psnr_y(up, gt)
    assert 20.0 < p < 20.8, p  # published Vid4 calendar bicubic (BI): ~20.39 over the sequence
