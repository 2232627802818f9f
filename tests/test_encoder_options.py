"""Encoder options: ``--codec-option KEY=VALUE`` reaches the encoder (checked in the file written), a name the
encoder does not have is refused before anything runs (FFmpeg would ignore it), and an encoder that will not
open says FFmpeg's own reason; ``--crf`` reaches SVT-AV1 (it was dropped: SVT's default crf 35 ran)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.logging
import numpy as np
import pytest

from tests.conftest import make_clip, textured_frames
from vsr_pipeline.media.encoder_options import (
    crf_quantiser,
    has_option,
    merge_options,
    parse_codec_option,
    rate_control,
)

pytestmark = pytest.mark.usefixtures("ray_local")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("encopts") / "in.mp4", textured_frames(6, 64, 48))


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("INFO", "WARNING"))]
    assert len(lines) == 1, err
    return lines[0]


def test_option_names_are_the_encoders_own() -> None:
    """Asked of PyAV's own libavcodec, not OpenCV's copy (another version, loaded in the same process)."""

    from vsr_pipeline.media.encoder_options import _pyav_libraries

    libs = _pyav_libraries()
    if (Path(av.__file__).parent.parent / "av.libs").is_dir():  # PyAV's wheel (not a build on system FFmpeg)
        assert libs is not None and all(Path(p).parent.name == "av.libs" for p in libs), libs
    assert has_option("prores_ks", "profile") and has_option("libx264", "x264-params")
    assert has_option("libx264", "g") and has_option("mpeg2video", "b")  # generic AVCodecContext options
    assert has_option("prores_ks", "profle") is False and has_option("libx264", "bogus") is False
    assert parse_codec_option("-b:v=8M") == ("b", "8M") and parse_codec_option("g=1") == ("g", "1")
    for bad in ("g", "=1", "g=", "Bad Name=1", "pix_fmt=yuv444p"):
        with pytest.raises(ValueError):
            parse_codec_option(bad)
    assert merge_options({"crf": "18", "x265-params": "log-level=error"}, {"x265-params": "keyint=1"}) == {
        "crf": "18", "x265-params": "log-level=error:keyint=1"}


def test_codec_options_reach_the_encoder(clip: Path, tmp_path: Path, vsr: Any) -> None:
    """``profile=4444xq`` gives ProRes 4444 XQ; ``g=1`` an x264 stream of keyframes only."""
    code, res, err = vsr(str(clip), "-o", str(tmp_path / "xq.mov"), "--codec", "prores_ks", "--chroma", "444",
                         "--codec-option", "profile=4444xq")
    assert code == 0 and res["pix_fmt"] == "yuv444p10le", err
    with av.open(str(tmp_path / "xq.mov")) as c:  # the FourCC too (the joined file had HQ's, apch)
        assert (c.streams.video[0].codec_context.profile, c.streams.video[0].codec_tag) == ("XQ", "ap4x")
    code, _, err = vsr(str(clip), "-o", str(tmp_path / "intra.mkv"), "--codec-option", "g=1")
    assert code == 0, err
    with av.open(str(tmp_path / "intra.mkv")) as c:
        keys = [p.is_keyframe for p in c.demux(video=0) if p.size]
    assert len(keys) == 6 and all(keys)


def realtime_threads() -> list[int]:
    """Threads of this process with a realtime scheduling policy."""
    tasks = Path("/proc/self/task")
    found = []
    for t in tasks.iterdir() if tasks.is_dir() else ():
        try:
            if os.sched_getscheduler(int(t.name)) in (os.SCHED_FIFO, os.SCHED_RR):
                found.append(int(t.name))
        except OSError:  # the thread ended meanwhile
            pass
    return found


def test_svt_av1_takes_the_crf_and_leaves_no_realtime_thread(clip: Path, tmp_path: Path) -> None:
    """SVT-AV1 run as root made every thread of the process that opened it SCHED_FIFO 99 (the job's own
    encoder check runs here, in the driver): none is left so."""
    from vsr_pipeline import UpscaleOptions, upscale

    sizes = {}
    for crf in (10, 50):
        out = tmp_path / f"av1_{crf}.mkv"
        upscale(clip, out, UpscaleOptions(model="bicubic", scale=2, codec="libsvtav1", crf=crf,
                                          progress=False))
        sizes[crf] = out.stat().st_size
    assert sizes[10] > 2 * sizes[50], sizes
    assert realtime_threads() == []


def test_options_that_cannot_work_fail_before_anything_runs(clip: Path, tmp_path: Path, vsr: Any) -> None:
    """A typo (exit 2, nothing written) and a value the encoder refuses (exit 3, FFmpeg's own reason
    appended)."""
    cases = (((str(clip), "--codec", "prores_ks", "--codec-option", "profle=proxy"), 2,
              "has no option 'profle'"),
             ((str(clip), "--codec-option", "g"), 2, "is not KEY=VALUE"),
             ((str(clip), "--codec", "prores_ks", "--codec-option", "profile=bogus"), 3,
              "Error setting option profile to value bogus"))
    for i, (args, want, says) in enumerate(cases):
        out = tmp_path / f"out{i}{'.mov' if 'prores_ks' in args else '.mkv'}"
        code, _, err = vsr("-o", str(out), *args)
        assert code == want and says in one_line(err), err
        assert not list(tmp_path.iterdir())
    # the reason is asked of a child process: PyAV's log callback, on in this one, deadlocked a batch
    assert av.logging.get_level() is None


def test_mpeg2_output_keeps_every_frame_and_its_time(clip: Path, tmp_path: Path, vsr: Any) -> None:
    """MPEG-2 opens (its encoder takes only a frame rate as time base: frames are numbered at the rate and
    the container keeps the pts) with ``--crf`` as a fixed quantiser (FFmpeg's default, a 200 kb/s target,
    wrote mush): crf 0 -> quantiser 1, above 40 dB against the lossless run."""
    assert rate_control("mpeg2video", 18, "medium")["qmax"] == "3" and crf_quantiser(0) == 1
    assert rate_control("mpeg2video", 18, "medium", {"b": "8M"}) == {}  # a bit rate instead
    code, _, err = vsr(str(clip), "-o", str(tmp_path / "m2.mkv"), "--codec", "mpeg2video")
    assert code == 0, err
    assert vsr(str(clip), "-o", str(tmp_path / "ref.mkv"), "--codec", "ffv1")[0] == 0

    def frames_and_times(path: Path) -> tuple[np.ndarray, list[float]]:
        with av.open(str(path)) as c:
            decoded = list(c.decode(video=0))
        return (np.stack([f.to_ndarray(format="rgb24") for f in decoded]).astype(np.float64),
                [float(f.pts * f.time_base) for f in decoded])

    got, times = frames_and_times(tmp_path / "m2.mkv")
    ref, ref_times = frames_and_times(tmp_path / "ref.mkv")
    assert len(got) == 6 and times == ref_times
    assert 10 * np.log10(255**2 / np.mean((got - ref) ** 2)) > 40


def test_x264_output_declares_its_frame_rate(tmp_path: Path) -> None:
    """x264's VUI timing was its time base, so its stream declared 12800 fps for a 25 fps source in MP4's
    usual time base: what FFmpeg reports as the codec's rate, what a join copied (a MOV timecode track then
    failed) and what later tools read. It declares 25, and every pts is still the source's (a variable
    rate too)."""
    from vsr_pipeline.media import VideoWriter

    pts = [0, 512, 1024, 1536, 3000, 3512]
    with VideoWriter(tmp_path / "out.mp4", 64, 48, Fraction(1, 12800), Fraction(25)) as writer:
        writer.write(textured_frames(6, 64, 48), pts)
    with av.open(str(tmp_path / "out.mp4")) as c:
        rate = c.streams.video[0].codec_context.framerate
        times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    assert rate == 25 and times == [p / 12800 for p in pts]
