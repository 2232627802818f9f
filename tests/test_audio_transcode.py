"""Audio the output cannot hold as it is (a camera's G.711, PCM of no named layout in MP4, AAC in WebM):
re-encoded instead of left out, and in step with the video. Real files through the real CLI; the sound
decoded from input and output and matched sample against sample (``tests.test_rtsp.lag_ms``)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import shared_path
from tests.test_rtsp import AAC_LAG_MS, lag_ms, sound, video_times

FRAMES = 12
SKIP = 25  # frames: the clip's first second is near silence


def make_clip(path: Path, audio_codec: str, rate: int, layout: str) -> Path:
    """12 frames of the Big Buck Bunny demo clip from 1 s on (its opening is near silence) at 160x90 (H.264,
    25 fps), and its sound over them, encoded with ``audio_codec`` at ``rate`` Hz, ``layout``; both start
    at 0."""
    with av.open(str(shared_path("videos", "bigbuckbunny.mp4"))) as c:
        frames = [f.reformat(width=160, height=90, format="yuv420p")
                  for f in itertools.islice(c.decode(video=0), SKIP, SKIP + FRAMES)]
        c.seek(0)
        resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)
        pcm = np.concatenate([r.to_ndarray() for f in c.decode(audio=0) for r in resampler.resample(f)],
                             axis=1)
    channels = av.AudioLayout(layout).nb_channels
    pcm = pcm.reshape(-1, channels)[round(SKIP / 25 * rate):][: round(FRAMES / 25 * rate)]
    with av.open(str(path), "w") as o:
        v = o.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 160, 90, "yuv420p"
        a = o.add_stream(audio_codec, rate=rate)
        a.layout = layout
        for i, g in enumerate(frames):
            g.pts, g.time_base = i, Fraction(1, 25)
            o.mux(v.encode(g))
        o.mux(v.encode())
        for k in range(0, len(pcm), 1024):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[k:k + 1024]).reshape(1, -1),
                                               format="s16", layout=layout)
            frame.sample_rate, frame.pts, frame.time_base = rate, k, Fraction(1, rate)
            o.mux(a.encode(frame))
        o.mux(a.encode())
    return path


def vsr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vsr_pipeline.cli", "upscale", *args, "--model", "espcn",
                           "--scale", "4", "--no-progress", "--json"], capture_output=True, text=True,
                          timeout=300)


def said_audio(run: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    """The job result's ``audio``, checked to be the manifest's."""
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["audio"] == json.loads(Path(result["manifest"]).read_text())["audio"]
    return result["audio"]


@pytest.mark.parametrize(("source", "codec", "rate", "layout", "output", "flags", "encoder"), [
    ("camera.mov", "pcm_mulaw", 8000, "mono", "out.mp4", (), "aac"),  # a camera's export into MP4
    ("camera.mov", "pcm_mulaw", 8000, "mono", "out.ts", ("--chunk", "5"), "aac"),  # in 3 segments, joined
    ("camcorder.avi", "adpcm_ima_wav", 22050, "mono", "out.mkv", (), "aac"),
    ("screen.mkv", "pcm_s16le", 48000, "stereo", "out.mp4", (), "aac"),
    ("phone.mp4", "aac", 48000, "stereo", "out.webm", ("--codec", "libvpx-vp9"), "opus"),
    ("music.mkv", "flac", 44100, "stereo", "out.mov", (), "aac"),  # MOV: "flac only supported in MP4"
])
def test_audio_the_output_cannot_hold_is_reencoded_in_step(
        tmp_path: Path, source: str, codec: str, rate: int, layout: str, output: str, flags: tuple[str, ...],
        encoder: str) -> None:
    """Before: G.711/ADPCM into MP4/TS/Matroska and AAC into WebM were left out with a warning; 16-bit PCM
    (its layout unnamed, as Matroska keeps it) into MP4 and FLAC into MOV passed FFmpeg's codec query, then
    the muxer refused them at the final join ("unsupported channel layout", "flac only supported in MP4")
    and the whole job failed. Now re-encoded (AAC; Opus
    for WebM), its waveform within ``AAC_LAG_MS`` of the source's (as
    FFmpeg's own encoder gives it), over the length of the video."""
    src = make_clip(tmp_path / source, codec, rate, layout)
    out = tmp_path / output
    run = vsr(str(src), "-o", str(out), *flags)
    assert run.returncode == 0, run.stderr
    assert "re-encoded as " + encoder in run.stderr
    with av.open(str(out)) as c:
        assert [s.codec_context.name for s in c.streams.audio] == [encoder]
        assert c.streams.audio[0].codec_context.layout.nb_channels == av.AudioLayout(layout).nb_channels
        packets = sum(1 for p in c.demux(audio=0) if p.size)
    assert said_audio(run) == [{"stream": 1, "codec": codec, "written_as": encoder, "packets": packets}]
    assert len(video_times(out)) == FRAMES
    shift = video_times(out)[0] - video_times(src)[0]  # MPEG-TS: every stream moved alike
    start_in, want = sound(src)
    start_out, got = sound(out)
    lag, corr = lag_ms(want, start_out - start_in - shift, got)
    print(f"{source} -> {output}: lag {lag:+.3f} ms, correlation {corr:.3f}")  # pytest -s
    assert abs(lag) <= AAC_LAG_MS and corr > 0.9, (lag, corr)


@pytest.mark.parametrize(("source", "codec", "rate", "layout"), [
    ("camera.mov", "pcm_mulaw", 8000, "mono"),
    ("pro.mov", "pcm_s24le", 48000, "stereo"),  # a camera original's 24-bit PCM (block: 6 bytes)
])
def test_audio_copied_as_is_where_the_output_holds_it(tmp_path: Path, source: str, codec: str, rate: int,
                                                      layout: str) -> None:
    """G.711 or 24-bit PCM into MOV, which holds them: copied packet for packet, not re-encoded (the
    muxer probe's made-up packet must be whole samples: at 4 bytes MOV refused 24-bit stereo)."""
    src = make_clip(tmp_path / source, codec, rate, layout)
    out = tmp_path / "out.mov"
    run = vsr(str(src), "-o", str(out))
    assert run.returncode == 0, run.stderr
    assert "re-encoded" not in run.stderr
    with av.open(str(src)) as a, av.open(str(out)) as b:
        want = [bytes(p) for p in a.demux(audio=0) if p.size]
        got = [bytes(p) for p in b.demux(audio=0) if p.size]
    assert got == want and np.sum([len(p) for p in got]) > 0
    assert said_audio(run) == [{"stream": 1, "codec": codec, "written_as": "copy", "packets": len(got)}]


def test_gaps_are_kept_and_overlaps_go_on_in_order(tmp_path: Path) -> None:
    """``AudioTranscoder`` times the sound from its packets: a packet 100 ms after the last one's end (lost
    packets) leaves that gap in the output; one that overlaps the last (its pts 100 ms back) goes on where
    the sound was (before: put back, its AAC frames overlapping the ones before)."""
    from vsr_pipeline.media.audio_transcode import AudioTranscoder

    encoder = av.CodecContext.create("pcm_mulaw", "w")
    encoder.sample_rate, encoder.format, encoder.layout = 8000, "s16", "mono"
    packets = []
    for k in range(30):  # 30 x 20 ms of a 440 Hz tone
        t = (np.arange(160) + 160 * k) / 8000
        frame = av.AudioFrame.from_ndarray((8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)[None],
                                           format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 160 * k
        packets += [bytes(p) for p in encoder.encode(frame)]
    decoder = av.CodecContext.create("pcm_mulaw", "r")
    decoder.sample_rate, decoder.layout = 8000, "mono"
    times = [160 * k for k in range(10)] + [160 * k + 800 for k in range(10, 20)] + \
        [160 * k for k in range(20, 30)]  # then 100 ms late, then 100 ms back (overlapping)
    out = tmp_path / "out.mkv"
    with av.open(str(out), "w") as container:
        transcoder = AudioTranscoder(container, decoder, "aac")
        for data, pts in zip(packets, times, strict=True):
            packet = av.Packet(data)
            packet.pts, packet.time_base = pts, Fraction(1, 8000)
            transcoder.add(packet)
        transcoder.finish()
    with av.open(str(out)) as c:
        pts = [float(p.pts * p.time_base) for p in c.demux(audio=0) if p.size]
    with av.open(str(out)) as c:
        samples = sum(f.samples for f in c.decode(audio=0))
    steps = [b - a for a, b in itertools.pairwise(pts)]  # an AAC frame is 1024 samples, 0.128 s at 8 kHz
    assert min(steps) >= 0.128 - 1e-3, steps  # no overlap (before: 0.028 s after the overlapping packet)
    assert max(steps) == pytest.approx(0.128 + 0.1, abs=0.002)  # the 100 ms gap kept
    assert samples == pytest.approx(30 * 160 + 1024, abs=1024)  # every sample, in whole AAC frames


@pytest.mark.parametrize(("codec", "rate", "suffix"), [
    ("aac", 8000, ".mkv"), ("aac", 8000, ".mp4"), ("aac", 22050, ".mkv"), ("aac", 22050, ".mp4"),
    ("aac", 48000, ".mkv"), ("aac", 48000, ".mp4"), ("flac", 44100, ".mkv"),
])
def test_the_lag_bound_without_vsr(tmp_path: Path, codec: str, rate: int, suffix: str) -> None:
    """What ``lag_ms`` reads with no vsr involved: the demo clip's sound encoded straight with FFmpeg's
    encoder against the same sound as PCM in Matroska. ``AAC_LAG_MS`` must hold here, or it would be no
    test of vsr. Prints the lag (``pytest -s``): AAC 0 to 0.4 ms; lossless FLAC in Matroska 2.4 ms (its
    104 ms frames placed by Matroska's millisecond times: what the helper can resolve, not a codec delay)."""
    start_in, want = sound(make_clip(tmp_path / "pcm.mkv", "pcm_s16le", rate, "mono"))
    start_out, got = sound(make_clip(tmp_path / f"coded{suffix}", codec, rate, "mono"))
    lag, corr = lag_ms(want, start_out - start_in, got)
    print(f"{codec} {rate} Hz {suffix}: lag {lag:+.3f} ms, correlation {corr:.3f}")
    assert abs(lag) <= AAC_LAG_MS and corr > 0.9, (lag, corr)
