"""MPEG-1/2 take only listed frame rates: the rate they are told, how a frame's time becomes a period of it,
and a variable-rate source whose frames would share a period refused before any work (it used to fail at
the encoder check with "MPEG-1/2 does not support 1800/61 fps")."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import cv2
import pytest

from tests.conftest import make_clip, textured_frames
from tests.test_bad_input import run_cli
from tests.test_segment_timing import JITTER, frame_times
from vsr_pipeline import UpscaleOptions, upscale
from vsr_pipeline.errors import EXIT_INPUT
from vsr_pipeline.media import MediaError, VideoWriter
from vsr_pipeline.media.frame_rate import (
    choose_frame_rate,
    codec_frame_rate,
    first_shared_period,
    frame_period,
    listed_rates,
)

F = Fraction


@pytest.mark.parametrize(("codec", "fps", "rate"), [
    ("mpeg2video", F(25), F(25)),
    ("mpeg2video", F(24000, 1001), F(24000, 1001)),
    ("mpeg2video", F(25, 2), F(25)),  # a listed multiple: exact, one period in two
    ("mpeg1video", F(20), F(60)),
    ("mpeg2video", F(2997, 100), F(30000, 1001)),  # within 0.5 %: the same rate, measured with rounding
    ("mpeg2video", F(1800, 61), F(30000, 1001)),  # 29.5: the lowest listed above
    ("mpeg1video", F(15), F(30)),  # 15 is listed for MPEG-1 but refused by the encoder (unofficial)
    ("libx264", F(1800, 61), F(1800, 61)),  # takes any
])
def test_codec_frame_rate(codec: str, fps: Fraction, rate: Fraction) -> None:
    assert codec_frame_rate(codec, fps) == rate


def test_every_listed_rate_opens_the_encoder(tmp_path: Path) -> None:
    for codec in ("mpeg1video", "mpeg2video"):
        assert listed_rates(codec)
        for rate in listed_rates(codec):
            with av.open(str(tmp_path / "r.ts"), "w") as out:
                s = out.add_stream(codec, rate=rate)
                s.width, s.height, s.pix_fmt = 32, 16, "yuv420p"
                s.codec_context.time_base = 1 / rate
                s.codec_context.open()  # raises for a rate the encoder refuses


@pytest.mark.parametrize(("pts", "tb", "rate"), [
    ([126000 + 3600 * i for i in range(5)], F(1, 90000), F(25)),  # a TS source's 25 fps, late start
    ([0, 3003, 6006, 12012], F(1, 90000), F(30000, 1001)),  # 29.97 with a dropped frame
    ([2 * i for i in range(5)], F(1, 25), F(25)),  # 12.5 fps: every second period of 25
    ([0, 3000, 6010, 9000], F(1, 90000), F(30)),  # off any grid: the mean rate, 30
    ([1234 + 3600 * i for i in range(5)], F(1, 90000), F(25)),  # off the grid by a constant: mean rate
])
def test_choose_frame_rate_from_pts(pts: list[int], tb: Fraction, rate: Fraction) -> None:
    assert choose_frame_rate("mpeg2video", pts, tb, F(1)) == rate


def test_frame_period_rounds_as_ffmpeg() -> None:
    """av_rescale_q rounds to nearest, half away from zero."""
    tb, rate = F(1, 100), F(20)  # 5 ticks per period
    assert [frame_period(p, tb, rate) for p in (0, 2, 3, 7, 8, -2, -3)] == [0, 0, 1, 1, 2, 0, -1]
    assert first_shared_period([0, 5, 7, 10], tb, rate) == (5, 7)
    assert first_shared_period([0, 5, 10], tb, rate) is None


@pytest.mark.usefixtures("ray_local")
def test_mpeg2_from_a_jittery_phone_clip_keeps_every_frame(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", textured_frames(len(JITTER), 32, 24), pts=JITTER,
                    time_base=F(1, 90000), audio=True)
    out = tmp_path / "out.ts"
    res = upscale(src, out, UpscaleOptions(model="bicubic", codec="mpeg2video", chunk=5, progress=False))
    assert res.frames_out == len(JITTER)
    with av.open(str(out)) as c:
        assert c.streams.video[0].codec_context.framerate == 30  # their mean rate (11 periods in 0.3667 s)
    period = F(1, 30)
    for got, want in zip(frame_times(out), frame_times(src), strict=True):
        assert abs(got - want) <= period / 2


@pytest.mark.usefixtures("ray_local")
def test_mpeg2_from_12_5_fps_is_exact_at_25(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", textured_frames(9, 32, 24), pts=[2 * i for i in range(9)],
                    time_base=F(1, 25))
    out = tmp_path / "out.mkv"
    upscale(src, out, UpscaleOptions(model="bicubic", codec="mpeg2video", progress=False))
    assert frame_times(out) == [F(2 * i, 25) for i in range(9)]


@pytest.mark.usefixtures("ray_local")
def test_mpeg2_from_frames_closer_than_a_period_is_refused_first(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    burst = [0, 3000, 6000, 9100, 12000, 13000, 15000, 18000]  # 12000 and 13000: one period of 29.97
    src = make_clip(tmp_path / "in.mp4", textured_frames(len(burst), 32, 24), pts=burst,
                    time_base=F(1, 90000))
    out = tmp_path / "out.ts"
    code = run_cli(["upscale", str(src), "-o", str(out), "--model", "bicubic", "--codec", "mpeg2video",
                    "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == EXIT_INPUT
    assert err[-1].startswith("vsr: error: ") and "0.1333 s and 0.1444 s fall in one frame period" in err[-1]
    assert "libx264" in err[-1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]  # nothing written, no job folder


@pytest.mark.usefixtures("ray_local")
def test_mpeg2_from_7_fps_frames_is_written_at_7_49_with_a_warning(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """MPEG-2 has no 7 fps nor a multiple of it (this was exit 3, "MPEG-1/2 does not support 7/1 fps"):
    every frame is kept, at the lowest listed rate above (7500/1001), each within half a period of its
    time, and a warning says so."""
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, frame in enumerate(textured_frames(5, 32, 24)):
        cv2.imwrite(str(frames / f"{i}.png"), frame)
    out = tmp_path / "out.mkv"
    with caplog.at_level(logging.WARNING):
        res = upscale(frames, out, UpscaleOptions(model="bicubic", codec="mpeg2video", fps=F(7),
                                                  progress=False))
    assert res.frames_out == 5
    assert any("written at 7500/1001 fps, each within half a period (0.0667 s)" in r.getMessage()
               for r in caplog.records)
    for got, want in zip(frame_times(out), [F(i, 7) for i in range(5)], strict=True):
        assert abs(got - want) <= F(1001, 15000) + F(1, 1000)  # Matroska's milliseconds


def test_the_writer_refuses_two_frames_in_one_period(tmp_path: Path) -> None:
    """A live stream's frames are not known ahead: its writer says which two frames, and writes nothing."""
    out = tmp_path / "live.ts"
    writer = VideoWriter(out, 32, 24, F(1, 90000), F(30000, 1001), codec="mpeg2video")
    says = r"frames at 0\.1333 s and 0\.1444 s fall in one frame period"
    with pytest.raises(MediaError, match=says), writer:
        writer.write(textured_frames(3, 32, 24), [6000, 12000, 13000])
    assert not out.exists() and not list(tmp_path.iterdir())
