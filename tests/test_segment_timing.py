"""Timing of joined segments, per container and encoder: MPEG-TS output keeps the source's audio/video
offset and its pts whether the video is one chunk or many (the TS muxer used to move the first segment
later: the joint went back in time and the video came out 1-2 frames late); libx265's 1- and 2-frame
encodes (a short last chunk) are written; MPEG-4 part 2 takes a 1/90000 source."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

from tests.conftest import make_clip, textured_frames
from vsr_pipeline import UpscaleOptions, upscale
from vsr_pipeline.media import VideoWriter, probe

#: a phone clip's timing: 1/90000, about 29.97 fps with jitter (no two frames within 1/30 s)
JITTER = [0, 3010, 5990, 9020, 12000, 15030, 17990, 21000, 24020, 27000, 30030, 33000]


def first_times(path: Path) -> dict[str, Fraction]:
    """The first pts (seconds) of the video and, where there is one, the audio stream, as a player reads
    them (also ``benchmarks/reliability_ts_shift.py``'s and ``reliability_av_sync.py``'s)."""
    out = {}
    with av.open(str(path)) as c:
        for s in (c.streams.video[0], *c.streams.audio[:1]):
            with av.open(str(path)) as c2:
                pts = [p.pts for p in c2.demux(c2.streams[s.index]) if p.size and p.pts is not None]
            out[s.type] = Fraction(min(pts)) * s.time_base
    return out


def frame_times(path: Path) -> list[Fraction]:
    """Display times of the decoded frames, from the video's own first one."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        pts = sorted(f.pts for f in c.decode(s))
    return [Fraction(p - pts[0]) * s.time_base for p in pts]


@pytest.fixture(scope="module")
def jitter_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("jitter")
    return make_clip(tmp / "jitter.mp4", textured_frames(len(JITTER), 32, 24), pts=JITTER,
                     time_base=Fraction(1, 90000), audio=True)


@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize("codec", ["libx264", "libx265", "mpeg4"])
def test_ts_output_keeps_av_offset_and_pts_chunked_or_whole(jitter_clip: Path, tmp_path: Path,
                                                              codec: str) -> None:
    src = first_times(jitter_clip)
    source_offset = src["video"] - src["audio"]  # AAC priming: the audio starts 1024 samples early
    source_times = frame_times(jitter_clip)
    for chunk in (100, 5):  # one segment; three, the last of 2 frames
        out = tmp_path / f"{codec}_{chunk}.ts"
        # x264/x265's default preset: B-frames, so the first dts lies before the first pts
        opts = UpscaleOptions(model="bicubic", codec=codec, chunk=chunk, progress=False)
        res = upscale(jitter_clip, out, opts)
        assert res.frames_out == len(JITTER)
        got = first_times(out)
        assert abs(got["video"] - got["audio"] - source_offset) <= Fraction(1, 90000), (chunk, got)
        tick = Fraction(1, 45000) if codec == "mpeg4" else Fraction(1, 90000)  # MPEG-4: 16-bit time base
        assert all(abs(a - b) <= tick for a, b in zip(frame_times(out), source_times, strict=True))


@pytest.mark.parametrize("ext", ["mp4", "mov", "mkv", "ts"])
def test_x265_one_and_two_frame_encodes_are_written(tmp_path: Path, ext: str) -> None:
    """libx265 gave such encodes a dts of uninitialised memory; the muxer refused it, mostly."""
    frames = textured_frames(2, 64, 48)
    for n in (1, 2):
        for start in (0, 7, 40):
            out = tmp_path / f"x_{n}_{start}.{ext}"
            with VideoWriter(out, 64, 48, Fraction(1, 12800), Fraction(25), codec="libx265") as w:
                w.write(frames[:n], [(start + i) * 512 for i in range(n)])
            assert probe(out).frames == n
            with av.open(str(out)) as c:
                decoded = list(c.decode(video=0))
            assert [f.pts for f in decoded] == sorted({f.pts for f in decoded}) and len(decoded) == n


@pytest.mark.usefixtures("ray_local")
def test_a_tiny_ts_segment_is_joined(jitter_clip: Path, tmp_path: Path) -> None:
    """A last chunk of 2 frames at 64x48 in MPEG-4 makes a TS segment FFmpeg's probe could not tell for
    MPEG-TS ("not a readable media file (End of file)" at the join); segments open as what wrote them."""
    out = tmp_path / "tiny.ts"
    res = upscale(jitter_clip, out, UpscaleOptions(model="bicubic", scale=2, codec="mpeg4", chunk=5,
                                                   progress=False))
    assert res.frames_out == len(JITTER) and probe(out).frames == len(JITTER)
