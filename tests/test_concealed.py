"""Frames the decoder produced from damaged data, its errors concealed from the pictures around them: kept
(the decoder's repair is a better picture than a repeated frame), but reported, so the damage can be found
by hand. FFmpeg's MPEG-1/2, MPEG-4 part 2 and H.263 decoders flag such frames; its H.264 and HEVC decoders
do not, so there is nothing to report for those."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from tests.conftest import textured_frames

FRAMES, DAMAGED = 20, 8


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An MPEG-2 video in Matroska (a DVD rip; no B-frames, so packet k is frame k)
    and a copy with 8 bytes inverted in the middle of frame 8's packet."""
    folder = tmp_path_factory.mktemp("concealed")
    clean = folder / "clean.mkv"
    with av.open(str(clean), "w") as out:
        stream = out.add_stream("mpeg2video", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for frame in textured_frames(FRAMES, 96, 64, seed=7):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode(None))
    with av.open(str(clean)) as c:
        spans = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    data = bytearray(clean.read_bytes())
    pos, size = spans[DAMAGED]
    for i in range(pos + size // 2, pos + size // 2 + 8):
        data[i] ^= 0x55
    damaged = folder / "damaged.mkv"
    damaged.write_bytes(bytes(data))
    return clean, damaged


def test_ffmpeg_flags_the_damaged_frame_and_repairs_it(clips: tuple[Path, Path]) -> None:
    """What the report rests on, without vsr: every frame still comes out, and only frame 8 is flagged."""
    clean, damaged = clips
    with av.open(str(clean)) as a, av.open(str(damaged)) as b:
        want = [f.to_ndarray(format="gray") for f in a.decode(video=0)]
        got = [(f.to_ndarray(format="gray"), f.is_corrupt) for f in b.decode(video=0)]
    assert len(got) == len(want) == FRAMES
    assert [i for i, (_, flagged) in enumerate(got) if flagged] == [DAMAGED]
    assert not np.array_equal(got[DAMAGED][0], want[DAMAGED])


def test_a_job_reports_the_frames_the_decoder_repaired(clips: tuple[Path, Path], tmp_path: Path,
                                                       vsr: Any) -> None:
    clean, damaged = clips
    code, result, err = vsr(str(damaged), "-o", str(tmp_path / "out.mkv"))
    assert code == 0, err
    assert result["frames_out"] == FRAMES and result["corrupt_frames"] == 0  # kept, not repeated
    assert result["concealed_frames"] == 1 and [c["index"] for c in result["concealed"]] == [DAMAGED]
    assert "1 frame(s) were decoded from damaged data" in err and f"frame {DAMAGED} (" in err
    code, again, err = vsr(str(damaged), "-o", str(tmp_path / "chunked.mkv"), "--chunk", "5",
                           "--decoders", "2")
    assert code == 0 and again["concealed"] == result["concealed"], err  # decoders seeking to their chunks
    code, part, err = vsr(str(damaged), "-o", str(tmp_path / "part.mkv"), "--start", "0.2")  # frames 5-19
    assert code == 0 and part["frames_out"] == FRAMES - 5, err
    assert part["concealed"] == result["concealed"]  # the input's own frame number and time
    code, result, err = vsr(str(clean), "-o", str(tmp_path / "clean.mkv"))
    assert code == 0 and result["concealed_frames"] == 0 and "damaged" not in err


def test_a_live_stream_counts_them_too(clips: tuple[Path, Path], tmp_path: Path) -> None:
    """The damaged MPEG-2 file arriving on stdin, as a capture would be piped in."""
    run = subprocess.run([sys.executable, "-m", "vsr_pipeline.cli", "upscale", "-", "-o",
                          str(tmp_path / "out.mkv"), "--model", "bicubic", "--scale", "2", "--no-progress",
                          "--json"], input=clips[1].read_bytes(), capture_output=True, timeout=300)
    assert run.returncode == 0, run.stderr.decode()
    result = json.loads(run.stdout.decode().splitlines()[-1])
    assert result["frames_out"] == FRAMES and result["concealed_frames"] == 1, run.stderr.decode()
    assert f"frame {DAMAGED} was decoded from damaged data" in run.stderr.decode()
