"""``--start``/``--end``: only a part of the video is upscaled, with its audio and subtitles, the output
starting where the whole video's would (as FFmpeg's ``-ss``/``-to`` before the input)."""

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

from tests.conftest import flip_packet_bytes, make_clip, shared_path, textured_frames
from tests.test_subtitles import cues_of, srt_mkv  # noqa: F401 (a fixture)
from vsr_pipeline.media import FrameReader, probe, read_images
from vsr_pipeline.media.images import list_images
from vsr_pipeline.media.stream_copy import StreamCopier
from vsr_pipeline.media.trim import parse_time, resolve_span


def test_times_and_the_frames_they_select(tmp_path: Path) -> None:
    assert parse_time("12.5") == 12.5 and parse_time("1:02.5") == 62.5 and parse_time("01:00:03") == 3603
    for bad in ("", "1:2:3:4", "-3", "ten"):
        with pytest.raises(ValueError):
            parse_time(bad)
    # variable frame rate: frames at 0, 0.04, 0.12, 0.16, 0.28, 0.32 s
    clip = make_clip(tmp_path / "vfr.mp4", textured_frames(6, 32, 32), pts=[0, 1, 3, 4, 7, 8])
    info = probe(clip)
    span = resolve_span(info, 0.1, 0.3)
    assert (span.first, span.stop) == (2, 5) and span.shift_s == Fraction(12, 100)  # 0.12, 0.16, 0.28 s
    assert resolve_span(info, 0.1, 0.28).frames[:2] == (2, 4)  # the end is not included
    assert resolve_span(info, None, 0.05).frames[:2] == (0, 2)
    with pytest.raises(ValueError, match="selects no frame"):
        resolve_span(info, 0.33, None)


def test_the_reader_gives_the_part_by_seeking_or_by_decoding_up_to_it(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "in.mp4", textured_frames(30, 48, 32))
    with FrameReader(clip) as whole:
        frames, pts = whole.read(30)
    for seek in (True, False):
        with FrameReader(clip, span=(11, 23, pts[11] - pts[0]), seek_to_span=seek) as part:
            assert part.info.frames == 12
            got, got_pts = part.read(100)
            assert np.array_equal(got, frames[11:23])
            assert got_pts == [p - pts[11] + pts[0] for p in pts[11:23]]
            assert part.read(1)[1] == []
            part.seek(5)
            assert np.array_equal(part.read(2)[0], frames[16:18]) and part.position == 7


def _png(folder: Path) -> np.ndarray:
    return read_images(list_images(folder))


def test_a_part_of_real_footage_keeps_its_sound_in_step(tmp_path: Path, vsr: Any) -> None:
    """Big Buck Bunny (1280x720, 25 fps, AAC 48 kHz): 2.0 s to 3.5 s is frames 50-87; the output's first
    frame is at 0, its sound is the source's from 2.0 s, sample for sample. (A 320x180 region of it, for
    the suite's time.)"""
    src = shared_path("videos", "bigbuckbunny.mp4")
    region = ("--crop", "320:180")
    code, result, err = vsr(str(src), "-o", str(tmp_path / "part.mp4"), "--start", "2", "--end", "3.5",
                            *region)
    assert code == 0, err
    assert result["frames_in"] == result["frames_out"] == 38
    assert result["trim"] == {"start": 2.0, "end": 3.5, "first_frame": 50, "stop_frame": 88}
    assert result["quality"]["check_psnr_y_mean"] > 40  # the report paired the output with frames 50-87
    check = subprocess.run([sys.executable, "-m", "vsr_pipeline.cli", "check", str(src),
                            str(tmp_path / "part.mp4"), "--json"], capture_output=True, text=True,
                           timeout=120)
    assert check.returncode == 0, check.stderr  # vsr check takes the part from the manifest
    assert json.loads(check.stdout.splitlines()[-1])["psnr_y_min"] > 40
    with av.open(str(tmp_path / "part.mp4")) as c:
        times = [float(f.time) for f in c.decode(video=0)]
    assert times == pytest.approx([k / 25 for k in range(38)], abs=1e-3)
    out_t0, out = _sound(tmp_path / "part.mp4")
    src_t0, whole = _sound(src)
    assert 0 <= out_t0 < 0.025  # from the first AAC packet at or after 2.0 s
    at = round((out_t0 + 2.0 - src_t0) * 48000)  # where the output's sound should lie in the source's
    piece = out[4800:14400]
    lags = range(-96, 97)  # +-2 ms
    corr = [np.corrcoef(piece, whole[at + 4800 + k : at + 4800 + k + len(piece)])[0, 1] for k in lags]
    assert max(corr) > 0.99 and abs(lags[int(np.argmax(corr))]) <= 2  # MP4 times are exact (MKV: ms)

    code, _, err = vsr(str(src), "-o", str(tmp_path / "part_png"), "--start", "0:02", "--end", "3.5",
                       "--chunk", "7", *region)
    code_whole, _, err_whole = vsr(str(src), "-o", str(tmp_path / "whole_png"), "--end", "3.5", *region)
    assert code == code_whole == 0, err + err_whole
    assert np.array_equal(_png(tmp_path / "part_png"), _png(tmp_path / "whole_png")[50:88])


def _sound(path: Path) -> tuple[float, np.ndarray]:
    with av.open(str(path)) as c:
        frames = list(c.decode(audio=0))
    return float(frames[0].time), np.concatenate([f.to_ndarray()[0] for f in frames]).astype(np.float64)


def test_the_parts_sound_is_muxed_as_the_frames_reach_its_time(tmp_path: Path) -> None:
    """The copier interleaves by the part's clock: with the video written up to 0.5 s, then 1 s, of a part
    that starts at 1.0 s, the sound up to there is muxed too (a packet held at one call was compared on the
    source's clock at the next, and held on: for a long part, the sound would have waited for the end)."""
    clip = make_clip(tmp_path / "in.mp4", textured_frames(50, 32, 32), audio=True)
    span = resolve_span(probe(clip), 1.0, None)
    with av.open(str(tmp_path / "out.mkv"), "w") as out:
        copier = StreamCopier(out, clip, tmp_path / "out.mkv", span)
        copier.pump(Fraction(1, 2))
        half = sum(copier.muxed.values())
        copier.pump(Fraction(1))  # the packet held at the first call is then on the part's clock too
        whole = sum(copier.muxed.values())
        copier.close()
    assert 20 <= half <= 26 and 44 <= whole <= 50  # 0.5 s and 1 s of 48 kHz AAC, 1024 samples a packet


def test_subtitles_of_the_part_come_with_it(srt_mkv: Path, tmp_path: Path, vsr: Any) -> None:  # noqa: F811
    code, _, err = vsr(str(srt_mkv), "-o", str(tmp_path / "part.mkv"), "--start", "0.6")
    assert code == 0, err
    cues = cues_of(tmp_path / "part.mkv")[2]
    # the cues at 0.7 s and 1.3 s, now 0.6 s earlier; the one at 0.1 s is before the part
    assert [(start, length) for start, length, _, _ in cues] == [(100, 450), (700, 600)]
    code, _, err = vsr(str(srt_mkv), "-o", str(tmp_path / "late.mp4"), "--start", "0.8")
    assert code == 0, err
    # the cue of 0.7-1.15 s is on screen at 0.8 s: kept for its last 350 ms (as FFmpeg's -ss), converted
    assert [(start, length, text) for start, length, text, _ in cues_of(tmp_path / "late.mp4")[2]] == [
        (0, 350, "Größe café\nsecond line"), (500, 600, "Italic and bold")]


def test_lost_frames_of_a_part_keep_the_inputs_frame_numbers(tmp_path: Path, vsr: Any) -> None:
    clip = make_clip(tmp_path / "in.mp4", textured_frames(24, 32, 32))
    damaged = flip_packet_bytes(clip, tmp_path / "d.mp4", packets=slice(12, 14))
    code, whole, err = vsr(str(damaged), "-o", str(tmp_path / "whole.mkv"), "--on-corrupt", "skip")
    assert code == 0 and whole["corrupt_frames"] >= 1, err
    code, part, err = vsr(str(damaged), "-o", str(tmp_path / "part.mkv"), "--on-corrupt", "skip",
                          "--start", "0.2")  # frames 5-23
    assert code == 0, err
    assert part["corrupt"] == [c for c in whole["corrupt"] if c["index"] >= 5]
    assert part["frames_out"] == 19 - part["corrupt_frames"]
    rows = json.loads((tmp_path / "part.mkv.vsr.json").read_text())["mapping"]
    assert [r["index_in"] for r in rows] == list(range(5, 24))
    assert [r["index_in"] for r in rows if r["corrupt"]] == [c["index"] for c in part["corrupt"]]


def test_a_part_that_is_not_there_is_one_line(tmp_path: Path, vsr: Any) -> None:
    clip = make_clip(tmp_path / "in.mp4", textured_frames(10, 32, 32))
    out = tmp_path / "out.mp4"
    code, _, err = vsr(str(clip), "-o", str(out), "--start", "5")
    assert code == 2 and "--start 5 selects no frame (the video's frames run from 0 to 0.360 s)" in err, err
    code, _, err = vsr(str(clip), "-o", str(out), "--start", "0.2", "--end", "0.1")
    assert code == 2 and "--end 0.1 is not after --start 0.2" in err and not out.exists()
    run = subprocess.run([sys.executable, "-m", "vsr_pipeline.cli", "upscale", "-", "-o", str(out), "--start",
                          "1"], input=clip.read_bytes(), capture_output=True, text=False, timeout=60)
    assert run.returncode == 2 and b"--start takes a file" in run.stderr and not out.exists()


def test_end_stops_a_live_stream_after_that_long(tmp_path: Path) -> None:
    """A camera recorded for a set time: ``--end 1`` on a 2-second stream (stdin, MPEG-TS with AAC) keeps
    the frames of its first second and the sound up to the last of them, and ends cleanly."""
    clip = make_clip(tmp_path / "cam.ts", textured_frames(50, 48, 32), audio=True)
    out = tmp_path / "minute.mkv"
    run = subprocess.run([sys.executable, "-m", "vsr_pipeline.cli", "upscale", "-", "-o", str(out), "--model",
                          "bicubic", "--scale", "2", "--end", "1", "--no-progress", "--json"],
                         input=clip.read_bytes(), capture_output=True, timeout=300)
    assert run.returncode == 0, run.stderr.decode()
    result = json.loads(run.stdout.decode().splitlines()[-1])
    assert result["frames_out"] == 25 and result["reached_end"] and result["end"] == 1.0
    with av.open(str(out)) as c:
        times = [float(f.time) for f in c.decode(video=0)]
    with av.open(str(out)) as c:
        sound = [(float(f.time), f.samples / f.sample_rate) for f in c.decode(audio=0)]
    assert len(times) == 25 and times[-1] - times[0] == pytest.approx(0.96, abs=1e-3)
    assert sound and sound[-1][0] + sound[-1][1] <= times[-1] + 0.04 + 0.025  # up to the last frame's end
