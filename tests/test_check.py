"""``vsr check``: real upscales degrade back to their input; an invented frame is flagged by index; added
flicker shows in the flicker ratio; mismatched pairs are one-line errors with documented codes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tests.conftest import make_clip, textured_frames
from vsr_pipeline import UpscaleOptions, upscale
from vsr_pipeline.check import (
    EXIT_FLAGGED,
    assumed_degradation,
    check_files,
    flag_threshold,
    sample_runs,
)
from vsr_pipeline.cli import main
from vsr_pipeline.degrade import degrade_bd, degrade_bi
from vsr_pipeline.errors import EXIT_INPUT, EXIT_USAGE
from vsr_pipeline.media import ImageFolderWriter, list_images, read_images
from vsr_pipeline.metrics import psnr_y

N = 12


@pytest.fixture(scope="module")
def upscaled(tmp_path_factory: pytest.TempPathFactory, ray_local: None) -> tuple[Path, Path, Path]:
    """A real clip upscaled x2 by ESPCN to an H.264 file and to a PNG folder (each with its manifest)."""
    d = tmp_path_factory.mktemp("check")
    src = make_clip(d / "in.mp4", textured_frames(N, 48, 32))
    opts = UpscaleOptions(model="espcn", scale=2, chunk=4, progress=False)
    upscale(src, d / "out.mp4", opts)
    upscale(src, d / "frames", opts)
    return src, d / "out.mp4", d / "frames"


def _json(capsys: pytest.CaptureFixture[str]) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_real_upscale_checks_clean(
    upscaled: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    src, out, _ = upscaled
    assert main(["check", str(src), str(out), "--json"]) == 0
    r = _json(capsys)
    assert (r["scale"], r["degradation"], r["degradation_from"]) == (2, "bi", "manifest")
    assert r["frames_checked"] == N and r["flagged"] == [] and r["exit_code"] == 0
    assert r["psnr_y_min"] > 38 and r["psnr_y_mean"] > 40
    with av.open(str(out)) as c:
        pts = [int(f.pts) for f in c.decode(c.streams.video[0])]
    assert [f["index"] for f in r["frames"]] == list(range(N)) and [f["pts"] for f in r["frames"]] == pts
    assert 0.9 < r["flicker_ratio"] < 1.1 and r["flicker_pairs"] == N - 1
    # the value per frame is metrics.psnr_y of the MATLAB-bicubic-degraded output against the input
    from vsr_pipeline.media import FrameReader

    with FrameReader(src) as a, FrameReader(out) as b:
        lr, hr = a.read(N)[0], b.read(N)[0]
    assert r["frames"][5]["psnr_y"] == pytest.approx(psnr_y(degrade_bi(hr[5], 2), lr[5]), abs=1e-4)


def test_an_invented_frame_is_flagged_with_its_index_and_shows_in_the_heatmap(
    upscaled: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, _, frames = upscaled
    out = tmp_path / "frames"
    shutil.copytree(frames, out)
    names = list_images(out)
    hr = read_images(names)
    other = textured_frames(1, hr.shape[2], hr.shape[1], seed=7)[0]  # detail the input never had
    cv2.imwrite(str(names[7]), cv2.cvtColor(other, cv2.COLOR_RGB2BGR))
    heat = tmp_path / "heat"
    code = main(["check", str(src), str(out), "--scale", "2", "--heatmap", str(heat), "--json"])
    r = _json(capsys)
    assert code == EXIT_FLAGGED == r["exit_code"]
    assert [f["index"] for f in r["flagged"]] == [7] and r["flagged"][0]["psnr_y"] < r["threshold"]
    assert r["degradation_from"] == "default" and r["flicker_ratio"] > 1.3  # 6->7->8 jump (clean: 0.99)
    maps = read_images(list_images(heat))
    assert maps.shape == (N, hr.shape[1], hr.shape[2], 3)
    brightness = maps.astype(float).mean(axis=(1, 2, 3))
    assert int(np.argmax(brightness)) == 7 and brightness[7] > 3 * np.median(brightness)
    # a heatmap folder that holds files is never written into
    assert main(["check", str(src), str(out), "--scale", "2", "--heatmap", str(heat)]) == EXIT_USAGE
    assert "--heatmap" in capsys.readouterr().err and len(list_images(heat)) == N


def test_ground_truth_degrades_back_exactly_only_with_its_own_kernel(tmp_path: Path) -> None:
    hr = textured_frames(5, 64, 48, seed=3)
    folders = {}
    for name, frames in (("hr", hr), ("bi", degrade_bi(hr, 4)), ("bd", degrade_bd(hr, 4))):
        with ImageFolderWriter(tmp_path / name) as w:
            w.write(np.ascontiguousarray(frames), list(range(5)))
        folders[name] = tmp_path / name
    same = check_files(folders["bi"], folders["hr"], 4, "bi")
    assert same["psnr_y_min"] == 100.0 and same["flagged"] == []  # identical: capped at 100 dB
    assert check_files(folders["bd"], folders["hr"], 4, "bd")["psnr_y_min"] == 100.0
    crossed = check_files(folders["bd"], folders["hr"], 4, "bi")
    assert crossed["psnr_y_mean"] < 40
    assert check_files(folders["bd"], folders["hr"], 4)["degradation"] == "bi"  # the default without manifest


def test_mismatched_pairs_are_one_line_errors(
    upscaled: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, out, _ = upscaled
    assert main(["check", str(src), str(out), "--scale", "4"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not x4" in err[0] and "--scale" in err[0]
    short = make_clip(tmp_path / "short.mp4", textured_frames(N - 2, 48, 32))
    shutil.copy(out, tmp_path / "out.mp4")  # no manifest beside it: frames are paired by index
    assert main(["check", str(short), str(tmp_path / "out.mp4"), "--scale", "2"]) == EXIT_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"has {N} frames" in err[0] and f"has {N - 2}" in err[0]
    assert main(["check", str(tmp_path / "nope.mp4"), str(out)]) == EXIT_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.mp4" in err[0] and "Traceback" not in err[0]
    (tmp_path / "text.mp4").write_text("not a video")
    assert main(["check", str(tmp_path / "text.mp4"), str(out)]) == EXIT_INPUT


def test_threshold_sample_and_degradation_rules() -> None:
    clean = [45.0, 45.3, 44.8, 45.1, 44.9, 45.2]
    assert flag_threshold(clean) == pytest.approx(45.05 - 3.0, abs=1e-3)  # the floor: nothing flagged
    noisy = [40.0, 44.0, 36.0, 42.0, 38.0, 15.0]
    t = flag_threshold(noisy)
    assert [v for v in noisy if v < t] == [15.0] and t < 36.0
    assert sample_runs(10, [0]) == [range(10)]
    runs = sample_runs(200, list(range(0, 200, 25)))
    assert [r.start for r in runs] == [0, 50, 125, 175] and all(len(r) == 4 for r in runs)
    assert sum(len(r) for r in runs) == 16
    assert sample_runs(50, [0]) == [range(0, 4), range(15, 19), range(31, 35), range(46, 50)]
    assert assumed_degradation("basicvsr", "vimeo-bd") == "bd"
    assert assumed_degradation("basicvsr", None) == "bi"  # reds4: bicubic
    assert assumed_degradation("basicvsr", "/w/BasicVSR_Vimeo90K_BDx4.pth") == "bd"
    assert assumed_degradation("espcn", None) == "bi"


def test_job_quality_report_reads_its_sample_by_seeking_and_agrees_with_the_full_check(
    tmp_path: Path, ray_local: None
) -> None:
    src = make_clip(tmp_path / "in.mp4", textured_frames(40, 48, 32))
    res = upscale(src, tmp_path / "out.mp4", UpscaleOptions(model="espcn", scale=2, chunk=10, progress=False))
    q = res.quality
    assert q is not None and q["sample"] == "0-3, 10-13, 20-23, 30-33" and q["frames_checked"] == 16
    full = check_files(src, tmp_path / "out.mp4", 2)
    by_index = {f["index"]: f["psnr_y"] for f in full["frames"]}
    sample = [by_index[k] for r in (0, 10, 20, 30) for k in range(r, r + 4)]
    assert q["check_psnr_y_mean"] == pytest.approx(float(np.mean(sample)), abs=1e-3)
    assert q["check_psnr_y_min"] == min(sample) and q["flagged"] == [] and q["flicker_pairs"] == 12
    assert res.report_seconds is not None and res.report_seconds < res.seconds
