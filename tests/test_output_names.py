"""What an output name asks for: a video we write, a folder of PNGs, or a file type we refuse; and encoder
flags are refused where a folder of PNGs is written (they used to be ignored silently)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from vsr_pipeline.batch_runner import BatchOptions, run_batch
from vsr_pipeline.errors import UsageError
from vsr_pipeline.media.output_names import is_video_path, output_name_problem
from vsr_pipeline.options import UpscaleOptions, check_folder_output, encoder_flags


@pytest.mark.parametrize("name", ["out.mp4", "OUT.MKV", "a.b.mov", "x.m4v", "y.webm", "z.ts", "clip.avi"])
def test_videos_we_write(name: str) -> None:
    assert is_video_path(name) and output_name_problem(name) is None


@pytest.mark.parametrize("name", ["frames", "frames.v2", "run.2026-12-05", "shot_001.final"])
def test_other_names_are_folders(name: str) -> None:
    assert not is_video_path(name) and output_name_problem(name) is None


@pytest.mark.parametrize("name", ["out.mpg", "out.VOB", "out.m2ts", "out.flv", "out.3gp", "out.wav",
                                  "out.png", "out.y4m", "out.mxf"])
def test_file_types_we_do_not_write(name: str) -> None:
    problem = output_name_problem(f"/some/dir/{name}")
    assert problem is not None and problem.startswith(f"{name}: {Path(name).suffix.lower()} is a file type")
    assert "\n" not in problem and ".mp4" in problem
    assert ("mpeg2video" in problem) == (Path(name).suffix.lower() in (".mpg", ".vob", ".m2ts"))


def test_encoder_flags_for_a_folder_are_said_to_do_nothing(caplog: pytest.LogCaptureFixture) -> None:
    assert encoder_flags(UpscaleOptions()) == []
    with caplog.at_level(logging.WARNING):
        check_folder_output(UpscaleOptions(), "frames")  # defaults: nothing said
        assert not caplog.records
        opts = UpscaleOptions(codec="libx265", crf=20, codec_options=("g=5",), chroma="444")
        assert encoder_flags(opts) == ["--codec", "--crf", "--chroma", "--codec-option"]
        check_folder_output(opts, "frames")
    assert [r.getMessage() for r in caplog.records] == [
        "frames: --codec, --crf, --chroma, --codec-option not used: a folder of PNG frames is not encoded (a "
        "video output is: .mp4, .mkv, .mov, .webm, .ts)"]


def test_batch_refuses_avi_format(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--format must be one of mp4, mkv, mov, m4v, webm, ts, png"):
        run_batch(["a.mp4"], BatchOptions(UpscaleOptions(model="bicubic"), tmp_path / "o", format="avi"))
