"""``--crop W:H[:X:Y]``: only a region of each frame is upscaled (a plate, a face, a doorway), as a player
shows the picture (a display rotation applied first, as FFmpeg's crop after its autorotation)."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.conftest import make_clip, textured_frames
from vsr_pipeline.media import FrameReader, ImageFolderWriter, VideoWriter, probe, read_images
from vsr_pipeline.media.crop import (
    Region,
    output_offset,
    parse_crop,
    resolve_crop,
    stored_region,
    with_context,
)
from vsr_pipeline.media.images import list_images

W, H, N = 96, 64, 10


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("crop") / "in.mp4", textured_frames(N, W, H, seed=3), audio=True)


def _frames_of(folder: Path) -> np.ndarray:
    return read_images(list_images(folder))


def _write_folder(folder: Path, frames: np.ndarray) -> Path:
    writer = ImageFolderWriter(folder)
    writer.write(np.ascontiguousarray(frames), list(range(len(frames))))
    writer.close()
    return folder


def test_parse_and_resolve() -> None:
    assert parse_crop("40:30") == (40, 30)
    assert parse_crop("40:30:7:5") == (40, 30, 7, 5)
    for bad in ("40", "40:30:7", "a:b", "0:30", "40:30:-1:0", "40x30"):
        with pytest.raises(ValueError):
            parse_crop(bad)
    assert resolve_crop((40, 30), W, H) == (40, 30, 28, 17)  # centred, rounded down as FFmpeg's crop
    assert resolve_crop((W, H, 0, 0), W, H) == (W, H, 0, 0)
    with pytest.raises(ValueError, match="40x30 is larger than the 32x24 picture"):
        resolve_crop((40, 30), 32, 24)
    with pytest.raises(ValueError, match="reaches past the 96x64 picture"):
        resolve_crop((40, 30, 60, 0), W, H)
    with pytest.raises(ValueError, match=r"64x96 picture as displayed \(upright\)"):
        resolve_crop((80, 30), W, H, rotation=90)  # upright, the picture is 64 wide


@pytest.mark.parametrize("rotation", [0, 90, 180, -90, 270])
def test_the_region_is_the_crop_of_the_displayed_picture(rotation: int) -> None:
    """The displayed picture is the stored one turned counter-clockwise by the rotation (FFmpeg's
    autorotation: ``transpose=cclock`` for a display matrix of +90 degrees): the region cut out of the
    stored frame and turned the same way is the crop of the displayed picture."""
    stored = np.arange(H * W).reshape(H, W)
    turns = (rotation % 360) // 90
    shown = np.rot90(stored, turns)
    crop = (17, 11, 5, 9)
    r = stored_region(crop, W, H, rotation)
    cut = stored[r.y : r.y + r.height, r.x : r.x + r.width]
    assert np.array_equal(np.rot90(cut, turns), shown[9 : 9 + 11, 5 : 5 + 17])


def test_the_context_stays_in_the_picture_and_the_output_is_found_in_it() -> None:
    assert with_context((40, 30, 7, 5), W, H) == (63, 51, 0, 0)  # 16 each side, cut at the picture's edges
    assert with_context((20, 20, 30, 20), W, H) == (52, 52, 14, 4)
    assert output_offset((20, 20, 30, 20), (52, 52, 14, 4), W, H, 0, 4) == (64, 64)
    upright = with_context((20, 20, 30, 20), W, H, rotation=90)  # the displayed picture is 64 wide
    assert upright == (50, 52, 14, 4)
    assert output_offset((20, 20, 30, 20), upright, W, H, 90, 2) == (2 * 16, 2 * 16)


def test_the_reader_crops_sequentially_after_a_seek_and_in_a_folder(clip: Path, tmp_path: Path) -> None:
    with FrameReader(clip) as whole:
        full, pts = whole.read(N)
    with FrameReader(clip, crop=(40, 30, 7, 5)) as reader:
        assert (reader.info.width, reader.info.height) == (40, 30) and reader.region == Region(40, 30, 7, 5)
        got, got_pts = reader.read(N)
        assert got_pts == pts and got.flags.c_contiguous
        assert np.array_equal(got, full[:, 5:35, 7:47])
        reader.seek(6)
        again, _ = reader.read(2)
        assert np.array_equal(again, full[6:8, 5:35, 7:47])
    folder = _write_folder(tmp_path / "frames", full)
    with FrameReader(folder, crop=(40, 30)) as reader:
        assert np.array_equal(reader.read(N)[0], full[:, 17:47, 28:68])


def test_a_cropped_job_equals_the_whole_frames_job_cut_to_the_region(clip: Path, tmp_path: Path,
                                                                       vsr: Any) -> None:
    """The model sees the region with 16 pixels of picture around it (``media.crop.CONTEXT``) and the output
    drops them: bicubic's 4x4 kernel then computes every output pixel from the same input pixels as on the
    whole frame, so the region's output is the whole frame's, cut."""
    code, result, err = vsr(str(clip), "-o", str(tmp_path / "out"), "--crop", "41:29:7:5")
    assert code == 0, err
    assert result["crop"] == [41, 29, 7, 5] and result["frames_out"] == N
    sizes = (result["width_in"], result["height_in"], result["width_out"], result["height_out"])
    assert sizes == (41, 29, 82, 58)
    assert result["quality"]["check_psnr_y_mean"] > 40  # the report compared the region, not the whole frame
    code, _, err = vsr(str(clip), "-o", str(tmp_path / "whole"))
    assert code == 0, err
    assert np.array_equal(_frames_of(tmp_path / "out"), _frames_of(tmp_path / "whole")[:, 10:68, 14:96])
    manifest = json.loads((tmp_path / "out.vsr.json").read_text())
    assert manifest["settings"]["crop"] == [41, 29, 7, 5]
    assert manifest["settings"]["crop_context"] == [64, 50, 0, 0]  # 16 each side, within the 96x64 picture

    code, result, err = vsr(str(clip), "-o", str(tmp_path / "centred.mkv"), "--crop", "40:30")
    assert code == 0, err
    assert result["crop"] == [40, 30, 28, 17] and result["audio"][0]["written_as"] == "copy"
    info = probe(tmp_path / "centred.mkv")
    assert (info.width, info.height, info.frames) == (80, 60, N) and info.has_audio


def test_vsr_check_compares_the_region_the_manifest_names(clip: Path, tmp_path: Path, vsr: Any) -> None:
    out = tmp_path / "out.mkv"
    assert vsr(str(clip), "-o", str(out), "--crop", "40:30:50:30")[0] == 0
    check = [sys.executable, "-m", "vsr_pipeline.cli", "check", str(clip), str(out), "--json"]
    right = subprocess.run(check, capture_output=True, text=True, timeout=120)
    assert right.returncode == 0, right.stderr
    report = json.loads(right.stdout.strip().splitlines()[-1])
    assert report["crop"] == [40, 30, 50, 30] and report["psnr_y_min"] > 40
    wrong = subprocess.run([*check, "--crop", "40:30:0:0"], capture_output=True, text=True, timeout=120)
    assert json.loads(wrong.stdout.strip().splitlines()[-1])["psnr_y_mean"] < report["psnr_y_mean"] - 10
    out.with_name(out.name + ".vsr.json").unlink()  # no manifest, no crop given: the sizes do not match
    bare = subprocess.run(check, capture_output=True, text=True, timeout=120)
    assert bare.returncode == 2 and "the region the job upscaled with --crop" in bare.stderr


def test_a_crop_past_the_picture_is_one_line_and_writes_nothing(clip: Path, tmp_path: Path, vsr: Any) -> None:
    out = tmp_path / "out.mp4"
    code, _, err = vsr(str(clip), "-o", str(out), "--crop", "64:48:40:20")
    assert code == 2 and "--crop 64:48:40:20 reaches past the 96x64 picture" in err, err
    assert "Traceback" not in err and not out.exists()
    run = subprocess.run([sys.executable, "-m", "vsr_pipeline.cli", "upscale", str(clip), "-o", str(out),
                          "--crop", "0:10"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "width and height must be >= 1" in run.stderr and not out.exists()


def test_a_rotated_video_is_cropped_as_it_is_displayed(tmp_path: Path, vsr: Any) -> None:
    """A phone video stored 96x64 and displayed upright (64x96, rotation +90): the crop is taken in the
    upright picture; the output keeps the rotation, so it is shown upright too."""
    frames = textured_frames(6, W, H, seed=5)
    src = tmp_path / "rot.mp4"
    with VideoWriter(src, W, H, Fraction(1, 25), Fraction(25), crf=0, rotation=90) as w:
        w.write(frames, list(range(6)))
    code, _, err = vsr(str(src), "-o", str(tmp_path / "out.mp4"), "--crop", "30:50:4:40")
    assert code == 0, err
    out = probe(tmp_path / "out.mp4")
    assert out.rotation == 90 and (out.width, out.height) == (100, 60)  # stored 50x30, shown 60x100
    # where the displayed crop lies in the stored frame: the stored pixels' numbers, turned as displayed
    shown = np.rot90(np.arange(H * W).reshape(H, W), 1)[40:90, 4:34]
    rows, cols = np.unravel_index(shown, (H, W))
    y0, y1, x0, x1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    code, _, err = vsr(str(src), "-o", str(tmp_path / "whole_png"))
    code_png, _, err = vsr(str(src), "-o", str(tmp_path / "out_png"), "--crop", "30:50:4:40")
    assert code == code_png == 0, err
    whole = _frames_of(tmp_path / "whole_png")
    assert np.array_equal(_frames_of(tmp_path / "out_png"), whole[:, 2 * y0 : 2 * y1, 2 * x0 : 2 * x1])


def test_a_live_stream_is_cropped_as_a_file_is(tmp_path: Path, vsr: Any) -> None:
    clip = make_clip(tmp_path / "in.ts", textured_frames(N, W, H, seed=3))  # MPEG-TS: readable from a pipe
    live = tmp_path / "live.mkv"
    run = subprocess.run([sys.executable, "-m", "vsr_pipeline.cli", "upscale", "-", "-o", str(live),
                          "--model", "bicubic", "--scale", "2", "--crf", "0", "--crop", "40:30:50:30",
                          "--no-progress", "--json"], input=clip.read_bytes(), capture_output=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr.decode()
    result = json.loads(run.stdout.decode().strip().splitlines()[-1])
    assert result["crop"] == [40, 30, 50, 30] and (result["width_out"], result["height_out"]) == (80, 60)
    code, _, err = vsr(str(clip), "-o", str(tmp_path / "file.mkv"), "--crop", "40:30:50:30")
    assert code == 0, err
    with FrameReader(live) as a, FrameReader(tmp_path / "file.mkv") as b:
        got, want = a.read(N + 1)[0], b.read(N + 1)[0]
    assert got.shape == want.shape == (N, 60, 80, 3)
    assert np.abs(got.astype(int) - want).max() <= 2  # both lossless x264 of the same frames
