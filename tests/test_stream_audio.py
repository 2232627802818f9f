"""A live stream's audio (``media/live_copy.py``): copied packet for packet into the growing output, in step
with the video (the source's A/V offset kept), cut at the last frame; after a reopened URL it takes its
frames' shift. Before 0.2.1 a stream's audio was dropped with a warning."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from tests.conftest import shared_path
from tests.test_streaming import _reopened_run, vsr
from vsr_pipeline.media import FrameReader

FRAMES = 12


def packets(path: Path, kind: str) -> list[tuple[Fraction, bytes]]:
    """(time in seconds, payload) of every packet with data of the first ``kind`` stream, in file order."""
    with av.open(str(path)) as c:
        s = getattr(c.streams, kind)[0]
        return [(Fraction(p.pts) * s.time_base, bytes(p)) for p in c.demux(s) if p.size and p.pts is not None]


def av_offset(path: Path) -> Fraction:
    return min(t for t, _ in packets(path, "video")) - min(t for t, _ in packets(path, "audio"))


def interleaved_clip(out: Path, n: int) -> Path:
    """``n`` frames of bikes.mp4 at 160x68, 25 fps, with 48 kHz AAC, in MPEG-TS, muxed as a recorder does:
    audio and video interleaved by time (ADTS AAC; the audio starts 1024 samples early, its priming)."""
    with FrameReader(shared_path("videos", "bikes.mp4")) as reader:
        frames, _ = reader.read(n)
    with av.open(str(out), "w") as o:
        v = o.add_stream("libx264", rate=25, options={"crf": "18", "preset": "fast"})
        v.width, v.height, v.pix_fmt = 160, 68, "yuv420p"
        a = o.add_stream("aac", rate=48000)
        a.layout = "mono"
        tone = np.sin(np.arange(48000 * (n // 25 + 2)) * 2 * np.pi * 440 / 48000).astype(np.float32)
        sent = 0
        for i, frame in enumerate(frames):
            small = cv2.resize(frame, (160, 68), interpolation=cv2.INTER_AREA)
            vf = av.VideoFrame.from_ndarray(small, format="rgb24").reformat(format="yuv420p")
            vf.pts = i
            o.mux(v.encode(vf))
            while sent < (i + 1) * 48000 // 25:  # the audio up to this frame's end
                af = av.AudioFrame.from_ndarray(tone[None, sent : sent + 1024], format="flt", layout="mono")
                af.sample_rate, af.pts = 48000, sent
                o.mux(a.encode(af))
                sent += 1024
        o.mux(v.encode())
        o.mux(a.encode())
    return out


@pytest.fixture(scope="module")
def ts_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return interleaved_clip(tmp_path_factory.mktemp("av") / "av.ts", FRAMES)


def test_a_ts_over_http_with_ranges_is_read_once_and_whole(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """FFmpeg estimated a seekable MPEG-TS's duration from the pts at its end, seeking there and back: with
    its reconnect on, by asking for the file again from byte 0; with it off (a reconnect that fails; rtsp's
    stand-in here) every packet was lost: 0 of these 48 frames, every time, so the reopened stream of
    ``test_a_reopened_url_s_audio_follows_its_frames`` read as no frame. Streams skip that estimate now
    (``stream_source.PROBE_OPTIONS``): one request, every packet, either way."""
    from tests.test_streaming import _DroppingServer
    from vsr_pipeline import stream_source

    data = interleaved_clip(tmp_path / "long.ts", 48).read_bytes()
    for reconnect in (stream_source.HTTP_RECONNECT, {}):
        monkeypatch.setattr(stream_source, "HTTP_RECONNECT", reconnect)
        server = _DroppingServer(data)
        server.drops = 0  # served whole
        try:
            with stream_source.open_source(server.url, 10.0) as c:
                assert len([p for p in c.demux(c.streams.video[0]) if p.size]) == 48
        finally:
            server.close()
        assert server.requests == ["bytes=0-"]


@pytest.mark.parametrize("ext", ["mkv", "ts"])
def test_stdin_audio_is_copied_in_step(ts_clip: Path, tmp_path: Path, ext: str) -> None:
    out = tmp_path / f"out.{ext}"
    run = vsr("upscale", "-", "-o", str(out), "--model", "bicubic", "--scale", "2", "--no-progress", "--json",
              stdin=ts_clip.read_bytes())
    assert run.returncode == 0, run.stderr.decode()
    assert b"not copied" not in run.stderr
    src, got = packets(ts_clip, "audio"), packets(out, "audio")
    # the result and the manifest say what became of the audio: copied, and how many packets
    result = json.loads(run.stdout.decode().strip().splitlines()[-1])
    with av.open(str(ts_clip)) as c:
        index = c.streams.audio[0].index
    said = [{"stream": index, "codec": "aac", "written_as": "copy", "packets": len(got)}]
    assert result["audio"] == said == json.loads(Path(result["manifest"]).read_text())["audio"]
    # the source's packets from the first, byte for byte (Matroska stores AAC without the 7-byte ADTS header)
    strip = 7 if ext == "mkv" else 0
    assert [b for _, b in got] == [b[strip:] for _, b in src[: len(got)]]
    # ... up to the last frame: cut there, with nothing missing before it (one AAC packet: 1024 / 48000 s)
    video_end = max(t for t, _ in packets(out, "video")) + Fraction(1, 25)
    audio_end = max(t for t, _ in got) + Fraction(1024, 48000)
    assert video_end - Fraction(1024, 48000) <= audio_end <= video_end + Fraction(1024, 48000)
    tol = Fraction(1, 1000) if ext == "mkv" else Fraction(1, 90000)
    assert abs(av_offset(out) - av_offset(ts_clip)) <= tol


def test_adts_aac_into_a_growing_mp4_is_copied_in_step(ts_clip: Path, tmp_path: Path) -> None:
    """MPEG-TS's AAC (ADTS headers, no config in the stream) into a fragmented MP4: FFmpeg's muxer refused
    its packets ("Operation not permitted"); they go through ``aac_adtstoasc`` and decode."""
    out = tmp_path / "out.mp4"
    run = vsr("upscale", "-", "-o", str(out), "--model", "bicubic", "--scale", "2", "--no-progress",
              stdin=ts_clip.read_bytes())
    assert run.returncode == 0, run.stderr.decode()
    assert b"audio" not in run.stderr  # no warning about it
    assert [b for _, b in packets(out, "audio")] == [b[7:] for _, b in packets(ts_clip, "audio")][
        : len(packets(out, "audio"))] and len(packets(out, "audio")) >= len(packets(ts_clip, "audio")) - 2
    with av.open(str(out)) as c:
        assert len(list(c.decode(audio=0))) == len(packets(out, "audio"))
    assert abs(av_offset(out) - av_offset(ts_clip)) <= Fraction(1, 1000)


def test_matroska_aac_into_a_growing_mp4_keeps_its_offset(ts_clip: Path, tmp_path: Path) -> None:
    mkv = tmp_path / "in.mkv"
    with av.open(str(ts_clip)) as c, av.open(str(mkv), "w") as o:  # remuxed: AAC with its config
        streams = {s.index: o.add_stream_from_template(s) for s in c.streams}
        for p in c.demux():
            if p.size:
                p.stream = streams[p.stream_index]
                o.mux(p)
    out = tmp_path / "out.mp4"
    run = vsr("upscale", "-", "-o", str(out), "--model", "bicubic", "--scale", "2", "--no-progress",
              stdin=mkv.read_bytes())
    assert run.returncode == 0, run.stderr.decode()
    assert len(packets(out, "audio")) >= len(packets(mkv, "audio")) - 2
    assert abs(av_offset(out) - av_offset(mkv)) <= Fraction(1, 1000)


def test_a_reopened_url_s_audio_follows_its_frames(ts_clip: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The read fails half-way and the URL is opened again: its frames go on one frame after the last, and
    its audio with them (the same shift), so the audio keeps increasing and ends with the video."""
    out = tmp_path / "out.mkv"
    result, _ = _reopened_run(ts_clip, out, monkeypatch)
    assert result["reopened"] == 1
    video, audio = packets(out, "video"), packets(out, "audio")
    times = [t for t, _ in audio]
    assert times == sorted(times) and len(set(times)) == len(times)
    first = len(video) - FRAMES  # frames of the first connection; then all 12 again
    reopened_at = sorted(t for t, _ in video)[first]
    src = [b[7:] for _, b in packets(ts_clip, "audio")]  # Matroska keeps AAC without its ADTS header
    after = [b for t, b in audio if t >= reopened_at - Fraction(1024, 48000)]
    # the new connection's audio is the clip's again, in order, placed with its frames
    assert len(after) >= len(src) - 2 and any(src[i : i + len(after)] == after for i in range(3))
    assert max(times) <= max(t for t, _ in video) + Fraction(1, 25)


def test_the_tap_holds_packets_until_their_connection_s_shift_is_known(
        ts_clip: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A reopened connection's packets wait for its shift (known at its first frame); at the end, packets
    of a connection that never gave a frame are dropped (counted); a connection whose audio differs ends
    the copy with a warning; the templates' container is held open until released, once."""
    from vsr_pipeline.media.live_copy import PacketTap

    tap = PacketTap()
    first, again = av.open(str(ts_clip)), av.open(str(ts_clip))
    conn0, map0 = tap.connect(list(first.streams.audio), "cam")
    assert conn0 == 0 and map0 == {first.streams.audio[0].index: 0}
    assert tap.hold(first) and not tap.hold(again)  # only the templates' container is held
    packets = [p for p in first.demux(first.streams.audio[0]) if p.size][:6]
    for p in packets[:2]:
        tap.put(conn0, 0, p)
    conn1, map1 = tap.connect(list(again.streams.audio), "cam")
    assert conn1 == 1 and map1 == map0
    for p in packets[2:4]:
        tap.put(conn1, 0, p)
    assert [q for _, q, _ in tap.take(Fraction(100))] == packets[:2]  # the reopened ones wait for a shift
    tap.set_shift(conn1, Fraction(5))
    assert tap.take(Fraction(1)) == []  # their time is now 5 s later
    assert [(q, shift) for _, q, shift in tap.take(None)] == [(p, 5) for p in packets[2:4]]
    conn2, _ = tap.connect(list(again.streams.audio), "cam")
    tap.put(conn2, 0, packets[4])  # a connection that never gives a frame: no shift
    assert tap.take(None) == [] and tap.dropped == 1
    tap.connect([], "cam")  # a connection without the audio: the copy ends
    assert not tap.open and "audio differs" in caplog.text
    tap.put(conn2, 0, packets[5])
    assert tap.take(None) == []
    tap.release()  # closes ``first``
    assert not tap.hold(again)  # released: nothing is held again
    again.close()
