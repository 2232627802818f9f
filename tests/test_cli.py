"""The `vsr` command as a user runs it: one-line errors with documented exit codes, JSON on the last line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import make_clip, textured_frames
from vsr_pipeline import errors


def vsr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vsr_pipeline.cli", *args], capture_output=True, text=True, timeout=600
    )


def assert_one_line_error(run: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert run.returncode == code, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("vsr"), lines[0]
    assert "Traceback" not in run.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_missing_input(tmp_path: Path) -> None:
    run = vsr("upscale", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "out.mp4"))
    assert_one_line_error(run, errors.EXIT_INPUT, "nope.mp4")
    assert not (tmp_path / "out.mp4").exists()


def test_a_mistyped_input_is_said_before_torch_loads(tmp_path: Path) -> None:
    """The commonest mistake gets its answer at once: torch (4 s to import on a slow VM) is not loaded."""
    code = ("import sys; from vsr_pipeline.cli import main; rc = main(['upscale', sys.argv[1], '-o', "
            "sys.argv[2]]); print(rc, 'torch' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "nope.mp4"), str(tmp_path / "o.mp4")],
                         capture_output=True, text=True, timeout=120)
    assert run.stdout.split() == [str(errors.EXIT_INPUT), "False"], run.stderr


def test_text_file_renamed_mp4(tmp_path: Path) -> None:
    bad = tmp_path / "notes.mp4"
    bad.write_text("this is not a video\n" * 50)
    run = vsr("upscale", str(bad), "-o", str(tmp_path / "out.mp4"))
    assert_one_line_error(run, errors.EXIT_INPUT, "notes.mp4")
    assert list(tmp_path.iterdir()) == [bad]


def test_bad_flag_and_bad_value(tmp_path: Path) -> None:
    assert_one_line_error(
        vsr("upscale", "x.mp4", "-o", "y.mp4", "--frobnicate"), errors.EXIT_USAGE, "--frobnicate"
    )
    assert_one_line_error(
        vsr("upscale", "x.mp4", "-o", "y.mp4", "--chunk", "zero"), errors.EXIT_USAGE, "chunk"
    )


def test_existing_output_is_never_replaced_unasked(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", textured_frames(3, 16, 16))
    out = tmp_path / "out.mp4"
    out.write_bytes(b"precious")
    assert_one_line_error(vsr("upscale", str(src), "-o", str(out)), errors.EXIT_USAGE, "--overwrite")
    assert out.read_bytes() == b"precious"
    assert_one_line_error(vsr("upscale", str(src), "-o", str(src)), errors.EXIT_USAGE, "input")


def test_scale_the_model_lacks(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", textured_frames(3, 16, 16))
    run = vsr("upscale", str(src), "-o", str(tmp_path / "o.mp4"), "--scale", "3")
    assert_one_line_error(run, errors.EXIT_USAGE, "scale")


def test_models_json_lists_basicvsr_with_its_weights() -> None:
    run = vsr("models", "--json")
    assert run.returncode == 0, run.stderr
    models = {m["name"]: m for m in json.loads(run.stdout.strip().splitlines()[-1])["models"]}
    basicvsr = models["basicvsr"]
    assert basicvsr["kind"] == "video" and basicvsr["scales"] == [4]
    assert abs(basicvsr["params"] - 6_291_311) / 6_291_311 < 0.005
    assert set(basicvsr["weights"]) == {"reds4", "vimeo-bi", "vimeo-bd", "compressed"}
    assert models["espcn"]["kind"] == "sisr"


def test_upscale_json_and_degrade(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", textured_frames(5, 24, 16), audio=True)
    run = vsr("upscale", str(src), "-o", str(tmp_path / "out.mkv"), "--json", "--no-progress", "--chunk", "2")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert (result["frames_in"], result["frames_out"], result["width_out"], result["height_out"]) == (
        5,
        5,
        96,
        64,
    )
    assert result["output"] == str(tmp_path / "out.mkv") and result["seconds"] > 0 and result["fps"] > 0
    run = vsr("degrade", str(tmp_path / "out.mkv"), "-o", str(tmp_path / "lr"), "--json")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert (result["frames"], result["width"], result["height"]) == (5, 24, 16)
    assert len(list((tmp_path / "lr").glob("*.png"))) == 5
