"""Ingest of real exports: timestamps that repeat, go backwards or are missing are repaired at decode (file
pipeline, parallel decoders, resume, live streams), interlaced sources are deinterlaced, valid low frame rates
and gaps are kept exactly. Every file is made here with PyAV and goes through ``vsr upscale`` as a user
runs it.
"""

from __future__ import annotations

import io
import itertools
import json
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from tests import faults
from tests.conftest import textured_frames
from vsr_pipeline import UpscaleOptions, upscale
from vsr_pipeline.errors import ChunkFailedError
from vsr_pipeline.media import FrameReader
from vsr_pipeline.media.ingest import TimestampRepair
from vsr_pipeline.media.seek import SeekError, scan, seek_problem

pytestmark = pytest.mark.usefixtures("ray_local")

TB = Fraction(1, 25)


def encode(path: Path, frames: np.ndarray, pts: list[int] | None = None, time_base: Fraction = TB,
           rate: int = 25, codec: str = "libx264", options: dict[str, str] | None = None,
           flags: tuple[str, ...] = ()) -> Path:
    """Frames (T, H, W, 3) encoded with PyAV, no B-frames, a keyframe every 6 frames."""
    pts = list(range(len(frames))) if pts is None else pts
    with av.open(str(path), "w") as out:
        opts = {"crf": "0", "bf": "0", "g": "6", "threads": "1"} if codec == "libx264" else {}
        v = out.add_stream(codec, rate=rate, options=opts | (options or {}))
        v.width, v.height, v.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        v.time_base = v.codec_context.time_base = time_base
        for name in flags:
            v.codec_context.flags |= getattr(av.codec.context.Flags, name)
        for frame, p in zip(frames, pts, strict=True):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
            vf.pts, vf.time_base = p, time_base
            out.mux(v.encode(vf))
        out.mux(v.encode())
    return path


def remux(src: Path, dst: Path, timestamps: list[tuple[int, int]], packets: slice = slice(None)) -> Path:
    """Copy ``src``'s video packets (a slice of them) into ``dst`` unchanged but for their (pts, dts)."""
    with av.open(str(src)) as c, av.open(str(dst), "w") as out:
        s = c.streams.video[0]
        o = out.add_stream_from_template(s)
        chosen = [p for p in c.demux(s) if p.size][packets]
        for p, (pts, dts) in zip(chosen, timestamps, strict=True):
            p.pts, p.dts, p.stream = pts, dts, o
            out.mux(p)
    return dst


def copy_packets(src: Path, dst: Path) -> Path:
    """``src``'s video packets, unchanged (timestamps too), in the container ``dst``'s extension names."""
    with av.open(str(src)) as c, av.open(str(dst), "w") as out:
        s = c.streams.video[0]
        o = out.add_stream_from_template(s)
        for p in c.demux(s):
            if p.size:
                p.stream = o
                out.mux(p)
    return dst


def packet_pts(path: Path) -> list[int | None]:
    with av.open(str(path)) as c:
        return [p.pts for p in c.demux(c.streams.video[0]) if p.size]


def decoded(path: Path) -> tuple[list[Fraction], np.ndarray]:
    """Every frame's time (pts x time base, exact) and the frames as RGB."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        return [f.pts * s.time_base for f in frames], np.stack([f.to_ndarray(format="rgb24") for f in frames])


@pytest.fixture(scope="module")
def valid_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 frames with correct pts (MP4's time base 1/12800: one frame = 512)."""
    return encode(tmp_path_factory.mktemp("ts") / "valid.mp4", textured_frames(10, 32, 24))


@pytest.fixture(scope="module")
def zero_mp4(valid_mp4: Path) -> Path:
    """valid.mp4's packets, every one with pts and dts 0 (an exporter that writes no timestamps)."""
    path = remux(valid_mp4, valid_mp4.with_name("zero.mp4"), [(0, 0)] * 10)
    assert packet_pts(path) == [0] * 10  # really written so
    return path


def test_all_pts_zero_mp4_gives_what_the_valid_file_gives(
    valid_mp4: Path, zero_mp4: Path, tmp_path: Path, vsr: Any
) -> None:
    """The issue's file: the job no longer fails (it ran the model three times and exited 5); each repaired
    frame gets the previous pts + one frame, so the output is the valid file's output, frame for frame."""
    code, res, err = vsr(str(zero_mp4), "-o", str(tmp_path / "out.mp4"))
    assert code == 0, err
    assert res["timestamps_repaired"] == 9 and res["frames_out"] == 10 and res["retries"] == 0
    warnings = [ln for ln in err.splitlines() if "repaired" in ln]
    assert len(warnings) == 1 and "9 frame timestamp(s)" in warnings[0] and "(0.04 s)" in warnings[0]
    code, ref, err = vsr(str(valid_mp4), "-o", str(tmp_path / "ref.mp4"))
    assert code == 0 and ref["timestamps_repaired"] == 0
    times, frames = decoded(tmp_path / "out.mp4")
    ref_times, ref_frames = decoded(tmp_path / "ref.mp4")
    assert times == ref_times == [Fraction(i, 25) for i in range(10)]
    assert np.array_equal(frames, ref_frames)


def test_repair_is_the_same_on_resume_and_with_parallel_decoders(
    valid_mp4: Path, zero_mp4: Path, tmp_path: Path
) -> None:
    """A job that failed part-way resumes with the same repaired pts (the decoder repairs from frame 0 every
    run); ``--decoders 2`` decodes such a file sequentially instead of seeking."""
    assert "share a pts" in (seek_problem(scan(zero_mp4)) or "")
    with FrameReader(zero_mp4) as reader, pytest.raises(SeekError, match="share a pts"):
        reader.seek(5)
    opts = UpscaleOptions(model="bicubic", scale=2, chunk=3, crf=0, progress=False, retries=0)
    out = tmp_path / "out.mp4"
    with faults.injected("always:2"), pytest.raises(ChunkFailedError):
        upscale(zero_mp4, out, opts)
    res = upscale(zero_mp4, out, opts)
    assert res.chunks_resumed >= 2 and res.timestamps_repaired == 9
    par = upscale(zero_mp4, tmp_path / "par.mp4", replace(opts, decoders=2))
    ref = upscale(valid_mp4, tmp_path / "ref.mp4", opts)
    assert par.timestamps_repaired == 9 and ref.timestamps_repaired == 0
    ref_times, ref_frames = decoded(tmp_path / "ref.mp4")
    for path in (out, tmp_path / "par.mp4"):
        times, frames = decoded(path)
        assert times == ref_times and np.array_equal(frames, ref_frames)


@pytest.fixture(scope="module")
def joined_ts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two MPEG-TS files joined with ``cat`` (as a recorder or a splitter leaves them): the second one's pts
    start again from the first one's, so they go back and repeat; and the same packets with pts that go on
    (the reference)."""
    d = tmp_path_factory.mktemp("cat")
    src = encode(d / "src.ts", textured_frames(12, 32, 24, seed=5))
    ts = [(p, p) for p in packet_pts(src)]  # type: ignore[misc]
    a = remux(src, d / "a.ts", ts[:6], slice(0, 6))
    again = remux(src, d / "again.ts", ts[:6], slice(6, 12))  # pts of frames 0-5 again
    on = remux(src, d / "on.ts", ts[6:], slice(6, 12))
    joined, ref = d / "joined.ts", d / "ref.ts"
    joined.write_bytes(a.read_bytes() + again.read_bytes())
    ref.write_bytes(a.read_bytes() + on.read_bytes())
    assert packet_pts(joined) == packet_pts(a) * 2 and len(set(packet_pts(ref))) == 12
    return joined, ref


def test_backwards_pts_are_repaired_from_the_frame_rate(
    joined_ts: tuple[Path, Path], tmp_path: Path, vsr: Any
) -> None:
    joined, ref = joined_ts
    code, res, err = vsr(str(joined), "-o", str(tmp_path / "out.mkv"))
    assert code == 0, err
    assert res["timestamps_repaired"] == 6 and res["frames_out"] == 12
    assert "6 frame timestamp(s) missing, repeated or going backwards (the first at frame 6)" in err
    code, ref_res, _ = vsr(str(ref), "-o", str(tmp_path / "ref.mkv"))
    assert code == 0 and ref_res["timestamps_repaired"] == 0
    times, frames = decoded(tmp_path / "out.mkv")
    ref_times, ref_frames = decoded(tmp_path / "ref.mkv")
    assert times == ref_times and np.array_equal(frames, ref_frames)
    assert all(b - a == TB for a, b in itertools.pairwise(times))


def test_backwards_pts_without_repeats_are_found_by_the_demux_scan(tmp_path: Path) -> None:
    """pts that go back to values no earlier packet had (a join half a frame off) still need repair."""
    src = encode(tmp_path / "src.ts", textured_frames(12, 32, 24))
    step = 90000 // 25
    pts = [p for p in packet_pts(src) if p is not None]
    a = remux(src, tmp_path / "a.ts", [(p, p) for p in pts[:6]], slice(0, 6))
    b = remux(src, tmp_path / "b.ts", [(p - 6 * step + step // 2,) * 2 for p in pts[6:]], slice(6, 12))
    joined = tmp_path / "joined.ts"
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    assert len(set(packet_pts(joined))) == 12  # no pts repeats
    assert scan(joined).repair == "pts go backwards at video packet 6"
    with FrameReader(joined) as reader:
        _, out = reader.read(20)
    assert out == pts[:6] + [pts[5] + step * k for k in range(1, 7)] and reader.timestamps_repaired == 6
    assert not reader.corrupt  # frames found by count, not mistaken for lost ones by their pts


def test_timestamp_repair_rules() -> None:
    r = TimestampRepair(10)
    got = [r.fix(p) for p in (None, 0, 0, 5, 40, 30, 31, 1000, None, 1001)]
    assert got == [0, 10, 20, 30, 40, 50, 60, 1000, 1010, 1020]  # gaps kept, the rest monotonic
    assert (r.repaired, r.first) == (8, 0)


def test_low_frame_rate_with_a_gap_is_kept_exactly(
    tmp_path: Path, vsr: Any
) -> None:
    """2 fps with a 4.5 s gap: valid increasing pts are never touched."""
    pts = [0, 1, 2, 3, 12, 13, 14]
    src = encode(tmp_path / "slow.mkv", textured_frames(7, 32, 24), pts, Fraction(1, 2), rate=2)
    times = decoded(src)[0]
    code, res, err = vsr(str(src), "-o", str(tmp_path / "out.mp4"))
    assert code == 0, err
    assert res["timestamps_repaired"] == 0 and res["frames_out"] == 7 and "repaired" not in err
    assert decoded(tmp_path / "out.mp4")[0] == times == [Fraction(p, 2) for p in pts]


def woven(n: int, width: int, height: int, speed: int = 6) -> np.ndarray:
    """Interlaced video: each frame's even rows from time t, its odd rows from t + half a frame (moving
    ``speed`` pixels per field), so motion shows as combing until deinterlaced."""
    base = textured_frames(1, width, height, seed=3)[0]
    out = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        out[i, 0::2] = np.roll(base, speed * 2 * i, axis=1)[0::2]
        out[i, 1::2] = np.roll(base, speed * (2 * i + 1), axis=1)[1::2]
    return out


def combing(frames: np.ndarray, scale: int = 1) -> float:
    """Mean difference of neighbouring rows over that of rows two apart, at the source's row spacing
    (every ``scale``-th row of an upscaled output): about 2 when the fields are woven from different
    moments, about 0.5 for a smooth progressive picture."""
    y = frames.astype(np.float64).mean(axis=3)[:, ::scale]
    return float(np.abs(np.diff(y, axis=1)).mean() / np.abs(y[:, 2:] - y[:, :-2]).mean())


@pytest.fixture(scope="module")
def interlaced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """H.264 coded interlaced (fields, top first), lossless."""
    path = tmp_path_factory.mktemp("il") / "il.mp4"
    encode(path, woven(10, 64, 48), options={"x264-params": "interlaced=1:tff=1"},
           flags=("interlaced_dct", "interlaced_me"))
    with av.open(str(path)) as c:
        assert c.streams.video[0].codec_context.field_order == 2  # AV_FIELD_TT: tagged top first
    return path


def test_interlaced_input_is_deinterlaced_unless_told_not_to(
    interlaced: Path, tmp_path: Path, vsr: Any
) -> None:
    times = decoded(interlaced)[0]
    code, res, err = vsr(str(interlaced), "-o", str(tmp_path / "di.mp4"))
    assert code == 0, err
    assert res["deinterlaced"] is True and res["frames_out"] == 10 and res["timestamps_repaired"] == 0
    code, raw, err = vsr(str(interlaced), "-o", str(tmp_path / "raw.mp4"), "--no-deinterlace")
    assert code == 0 and raw["deinterlaced"] is False
    di_times, di = decoded(tmp_path / "di.mp4")
    raw_times, kept = decoded(tmp_path / "raw.mp4")
    assert di_times == raw_times == times  # one frame out per frame in, pts kept
    assert combing(kept, 2) > 1.5 and combing(di, 2) < 0.8  # (a smooth progressive picture: ~0.5)


def test_interlaced_detection_and_reader(interlaced: Path, tmp_path: Path) -> None:
    """mpeg2video coded interlaced too; a progressive file is never touched."""
    m2 = encode(tmp_path / "il.mkv", woven(10, 64, 48), codec="mpeg2video", options={"qscale": "1"},
                flags=("interlaced_dct", "interlaced_me"))
    prog = encode(tmp_path / "prog.mp4", textured_frames(10, 64, 48))
    for path in (interlaced, m2):
        with FrameReader(path) as di, FrameReader(path, deinterlace=False) as raw:
            (a, pa), (b, pb) = di.read(20), raw.read(20)
        assert di.info.interlaced and di.deinterlace and len(pa) == 10 and pa == pb
        assert combing(b) > 1.5 and combing(a) < 0.8
        assert seek_problem(scan(path), di.info, deinterlace=True) is not None  # decoded sequentially
    with FrameReader(prog) as di, FrameReader(prog, deinterlace=False) as raw:
        assert not di.info.interlaced and np.array_equal(di.read(20)[0], raw.read(20)[0])


def test_non_square_pixels_survive_the_pipeline(
    tmp_path: Path, vsr: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An anamorphic capture (NTSC DV 16:9: 40:33 pixels) upscaled in chunks, from a file and from stdin:
    the output keeps the pixel aspect, so it plays at the source's display aspect (it used to come out with
    square pixels: 3:2 instead of 20:11)."""
    src = tmp_path / "dv.mkv"
    with av.open(str(src), "w") as out:
        v = out.add_stream("libx264", rate=25, options={"crf": "10", "g": "4"})
        v.width, v.height, v.pix_fmt = 48, 32, "yuv420p"
        v.codec_context.sample_aspect_ratio = Fraction(40, 33)
        for frame in textured_frames(8, 48, 32):
            out.mux(v.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(v.encode())
    code, _, err = vsr(str(src), "-o", str(tmp_path / "out.mp4"), "--chunk", "3")
    assert code == 0, err
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(src.read_bytes()))))
    code, _, err = vsr("-", "-o", str(tmp_path / "live.mkv"))
    assert code == 0, err
    for path in (src, tmp_path / "out.mp4", tmp_path / "live.mkv"):
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            assert s.sample_aspect_ratio == Fraction(40, 33), path
            assert s.display_aspect_ratio == Fraction(40 * 48, 33 * 32), path


def camera_export(path: Path) -> Path:
    """4 frames of H.264 (B-frames) and AAC with what a camera or DVR export carries: container tags,
    two chapters, a titled video track, a German commentary track."""
    chapters = [{"id": 1, "start": 0, "end": 2, "time_base": TB, "metadata": {"title": "gate"}},
                {"id": 2, "start": 2, "end": 4, "time_base": TB, "metadata": {"title": "dock"}}]
    with av.open(str(path), "w") as out:
        out.metadata.update(CAMERA_TAGS)
        out.set_chapters(chapters)
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 48, 32, "yuv420p"
        v.metadata["title"] = "cam 3"
        a = out.add_stream("aac", rate=8000, layout="mono")
        a.metadata.update({"language": "deu", "title": "Kommentar"})
        for frame in textured_frames(4, 48, 32):
            out.mux(v.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        for k in range(2):
            af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            af.sample_rate, af.pts = 8000, 1024 * k
            out.mux(a.encode(af))
        out.mux([*v.encode(), *a.encode()])
    return path


CAMERA_TAGS = {"title": "Camera 3 - loading dock", "creation_time": "2019-06-01T12:34:56.000000Z",
               "comment": "exported by DVR"}


def test_container_tags_and_chapters_are_copied(tmp_path: Path, vsr: Any) -> None:
    """A camera export's title, creation time and comment, its chapters, and its streams' tags (the video's
    title, the audio's language and title) reach the output (MP4 in, Matroska out), as FFmpeg copies them;
    the muxer's own tags (encoder, MP4 brands) are not carried over (all of them were lost)."""
    src = camera_export(tmp_path / "dvr.mp4")
    code, _, err = vsr(str(src), "-o", str(tmp_path / "out.mkv"), "--chunk", "2")
    assert code == 0, err
    with av.open(str(tmp_path / "out.mkv")) as c:
        got = {k.lower(): v for k, v in c.metadata.items()}
        marks = [(ch["start"] * ch["time_base"], ch["metadata"]["title"]) for ch in c.chapters()]
        video, audio = ({k.lower(): v for k, v in s.metadata.items()} for s in (c.streams.video[0],
                                                                             c.streams.audio[0]))
    assert {k: got.get(k) for k in CAMERA_TAGS} == CAMERA_TAGS
    # MP4 keeps a stream's title as its track "name", read back under that key: copied as it was read
    assert video.get("name") == "cam 3" and (audio.get("language"), audio.get("name")) == ("deu", "Kommentar")
    assert marks == [(0, "gate"), (Fraction(2, 25), "dock")]
    assert "major_brand" not in got and "compatible_brands" not in got  # MP4's, meaningless in Matroska


def test_mpeg_ts_output(tmp_path: Path, vsr: Any) -> None:
    """``-o OUT.ts`` (refused before: "the .ts container cannot hold libx264"): H.264 and the copied AAC in
    MPEG-TS, every frame at its input time plus one constant shift (the muxer moves every stream by x264's
    B-frame delay: TS holds no negative dts), which the manifest reports instead of marking every frame's
    pts as repaired."""
    src = camera_export(tmp_path / "dvr.mp4")
    code, res, err = vsr(str(src), "-o", str(tmp_path / "out.ts"), "--chunk", "2")
    assert code == 0 and res["frames_out"] == 4, err
    with av.open(str(tmp_path / "out.ts")) as c:
        assert [s.codec_context.name for s in c.streams] == ["h264", "aac"]
    times_in, times_out = decoded(src)[0], decoded(tmp_path / "out.ts")[0]
    shifts = {b - a for a, b in zip(times_in, times_out, strict=True)}
    manifest = json.loads((tmp_path / "out.ts.vsr.json").read_text())
    assert len(shifts) == 1 and manifest["shift_s"] == float(shifts.pop())
    assert manifest["frames"]["pts_repaired"] == 0


def test_ten_bit_hdr_input_is_said_to_be_written_at_8_bits(tmp_path: Path, vsr: Any) -> None:
    """A 10-bit PQ (HDR10) input written at 8 bits (``--bit-depth 8``; the default keeps 10,
    tests/test_bit_depth.py) is processed with one warning that says so; its tags reach the output."""
    src = tmp_path / "hdr.mkv"
    with av.open(str(src), "w") as out:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p10le"
        v.codec_context.color_trc, v.codec_context.color_primaries, v.codec_context.colorspace = 16, 9, 9
        for frame in textured_frames(4, 32, 32):
            ten = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p10le")
            out.mux(v.encode(ten))
        out.mux(v.encode())
    code, res, err = vsr(str(src), "-o", str(tmp_path / "out.mkv"), "--bit-depth", "8")
    assert code == 0 and res["frames_out"] == 4 and res["bit_depth"] == 8, err
    warnings = [ln for ln in err.splitlines() if "8 bits" in ln]
    assert len(warnings) == 1 and "10-bit video is upscaled and written at 8 bits (PQ HDR" in warnings[0]
    with av.open(str(tmp_path / "out.mkv")) as c:
        cc = c.streams.video[0].codec_context
        assert (cc.color_trc, cc.color_primaries, cc.colorspace, cc.format.name) == (16, 9, 9, "yuv420p")


def test_live_stream_repairs_and_deinterlaces(
    joined_ts: tuple[Path, Path], interlaced: Path, tmp_path: Path, vsr: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``vsr upscale - -o OUT`` (stdin): the frames the stream decoder used to drop are kept, repaired."""
    joined, _ = joined_ts
    il_ts = copy_packets(interlaced, tmp_path / "il.ts")  # the same packets in MPEG-TS
    results = {}
    for name, src in (("joined", joined), ("il", il_ts)):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(io.BytesIO(src.read_bytes()))))
        code, results[name], err = vsr("-", "-o", str(tmp_path / f"{name}.mkv"))
        assert code == 0, err
    assert results["joined"]["timestamps_repaired"] == 6 and results["joined"]["frames_out"] == 12
    times = decoded(tmp_path / "joined.mkv")[0]
    assert all(b - a == TB for a, b in itertools.pairwise(times))
    assert results["il"]["deinterlaced"] is True and results["il"]["frames_out"] == 10
    assert combing(decoded(tmp_path / "il.mkv")[1], 2) < 0.8


def test_tune_reaches_each_segments_x264_and_one_the_codec_lacks_is_refused(tmp_path: Path, vsr: Any) -> None:
    """``--tune grain,zerolatency`` reaches the x264 of every segment (its SEI lists grain's deadzones and no
    B-frames), and is a job setting; a tune the codec lacks is a one-line usage error before any work."""
    src = camera_export(tmp_path / "dvr.mp4")
    out = tmp_path / "out.mp4"
    code, res, err = vsr(str(src), "-o", str(out), "--chunk", "2", "--tune", "grain,zerolatency")
    assert code == 0 and res["frames_out"] == 4, err
    assert decoded(out)[0] == decoded(src)[0]
    with av.open(str(out)) as c:
        keyframes = [bytes(p) for p in c.demux(c.streams.video[0]) if p.is_keyframe]
    assert len(keyframes) == 2 and all(b"bframes=0" in k and b"deadzone=6,6" in k for k in keyframes)
    manifest = json.loads((tmp_path / "out.mp4.vsr.json").read_text())
    assert manifest["job_settings"]["tune"] == "grain,zerolatency"
    for bad in (["--tune", "cinema"], ["--tune", "grain,film"], ["--codec", "libvpx-vp9", "--tune", "grain"]):
        code, _, err = vsr(str(src), "-o", str(tmp_path / "bad.mkv"), *bad)
        assert code == 2 and "--tune" in err and not (tmp_path / "bad.mkv").exists(), err


def test_a_source_timecode_reaches_mov_and_mkv_outputs(tmp_path: Path, vsr: Any) -> None:
    """A camera or editor's MOV with a start timecode (a tmcd track, 01:00:00:00): the output has it too,
    in chunks (the joined stream gets the frame rate the timecode track needs: x264 segments said 1/time
    base, 12800 fps, and the join failed "fps 12800 is too large"; ProRes segments said none and it was
    lost), as a tmcd track in MOV and a TIMECODE tag in Matroska."""
    src = tmp_path / "tc.mov"
    with av.open(str(src), "w") as out:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 64, 48, "yuv420p"
        v.metadata["timecode"] = "01:00:00:00"
        for i, f in enumerate(textured_frames(6, 64, 48)):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p")
            vf.pts = i
            out.mux(v.encode(vf))
        out.mux(v.encode())
    for name, args in (("x.mov", ("--chunk", "2")), ("p.mov", ("--codec", "prores_ks")), ("x.mkv", ())):
        code, _, err = vsr(str(src), "-o", str(tmp_path / name), *args)
        assert code == 0, err
        with av.open(str(tmp_path / name)) as c:
            tags = [{k.lower(): val for k, val in s.metadata.items()} for s in c.streams]
        assert tags[0].get("timecode") == "01:00:00:00", (name, tags)
        if name.endswith(".mov"):
            assert [s.get("timecode") for s in tags[1:]] == ["01:00:00:00"]  # the tmcd track
