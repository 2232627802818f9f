"""The public Python API (``vsr_pipeline/__init__.py``) and the one definition of every default."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

import vsr_pipeline
from tests.conftest import ROOT, make_clip, textured_frames
from vsr_pipeline.cli import build_parser
from vsr_pipeline.media import EncodeSettings
from vsr_pipeline.options import ModelSettings, UpscaleOptions


def test_every_exported_name_resolves_and_import_is_cheap() -> None:
    import pkgutil

    submodules = {m.name for m in pkgutil.iter_modules(vsr_pipeline.__path__)}
    assert not submodules & set(vsr_pipeline.__all__)  # importing the submodule would replace the name
    for name in vsr_pipeline.__all__:
        assert getattr(vsr_pipeline, name) is not None, name
    code = "import sys, vsr_pipeline; print('torch' in sys.modules, 'ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.parametrize("command", ["upscale", "batch"])
def test_cli_and_api_defaults_are_the_same(command: str) -> None:
    """Every UpscaleOptions field with a flag of the same name defaults to the same value on the CLI."""
    args = ["x.mp4", "-o", "y.mp4"] if command == "upscale" else ["x.mp4", "-o", "out"]
    parsed = vars(build_parser().parse_args([command, *args]))
    defaults = UpscaleOptions()
    shared = [f.name for f in fields(UpscaleOptions) if f.name in parsed and f.name not in ("resume",)]
    must = {"model", "scale", "precision", "crf", "preset", "codec", "batch", "overlap", "retries"}
    assert must <= set(shared)
    for name in shared:
        assert parsed[name] == getattr(defaults, name), name


def test_settings_groups_carry_the_options_fields() -> None:
    opts = UpscaleOptions(model="espcn", scale=2, crf=0, preset="ultrafast", precision="fp32", tile=64)
    assert opts.encode_settings() == EncodeSettings(crf=0, preset="ultrafast")
    assert opts.model_settings() == ModelSettings(model="espcn", scale=2, precision="fp32", tile=64)
    assert {f.name for f in fields(ModelSettings)} | {f.name for f in fields(EncodeSettings)} <= {
        f.name for f in fields(UpscaleOptions)}


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")  # as in a notebook that keeps Ray running (a CLI run starts its own)
def test_readme_example_upscales_a_real_clip_with_the_api(tmp_path: Path) -> None:
    """``upscale`` and ``batch`` from the package root, as the README shows, on an H.264 clip."""
    clip = make_clip(tmp_path / "in.mp4", textured_frames(6, 48, 32))
    result = vsr_pipeline.upscale(clip, tmp_path / "out.mkv", UpscaleOptions(model="espcn", scale=2, crf=0,
                                                                             progress=False))
    assert (result.frames_in, result.frames_out, result.width_out, result.height_out) == (6, 6, 96, 64)
    summary = vsr_pipeline.batch([str(clip)], str(tmp_path / "batch"),
                                 UpscaleOptions(model="espcn", scale=2, crf=0), format="mkv")
    assert summary["ok"] == 1 and summary["frames"] == 6
    from vsr_pipeline.media import FrameReader

    with FrameReader(tmp_path / "out.mkv") as a, FrameReader(tmp_path / "batch" / "in.mkv") as b:
        assert np.array_equal(a.read(6)[0], b.read(6)[0])
    lr = vsr_pipeline.degrade_video(str(clip), str(tmp_path / "lr.mkv"), scale=2, degradation="bi+h264:28")
    assert (lr["frames"], lr["width"], lr["height"]) == (6, 24, 16)


def test_only_chunked_commands_offer_sequences() -> None:
    """``--sequences`` batches a video's chunks; ``vsr eval`` runs each sequence whole: no such flag there."""
    parser = build_parser()
    assert parser.parse_args(["upscale", "x.mp4", "-o", "y.mp4", "--sequences", "2"]).sequences == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["eval", "--model", "basicvsr", "--dataset", "d", "--sequences", "2"])
