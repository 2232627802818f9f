"""The Ray pipeline end to end on real encoded clips: frame count, PTS, audio, chunked == whole."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from models.registry import build_model
from models.weights import save_safetensors
from tests.conftest import make_clip, textured_frames
from vsr_pipeline.media import ImageFolderWriter, list_images, probe, read_images
from vsr_pipeline.pipeline import UpscaleOptions, upscale

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
