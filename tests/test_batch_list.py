"""``vsr batch --list``: each line's own --start/--end/--crop/--name, as `vsr upscale` with those flags would
do the input alone; bad lines refused by number before anything runs. Real clips, real Ray."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_clip, textured_frames
from test_batch import decode, opts

from vsr_pipeline import upscale
from vsr_pipeline.batch_list import BatchItem, parse_line, read_list
from vsr_pipeline.batch_runner import BatchOptions, run_batch
from vsr_pipeline.errors import UsageError


def test_a_line_is_a_path_then_its_own_flags() -> None:
    assert parse_line("  /srv/cams/reel 7.mkv  ") == BatchItem("/srv/cams/reel 7.mkv")  # spaces, no quotes
    assert parse_line('"/srv/a b.mp4" --start 1:02.5 --end 70 --crop 320:180:8:4 --name "first one"') == \
        BatchItem("/srv/a b.mp4", "first one", 62.5, 70.0, (320, 180, 8, 4))
    assert parse_line("cam.mp4 --crop 64:48", "l.txt:3").overrides() == {"crop": (64, 48)}
    for bad, says in (("cam.mp4 --fps 10", "a line takes --start, --end, --crop and --name"),
                      ("cam.mp4 --crop 0:10", "width and height must be >= 1"),
                      ("cam.mp4 --start soon", "expects seconds"),
                      ("cam.mp4 --name ../elsewhere", "a file name, not a path"),
                      (" --start 3", "no input before the flags")):
        with pytest.raises(ValueError, match=says):
            parse_line(bad)


def test_a_bad_line_is_named_by_its_number(tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("# cameras\n\ncam1.mp4 --start 5\ncam2.mp4 --end later\n")
    with pytest.raises(UsageError, match=r"line 4: argument --end: expects seconds"):
        read_list(listing)
    listing.write_text("cam1.mp4 --start 5\n")
    assert read_list(listing) == [BatchItem("cam1.mp4", start=5.0, where=f"{listing}:1")]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("list_in") / "cam.mp4", textured_frames(30, 48, 32, seed=4),
                     audio=True)


@pytest.mark.usefixtures("ray_local")
def test_each_line_is_upscaled_as_a_single_job_with_its_flags(clip: Path, tmp_path: Path) -> None:
    """Two incidents of one recording (their own names) and a region of it: each output equals `vsr
    upscale` of the input with that line's flags, frame for frame and pts for pts; the summary and the
    report say what each line set."""
    listing = tmp_path / "list.txt"
    listing.write_text(f"{clip} --start 0.2 --end 0.6 --name first\n"
                       f"{clip} --start 0:00.8 --name second\n"
                       f"{clip} --crop 16:16:24:8 --name plate\n")
    base = opts(model="bicubic")
    summary = run_batch(read_list(listing), BatchOptions(base, tmp_path / "out", format="mkv"))
    assert [v["status"] for v in summary["videos"]] == ["ok"] * 3, summary["videos"]
    assert [v["options"] for v in summary["videos"]] == [
        {"start": 0.2, "end": 0.6, "name": "first"}, {"start": 0.8, "name": "second"},
        {"crop": [16, 16, 24, 8], "name": "plate"}]
    assert [v["frames"] for v in summary["videos"]] == [10, 10, 30]
    for name, flags in (("first", {"start": 0.2, "end": 0.6}), ("second", {"start": 0.8}),
                        ("plate", {"crop": (16, 16, 24, 8)})):
        ref = tmp_path / f"ref_{name}.mkv"
        upscale(clip, ref, opts(model="bicubic", **flags))
        (pts_ref, frames_ref), (pts, frames) = decode(ref), decode(tmp_path / "out" / f"{name}.mkv")
        assert pts == pts_ref
        np.testing.assert_array_equal(frames, frames_ref)
    assert decode(tmp_path / "out" / "plate.mkv")[1].shape[1:3] == (32, 32)
    report = Path(summary["report"]).read_text()
    assert f"{clip} (--start 0.2 --end 0.6)" in report and f"{clip} (--crop 16:16:24:8)" in report


def test_lines_that_clash_are_refused_before_anything_runs(clip: Path, tmp_path: Path) -> None:
    """One input twice without names: both would write cam.mp4; a line's --end before the batch's
    --start: named by its line. Exit 2, nothing written."""
    listing = tmp_path / "list.txt"
    listing.write_text(f"{clip} --start 0.2 --end 0.4\n{clip} --start 0.6\n")
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "vsr_pipeline.cli", "batch", "--list", str(listing), "-o",
                          str(out), "--model", "bicubic", "--scale", "2"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2 and "give each line its own --name" in run.stderr, run.stderr
    assert f"({listing}:2)" in run.stderr and "Traceback" not in run.stderr and not out.exists()
    listing.write_text(f"{clip} --end 0.4\n")
    with pytest.raises(UsageError, match=rf"{listing}:1: --end 0.4 is not after --start 0.5"):
        run_batch(read_list(listing), BatchOptions(opts(model="bicubic", start=0.5), out))
    assert not out.exists()
