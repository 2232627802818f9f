"""The Ray pipeline end to end on real encoded clips: frame count, PTS, audio, chunked == whole."""

from __future__ import annotations

import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from models import registry
from models.registry import ModelSpec, build_model, register
from models.sisr.espcn import ESPCN
from models.weights import WeightsError, save_safetensors
from tests.conftest import make_clip, textured_frames
from tests.test_windows import TINY, direct, random_weights
from vsr_pipeline import UpscaleOptions, upscale
from vsr_pipeline.cli import main
from vsr_pipeline.engine import load_upscaler_model, run_model, run_windows
from vsr_pipeline.errors import EXIT_MODEL, EXIT_USAGE, UsageError
from vsr_pipeline.media import ImageFolderWriter, list_images, probe, read_images
from workers.aligner import Aligner
from workers.motion import Motion

pytestmark = pytest.mark.usefixtures("ray_local")


def _pts_seconds(path: Path) -> list[Fraction]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return sorted(Fraction(f.pts) * s.time_base for f in c.decode(s))


def _audio_packets(path: Path) -> list[tuple[Fraction, bytes]]:
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        return [(Fraction(p.pts) * s.time_base, bytes(p)) for p in c.demux(s) if p.size]


def _png_folder(path: Path, frames: np.ndarray) -> Path:
    with ImageFolderWriter(path) as w:
        w.write(frames, list(range(len(frames))))
    return path


def test_video_keeps_frame_count_vfr_timestamps_and_audio(tmp_path: Path) -> None:
    pts = [0, 1, 2, 4, 5, 7, 8, 9, 12, 13, 14, 16]  # variable frame rate
    src = make_clip(tmp_path / "in.mp4", textured_frames(len(pts), 32, 24), pts=pts, audio=True)
    out = tmp_path / "out.mp4"
    res = upscale(src, out, UpscaleOptions(model="basicvsr", chunk=5, padding=2, progress=False))
    assert (res.frames_in, res.frames_out, res.width_out, res.height_out) == (12, 12, 128, 96)
    # the job's time split: forward calls, before the first of them, after the last (one actor: no overlap)
    assert res.model_seconds is not None and res.model_head_s is not None and res.model_tail_s is not None
    assert res.model_seconds > 0 and res.model_head_s > 0 and res.model_tail_s > 0
    assert res.model_head_s + res.model_seconds + res.model_tail_s <= res.seconds + 0.01
    info = probe(out)
    assert (info.width, info.height, info.frames) == (128, 96, 12)
    assert _pts_seconds(out) == _pts_seconds(src)
    assert _audio_packets(out) == _audio_packets(src)
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


def test_per_frame_model_chunked_equals_whole(tmp_path: Path) -> None:
    torch.manual_seed(0)
    weights = tmp_path / "espcn_x2.safetensors"
    save_safetensors(build_model("espcn", 2).state_dict(), weights)
    src = _png_folder(tmp_path / "lr", textured_frames(7, 21, 15))
    outs = []
    for chunk in (2, 3, 100):
        out = tmp_path / f"sr_{chunk}"
        upscale(
            src,
            out,
            UpscaleOptions(model="espcn", weights=str(weights), scale=2, chunk=chunk, progress=False),
        )
        outs.append(read_images(list_images(out)))
    assert outs[0].shape == (7, 30, 42, 3)
    assert np.array_equal(outs[0], outs[2]) and np.array_equal(outs[1], outs[2])


def test_recurrent_model_chunked_with_full_padding_equals_whole(tmp_path: Path) -> None:
    src = _png_folder(tmp_path / "lr", textured_frames(6, 24, 16))
    whole, chunked = tmp_path / "whole", tmp_path / "chunked"
    upscale(src, whole, UpscaleOptions(model="basicvsr", chunk=6, padding=0, progress=False))
    upscale(src, chunked, UpscaleOptions(model="basicvsr", chunk=2, padding=6, progress=False))
    a, b = read_images(list_images(whole)), read_images(list_images(chunked))
    assert a.shape == (6, 64, 96, 3)
    assert np.array_equal(a, b)


# --- window models, --align, --backbone -----------------------------------------------------------------


@pytest.fixture()
def tiny_window() -> Iterator[ModelSpec]:
    """The test-only 5-frame window model of tests/test_windows.py, registered for one test. The pipeline
    hands the spec to its actors, which register it in their own processes."""
    before = dict(registry._SPECS)
    register(TINY)
    yield TINY
    registry._SPECS.clear()
    registry._SPECS.update(before)


def _run(src: Path, out: Path, **kw: object) -> np.ndarray:
    """Through the pipeline in plain fp32 unless told otherwise: compared with the module called directly
    (``precision auto`` may choose channels-last, other kernels, a rounding step apart)."""
    kw.setdefault("precision", "fp32")
    upscale(src, out, UpscaleOptions(progress=False, **kw))  # type: ignore[arg-type]
    return read_images(list_images(out))


@pytest.mark.slow
def test_window_model_chunked_equals_whole_through_ray(tmp_path: Path, tiny_window: ModelSpec) -> None:
    frames = textured_frames(12, 32, 24)
    src = _png_folder(tmp_path / "lr", frames)
    weights = random_weights(tmp_path / "tiny.safetensors", "tiny-window", 2)
    model = load_upscaler_model("tiny-window", weights, 2)
    whole = run_model(model, "window", frames, torch.device("cpu"), batch=3, radius=2)
    for chunk in (1, 5, 12):  # 12 = the whole clip in one chunk; 5 does not divide 12
        out = _run(
            src, tmp_path / f"sr{chunk}", model="tiny-window", weights=weights, scale=2, chunk=chunk, batch=3
        )
        assert out.shape == (12, 48, 64, 3)
        assert np.array_equal(out, whole), chunk  # every frame, first and last included


def test_window_model_through_pipeline_equals_module_called_directly(
    tmp_path: Path, tiny_window: ModelSpec
) -> None:
    frames = textured_frames(12, 32, 24)
    src = _png_folder(tmp_path / "lr", frames)
    weights = random_weights(tmp_path / "tiny.safetensors", "tiny-window", 2, backbone="espcn")
    out = _run(
        src,
        tmp_path / "sr",
        model="tiny-window",
        weights=weights,
        scale=2,
        chunk=5,
        batch=1,
        backbone="espcn",
    )
    model = load_upscaler_model("tiny-window", weights, 2, backbone="espcn")
    assert isinstance(model.body, ESPCN)
    assert np.array_equal(out, direct(model, frames, 2))


def test_single_image_model_through_pipeline_equals_module_called_directly(tmp_path: Path) -> None:
    frames = textured_frames(5, 20, 16)
    src = _png_folder(tmp_path / "lr", frames)
    torch.manual_seed(3)
    model = build_model("espcn", 3).eval()
    weights = tmp_path / "espcn.safetensors"
    save_safetensors(model.state_dict(), weights)
    out = _run(src, tmp_path / "sr", model="espcn", weights=str(weights), scale=3, chunk=2, batch=1)
    with torch.no_grad():
        for lr, hr in zip(frames, out, strict=True):
            y = model(torch.from_numpy(lr).permute(2, 0, 1).float()[None] / 255)[0]
            assert np.array_equal(hr, y.clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy())


@pytest.mark.slow
def test_align_farneback_chunked_equals_whole_through_ray(tmp_path: Path, tiny_window: ModelSpec) -> None:
    frames = textured_frames(12, 32, 24)
    src = _png_folder(tmp_path / "lr", frames)
    weights = random_weights(tmp_path / "tiny.safetensors", "tiny-window", 2)
    motion, aligner = Motion("farneback", 2, "cpu"), Aligner(2, "uint8", "cpu")
    model = load_upscaler_model("tiny-window", weights, 2)
    whole = run_windows(model, aligner.align(frames, motion.flows(frames)), torch.device("cpu"), batch=4)
    unaligned = run_model(model, "window", frames, torch.device("cpu"), batch=4, radius=2)
    assert not np.array_equal(whole, unaligned)
    for chunk in (1, 7):
        out = _run(
            src,
            tmp_path / f"al{chunk}",
            model="tiny-window",
            weights=weights,
            scale=2,
            chunk=chunk,
            align="farneback",
            batch=4,  # the reference's: ``auto`` may pick another batch, other kernels, a rounding step apart
        )
        assert np.array_equal(out, whole), chunk


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"model": "espcn", "backbone": "srcnn"}, "takes no --backbone"),
        ({"model": "tiny-window", "backbone": "nonesuch"}, "unknown model 'nonesuch'"),
        ({"model": "tiny-window", "backbone": "bicubic"}, "not a trainable single-image model"),
        ({"model": "tiny-window", "backbone": "basicvsr"}, "not a trainable single-image model"),
        ({"model": "espcn", "align": "farneback"}, "is not one"),
        ({"model": "tiny-window", "align": "vespcn"}, "no trained weights of its own"),
        ({"model": "tiny-window", "align": "lucas-kanade"}, "unknown flow estimator"),
        ({"model": "tiny-window", "padding": 1}, "--padding 1 is too small"),
    ],
)
def test_window_usage_errors_before_anything_starts(
    tmp_path: Path, tiny_window: ModelSpec, kw: dict, message: str
) -> None:
    src = _png_folder(tmp_path / "lr", textured_frames(3, 16, 12))
    weights = random_weights(tmp_path / "w.safetensors", "espcn", 2)
    with pytest.raises(UsageError, match=re.escape(message)):
        upscale(src, tmp_path / "out", UpscaleOptions(weights=weights, scale=2, progress=False, **kw))
    assert not (tmp_path / "out").exists()


def test_cli_window_model_without_weights_exits_4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _png_folder(tmp_path / "lr", textured_frames(3, 16, 12))
    code = main(["upscale", str(src), "-o", str(tmp_path / "out"), "--model", "edvr-m", "--scale", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_MODEL == 4
    assert err == ["vsr: error: model edvr-m has no trained weights yet; pass --weights PATH"]
    code = main(["upscale", str(src), "-o", str(tmp_path / "out"), "--model", "espcn", "--backbone", "srcnn"])
    assert code == EXIT_USAGE
    assert "takes no --backbone" in capsys.readouterr().err


def test_vespcn_through_ray_equals_the_module_and_whole_video_output(tmp_path: Path) -> None:
    frames = textured_frames(12, 32, 24)
    src = _png_folder(tmp_path / "lr", frames)
    weights = random_weights(tmp_path / "vespcn.safetensors", "vespcn", 2)
    model = load_upscaler_model("vespcn", weights, 2)
    one = _run(src, tmp_path / "b1", model="vespcn", weights=weights, scale=2, chunk=5, batch=1)
    assert np.array_equal(one, direct(model, frames, 1))  # the module on each window, edges replicated
    three = _run(src, tmp_path / "b3", model="vespcn", weights=weights, scale=2, chunk=1, batch=3)
    assert np.array_equal(three, run_model(model, "window", frames, torch.device("cpu"), batch=3, radius=1))


@pytest.mark.slow
def test_edvr_m_chunked_through_ray_equals_whole_video_output(tmp_path: Path) -> None:
    frames = textured_frames(8, 20, 16)
    src = _png_folder(tmp_path / "lr", frames)
    weights = random_weights(tmp_path / "edvr.safetensors", "edvr-m", 2)
    model = load_upscaler_model("edvr-m", weights, 2)
    whole = run_model(model, "window", frames, torch.device("cpu"), batch=2, radius=2)
    out = _run(src, tmp_path / "sr", model="edvr-m", weights=weights, scale=2, chunk=3, batch=2)
    assert out.shape == (8, 32, 40, 3)
    assert np.array_equal(out, whole)


def test_checkpoint_saved_without_the_backbone_is_a_model_error(
    tmp_path: Path, tiny_window: ModelSpec
) -> None:
    """Raised in the actor's constructor, it still reaches the caller as itself (CLI: exit 4, one line)."""
    src = _png_folder(tmp_path / "lr", textured_frames(3, 16, 12))
    weights = random_weights(tmp_path / "plain.safetensors", "tiny-window", 2)
    with pytest.raises(WeightsError, match="do not fit TinyWindowNet"):
        upscale(
            src,
            tmp_path / "out",
            UpscaleOptions(model="tiny-window", weights=weights, scale=2, backbone="espcn", progress=False),
        )
    assert not (tmp_path / "out").exists()
