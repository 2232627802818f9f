"""``--decimate``: inverse telecine's second half. After ``--field-match`` one frame in every five repeats the
one before; it is dropped and the rest retimed evenly at 4/5 of the rate (29.97 -> 23.976 fps).

The clips are test_field_match's: 20 pictures of real footage (Big Buck Bunny) telecined by FFmpeg into 25
frames, as interlaced MPEG-2 (a DVD) and as lossless FFV1 flagged progressive. The telecine put its repeats
at frames 2, 7, 12, 17 and 22.
"""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from tests import faults
from tests.test_field_match import BBB, FILM, FRAMES, make_clips
from vsr_pipeline.errors import ChunkFailedError
from vsr_pipeline.media import FrameReader
from vsr_pipeline.media.decimate import CLEAR, Decimator, block_difference
from vsr_pipeline.metrics import psnr_y

pytestmark = pytest.mark.skipif(not BBB.is_file(), reason="../shared/data/videos/bigbuckbunny.mp4 absent")

REPEATS = [2, 7, 12, 17, 22]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return make_clips(tmp_path_factory.mktemp("telecine"))


def read_decimated(path: Path) -> tuple[np.ndarray, list[int | None], FrameReader]:
    with FrameReader(path, field_match=True, decimate=True) as r:
        frames, pts = r.read(100)
    return frames, pts, r


def test_the_telecines_repeats_are_dropped_and_each_picture_comes_back_once(clips: dict[str, Any]) -> None:
    """Both clips: the repeats found are the ones the telecine made; the 20 frames kept are the 20 pictures
    in order (MPEG-2 q2: each within 2.5 dB of its ~43 dB bound; the film's own pictures 6 and 7 are one
    picture twice, its 25 fps from 24, so either may stand for it. Lossless: 19 exactly, one at 68 dB, a
    few pixels the matcher left to the deinterlacer)."""
    film = clips["film"]
    frames, pts, reader = read_decimated(clips["dvd.mpg"])
    assert len(pts) == FRAMES and reader.decimated == REPEATS
    assert [i for i, p in enumerate(pts) if p is None] == REPEATS
    kept = [f for f, p in zip(frames, pts, strict=True) if p is not None]
    scores = [psnr_y(f, film[i]) for i, f in enumerate(kept)]
    assert len(kept) == FILM and min(scores) > 40.5, np.round(scores, 1)
    frames, pts, reader = read_decimated(clips["progressive.mkv"])
    kept = [f for f, p in zip(frames, pts, strict=True) if p is not None]
    assert reader.decimated == REPEATS and len(kept) == FILM
    assert sum(np.array_equal(f, film[i]) for i, f in enumerate(kept)) >= FILM - 1
    assert min(psnr_y(f, film[i]) for i, f in enumerate(kept)) > 60


def test_kept_frames_are_retimed_evenly_over_the_same_length(clips: dict[str, Any]) -> None:
    """The first frame keeps its pts; every later one is 5/4 of a source period after the one before
    (90 kHz MPEG-PS: 3753.75 ticks, rounded), so the 20 frames span what 25 did."""
    with FrameReader(clips["dvd.mpg"]) as r:
        _, source = r.read(100)
        step = Fraction(1) / (r.info.fps * r.info.time_base)
    _, pts, _ = read_decimated(clips["dvd.mpg"])
    kept = [p for p in pts if p is not None]
    assert kept[0] == source[0] and step == 3003
    assert kept == [source[0] + round(k * step * 5 / 4) for k in range(FILM)]
    assert set(np.diff(kept)) <= {3753, 3754}


def test_a_cycle_with_no_clear_repeat_keeps_the_cadence() -> None:
    """Where no frame of a cycle stands out (slow motion under coding noise, a still shot), the frame at the
    last clear repeat's place is dropped; before any clear repeat, the least different one."""
    d = Decimator(Fraction(1))
    assert d._choose([float("inf"), 9.0, 1.0, 8.0, 7.0]) == 2  # clear: 1.0 * CLEAR < 7.0
    assert d._choose([7.9, 3.2, 4.4, 6.5, 3.1]) == 2  # the matcher left its repeat combed: cadence kept
    assert d._choose([5.0, 6.0, 7.0, 0.5, 6.0]) == 3  # a new clear repeat (an edit) moves the cadence
    assert Decimator(Fraction(1))._choose([7.9, 3.2, 4.4, 6.5, 3.1]) == 4
    assert CLEAR > 1
    a = np.zeros((64, 64), np.uint8)
    b = a.copy()
    b[:16, :16] = 40  # one block in 16 changed: the block measure sees all of it, the mean a sixteenth
    assert block_difference(b, a) == 40 and np.abs(b.astype(int) - a).mean() == 2.5


def decode(path: Path) -> tuple[list[float], np.ndarray, Fraction]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        return ([float(f.time) for f in frames], np.stack([f.to_ndarray(format="rgb24") for f in frames]),
                s.average_rate)


def test_the_pipeline_writes_23976_fps_the_same_in_chunks_and_after_a_crash(
        clips: dict[str, Any], tmp_path: Path, vsr: Any) -> None:
    """`vsr upscale --field-match --decimate`: 20 frames at 24000/1001 fps, evenly timed, from where the
    source starts to where its 25 frames ended; chunks of 8 (the cycles cut across them) give the frames of
    one whole chunk; a job whose chunk 1 failed resumes to the same output. The manifest maps each dropped
    input frame to no output frame and the job's quality report reads the others' own inputs."""
    from vsr_pipeline.job import upscale
    from vsr_pipeline.options import UpscaleOptions

    dvd = clips["dvd.mpg"]
    code, res, err = vsr(str(dvd), "-o", str(tmp_path / "a.mkv"), "--field-match", "--decimate",
                         "--chunk", "8")
    assert code == 0 and res["frames_out"] == FILM and res["decimated_frames"] == 5, err
    times, frames, rate = decode(tmp_path / "a.mkv")
    with av.open(str(dvd)) as c:
        times_in = [float(f.time) for f in c.decode(video=0)]
    assert rate == Fraction(24000, 1001) and len(times) == FILM
    assert np.allclose(np.diff(times), 1001 / 24000, atol=1e-3) and abs(times[0] - times_in[0]) < 1e-3
    code, res, err = vsr(str(dvd), "-o", str(tmp_path / "b.mkv"), "--field-match", "--decimate")
    assert code == 0 and res["chunks"] == 1, err
    np.testing.assert_array_equal(decode(tmp_path / "b.mkv")[1], frames)
    manifest = json.loads((tmp_path / "a.mkv.vsr.json").read_text())
    assert [r["index_in"] for r in manifest["mapping"] if r.get("decimated")] == REPEATS
    assert [r["index_out"] for r in manifest["mapping"] if r["index_out"] is not None] == list(range(FILM))
    assert manifest["frames"]["decimated_frames"] == 5 and manifest["frames"]["pts_repaired"] == 0
    quality = manifest["quality"]  # each output frame degraded back against its own input frame
    assert quality["frames_checked"] >= 16 and quality["check_psnr_y_min"] > 40 and not quality["flagged"]

    opts = UpscaleOptions(model="bicubic", scale=2, crf=0, chunk=8, field_match=True, decimate=True,
                          progress=False, retries=0)
    with faults.injected("always:1"), pytest.raises(ChunkFailedError):
        upscale(dvd, tmp_path / "c.mkv", opts)
    res2 = upscale(dvd, tmp_path / "c.mkv", opts)
    assert res2.chunks_resumed >= 1 and res2.decimated_frames == 5
    np.testing.assert_array_equal(decode(tmp_path / "c.mkv")[1], frames)


def test_decimate_without_field_match_a_folder_or_a_stream_is_one_line(
        clips: dict[str, Any], tmp_path: Path, vsr: Any) -> None:
    from vsr_pipeline.media import ImageFolderWriter

    out = tmp_path / "out.mkv"
    code, _, err = vsr(str(clips["dvd.mpg"]), "-o", str(out), "--decimate")
    assert code == 2 and "it needs --field-match" in err and not out.exists(), err
    with ImageFolderWriter(tmp_path / "frames") as w:
        w.write(clips["film"][:5], list(range(5)))
    code, _, err = vsr(str(tmp_path / "frames"), "-o", str(out), "--field-match", "--decimate")
    assert code == 2 and "no fields to match" in err and not out.exists(), err
    run = subprocess.run([sys.executable, "-m", "vsr_pipeline.cli", "upscale", "-", "-o",
                          str(tmp_path / "s.ts"), "--field-match", "--decimate"],
                         input=clips["dvd.mpg"].read_bytes(), capture_output=True, timeout=60)
    assert run.returncode == 2 and b"--decimate takes a file" in run.stderr, run.stderr[-500:]
