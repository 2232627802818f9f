"""Degradation chains (vsr_pipeline/degradation.py): the parser, the real codec and noise stages, and
`vsr degrade --degradation bi+h264:28` end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ROOT, make_clip, textured_frames
from vsr_pipeline.degradation import Degradation, DegradationError, Stage, parse_degradation
from vsr_pipeline.degrade import degrade_bd, degrade_bi
from vsr_pipeline.errors import UsageError
from vsr_pipeline.evaluation import read_all
from vsr_pipeline.media import ImageFolderWriter, list_images, read_images
from vsr_pipeline.metrics import psnr_y


@pytest.fixture(scope="module")
def hr() -> np.ndarray:
    """12 frames 256x192 of a moving texture (x2 LR: 128x96)."""
    return textured_frames(12, 256, 192, seed=3)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([psnr_y(x, y) for x, y in zip(a, b, strict=True)]))


@pytest.mark.parametrize(("text", "canonical", "stages"), [
    ("bi", "bi", ()),
    ("BD", "bd", ()),
    ("bi+h264:28", "bi+h264:28", (Stage("h264", 28),)),
    ("bd+mpeg4:8+noise:2.5", "bd+mpeg4:8+noise:2.5", (Stage("mpeg4", 8), Stage("noise", 2.5))),
    (" bi + noise:.5 + h264:0 ", "bi+noise:0.5+h264:0", (Stage("noise", 0.5), Stage("h264", 0))),
])
def test_parse_good(text: str, canonical: str, stages: tuple[Stage, ...]) -> None:
    chain = parse_degradation(text)
    assert str(chain) == canonical and chain.stages == stages
    assert parse_degradation(canonical) == chain  # the canonical text parses back to the same chain


@pytest.mark.parametrize(("text", "words"), [
    ("", "must start with bi or bd"),
    ("h264:28", "must start with bi or bd"),
    ("bi+h265:28", "unknown stage 'h265:28'"),
    ("bi+", "unknown stage ''"),
    ("bi+h264", "CRF as a whole number in 0..51"),
    ("bi+h264:52", "got '52'"),
    ("bi+h264:2.5", "got '2.5'"),
    ("bi+mpeg4:0", "qscale as a whole number in 1..31"),
    ("bi+noise:0", "a number in (0, 255]"),
    ("bi+noise:-1", "got '-1'"),
    ("bi+noise:x", "got 'x'"),
])
def test_parse_bad_is_one_usage_line(text: str, words: str) -> None:
    with pytest.raises(DegradationError) as info:
        parse_degradation(text)
    message = str(info.value)
    assert isinstance(info.value, UsageError) and "\n" not in message
    assert words in message and repr(text) in message


def test_kernel_alone_is_bit_identical_to_the_benchmark_lr(hr: np.ndarray) -> None:
    assert np.array_equal(parse_degradation("bi").apply(hr, 4), degrade_bi(hr, 4))
    assert np.array_equal(parse_degradation("bd").apply(hr, 4), degrade_bd(hr, 4))


@pytest.mark.parametrize(("codec", "good", "bad"), [("h264", 23, 35), ("mpeg4", 3, 15)])
def test_codec_stage_really_compresses(hr: np.ndarray, codec: str, good: int, bad: int) -> None:
    lr = degrade_bi(hr, 2)
    light = parse_degradation(f"bi+{codec}:{good}").apply(hr, 2)
    heavy = parse_degradation(f"bi+{codec}:{bad}").apply(hr, 2)
    assert light.shape == heavy.shape == lr.shape and light.dtype == np.uint8
    assert not np.array_equal(light, lr) and not np.array_equal(heavy, light)
    assert 30.0 < _psnr(light, lr) < 60.0  # lossy, yet the same pictures
    assert _psnr(light, lr) > _psnr(heavy, lr) + 1.0


def test_codec_stage_keeps_odd_sizes(hr: np.ndarray) -> None:
    lr = parse_degradation("bi+h264:28").apply(hr[:4, :190, :250], 2)  # 95x125 LR: padded for 4:2:0, cropped
    assert lr.shape == (4, 95, 125, 3) and _psnr(lr, degrade_bi(hr[:4, :190, :250], 2)) > 25.0


def test_same_chain_twice_gives_the_same_frames(hr: np.ndarray) -> None:
    chain = parse_degradation("bi+noise:3+h264:30+mpeg4:6")
    first = chain.apply(hr, 2)
    assert np.array_equal(first, parse_degradation(str(chain)).apply(hr, 2))
    assert not np.array_equal(first, Degradation(chain.kernel, chain.stages, seed=1).apply(hr, 2))


def test_noise_stage_statistics() -> None:
    gray = np.full((4, 256, 256, 3), 128, np.uint8)  # bicubic of a constant is the constant: LR = 128
    sigma = 5.0
    noisy = parse_degradation(f"bi+noise:{sigma:g}").apply(gray, 2)
    r = noisy.astype(np.float64) - 128.0
    assert abs(r.mean()) < 0.02
    assert abs(r.std() - np.sqrt(sigma**2 + 1 / 12)) < 0.03  # rounding adds 1/12 to the variance
    assert np.array_equal(np.round(r), r) and r.min() > -128
    flat = r.reshape(-1, 3)
    assert abs(np.corrcoef(flat[:, 0], flat[:, 1])[0, 1]) < 0.01  # independent channels
    assert abs(np.corrcoef(r[:, :, :-1].ravel(), r[:, :, 1:].ravel())[0, 1]) < 0.01  # and pixels
    assert abs(np.corrcoef(r[0].ravel(), r[1].ravel())[0, 1]) < 0.01  # and frames
    clipped = parse_degradation("bi+noise:40").apply(np.full((1, 64, 64, 3), 250, np.uint8), 2)
    assert clipped.max() == 255  # clipped, not wrapped


def _vsr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vsr_pipeline.cli", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, check=False)


def test_vsr_degrade_with_a_chain_end_to_end(tmp_path: Path, hr: np.ndarray) -> None:
    src = make_clip(tmp_path / "in.mp4", hr[:8])
    run = _vsr("degrade", str(src), "-o", str(tmp_path / "lr"), "--scale", "2", "--degradation", "bi+h264:28",
               "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["degradation"] == "bi+h264:28"
    assert (result["frames"], result["width"], result["height"]) == (8, 128, 96)
    written = read_images(list_images(tmp_path / "lr"))
    source = read_all(src)
    assert np.array_equal(written, parse_degradation("bi+h264:28").apply(source, 2))  # the chain, no more
    assert 25.0 < _psnr(written, degrade_bi(source, 2)) < 60.0
    run = _vsr("degrade", str(src), "-o", str(tmp_path / "lr2"), "--degradation", "bi+h264:99")
    assert run.returncode == 2 and "h264 needs CRF" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


@pytest.mark.ray
@pytest.mark.slow
def test_vsr_eval_reports_the_chain_niqe_and_tdiff(tmp_path: Path) -> None:
    pytest.importorskip("scipy.io", reason="NIQE's model is read with scipy (the test extra installs it)")
    (tmp_path / "ds").mkdir()
    for i, name in enumerate(("a", "b")):
        with ImageFolderWriter(tmp_path / "ds" / name) as writer:
            writer.write(textured_frames(4, 192, 192, seed=i), list(range(4)))
    run = _vsr("eval", "--model", "bicubic", "--dataset", str(tmp_path / "ds"), "--scale", "4",
               "--degradation", "bi+h264:30", "--no-progress", "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["degradation"] == "bi+h264:30" and "bi+h264:30" in result["protocol"]["lr"]
    assert result["protocol"]["niqe_model"].endswith("frames_modelparameters.mat")
    seqs = result["sequences"]
    for key in ("psnr_y", "niqe", "tdiff_y", "bicubic_niqe", "bicubic_tdiff_y", "gt_niqe"):
        assert all(isinstance(s[key], float) and s[key] > 0 for s in seqs.values()), key
        assert result[key] == pytest.approx(np.mean([s[key] for s in seqs.values()]), abs=1e-4), key


def test_codec_stage_adds_no_colour_shift() -> None:
    """Decoded frames go to RGB with the exact BT.601 matrix: over smooth frames of many colours a
    near-lossless round trip shifts no channel's mean by half a level (swscale's rgb24 path darkened them
    by about one level: (120, 160, 80) came back as (118, 158, 79))."""
    from vsr_pipeline.degradation import encode_decode
    from vsr_pipeline.train.degradations import h264_roundtrip

    yy, xx = np.mgrid[0:48, 0:64].astype(np.float64)
    frame = np.stack([40 + 3 * xx, 30 + 4 * yy, 200 - 2 * xx - yy], axis=-1)
    frames = np.stack([frame + k for k in range(3)]).clip(0, 255).astype(np.uint8)
    outs = (encode_decode(frames, "h264", 12), encode_decode(frames, "mpeg4", 2), h264_roundtrip(frames, 12))
    for out in outs:
        shift = out.astype(np.float64).mean(axis=(0, 1, 2)) - frames.astype(np.float64).mean(axis=(0, 1, 2))
        assert np.all(np.abs(shift) < 0.5), shift
