"""RTSP cameras (``vsr upscale rtsp://...``): a real RTSP server (``tests/rtsp_camera.py``: RTSP 1.0, H.264
and G.711 over RTP, as IP cameras serve) read by FFmpeg's own RTSP client through the real CLI; outputs
decoded and compared with the frames and sound the camera sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import shared_path
from tests.rtsp_camera import RtspCamera, encode_aac, encode_clip
from tests.test_streaming import decode, min_psnr

FRAMES = 24
SIZE = (160, 90)
#: how far (ms) re-encoded sound may sit from its source, by ``lag_ms``: with no vsr involved the helper
#: reads up to 2.4 ms (lossless FLAC in Matroska against PCM, its frames placed by millisecond times;
#: tests/test_audio_transcode.py::test_the_lag_bound_without_vsr prints each case with ``pytest -s``)
AAC_LAG_MS = 3


@pytest.fixture(scope="module")
def camera_clip() -> tuple[list[tuple[bytes, int]], list[tuple[bytes, int]]]:
    """24 frames of the Big Buck Bunny demo clip at 160x90 (H.264, 25 fps) and its sound as 8 kHz mu-law."""
    return encode_clip(str(shared_path("videos", "bigbuckbunny.mp4")), FRAMES, SIZE, audio=True)


@pytest.fixture
def camera(camera_clip: tuple[list[tuple[bytes, int]], list[tuple[bytes, int]]]):
    """A recording served as an NVR serves one (its length in the SDP, BYE at its end)."""
    cam = RtspCamera(*camera_clip, live=False)
    cam.start()
    yield cam
    cam.close()


def vsr(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vsr_pipeline.cli", "upscale", *args, "--no-progress",
                           "--json"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "RAY_ADDRESS": "local"})


def upscale_from(cam: RtspCamera, out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Serve ``cam`` while ``vsr upscale`` (ESPCN x4, ``args`` added) reads it into ``out``; closed after."""
    cam.start()
    try:
        return vsr(cam.url, "-o", str(out), "--model", "espcn", "--scale", "4", *args)
    finally:
        cam.close()


def video_times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        return [round(float(f.time), 4) for f in c.decode(video=0)]


def sound(path: Path, rate: int = 8000) -> tuple[float, np.ndarray]:
    """The first audio stream as mono float at ``rate``, placed by its frames' times: (start s, samples)."""
    with av.open(str(path)) as c:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        parts: list[tuple[float, np.ndarray]] = []
        for frame in c.decode(audio=0):
            t = float(frame.time)
            for out in resampler.resample(frame):
                parts.append((t, out.to_ndarray().reshape(-1)))
                t += out.samples / rate
    start = parts[0][0]
    total = max(round((t - start) * rate) + len(x) for t, x in parts)
    signal = np.zeros(total, np.float32)
    for t, x in parts:
        k = round((t - start) * rate)
        signal[k:k + len(x)] = x
    return start, signal


def camera_sound(audio: list[tuple[bytes, int]]) -> np.ndarray:
    """The camera's mu-law packets decoded to float at 8 kHz (they start at media time 0)."""
    dec = av.CodecContext.create("pcm_mulaw", "r")
    dec.sample_rate, dec.layout = 8000, "mono"
    out = [f.to_ndarray().reshape(-1) for data, _ in audio for f in dec.decode(av.Packet(data))]
    return np.concatenate(out).astype(np.float32) / 32768


def lag_ms(reference: np.ndarray, got_start: float, got: np.ndarray, rate: int = 8000) -> tuple[float, float]:
    """Where ``got`` (starting at ``got_start`` s) best matches ``reference`` (starting at 0): the offset in
    ms (positive: late) and the normalised correlation there."""
    pad = round(max(0.0, got_start) * rate)
    got = np.concatenate([np.zeros(pad, np.float32), got[round(max(0.0, -got_start) * rate):]])
    n = min(len(reference), len(got))
    a, b = reference[:n] - reference[:n].mean(), got[:n] - got[:n].mean()
    def score(k: int) -> float:
        return float(np.dot(a[max(0, -k):n - max(0, k)], b[max(0, k):n - max(0, -k)]))

    best = max(range(-160, 161), key=score)
    x, y = a[max(0, -best):n - max(0, best)], b[max(0, best):n - max(0, -best)]
    return best * 1000 / rate, float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y)))


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".ts"])
def test_a_camera_is_upscaled_over_tcp_with_its_g711_sound_in_step(camera: RtspCamera, suffix: str,
                                                                    tmp_path: Path) -> None:
    """Every frame at the time the camera gave it; the G.711 sound, which none of MP4, Matroska and MPEG-TS
    can hold (before: left out with a warning), re-encoded as AAC and in step with the camera's (within
    ``AAC_LAG_MS``); the RTP asked for over TCP (interleaved), not UDP."""
    out = tmp_path / f"cam{suffix}"
    run = vsr(camera.url, "-o", str(out), "--model", "espcn", "--scale", "4")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["frames_in"] == result["frames_out"] == FRAMES
    assert "re-encoded as aac 8000 Hz mono" in run.stderr
    with av.open(str(out)) as c:
        aac = sum(1 for p in c.demux(audio=0) if p.size)
    said = [{"stream": 1, "codec": "pcm_mulaw", "written_as": "aac", "packets": aac}]
    assert result["audio"] == said == json.loads(Path(result["manifest"]).read_text())["audio"]
    assert camera.transports and all("RTP/AVP/TCP" in t for t in camera.transports), camera.transports
    times = video_times(out)
    shift = times[0]  # MPEG-TS moves every stream by the AAC priming (0.128 s), the sound's with them
    assert times == pytest.approx([shift + i / 25 for i in range(FRAMES)], abs=2e-3)
    with av.open(str(out)) as c:
        assert [s.codec_context.name for s in c.streams.audio] == ["aac"]
    start, got = sound(out)
    lag, corr = lag_ms(camera_sound(camera.audio), start - shift, got)
    assert abs(lag) <= AAC_LAG_MS and corr > 0.9, (lag, corr)
    # the sound ends with the last frame (cut there), give or take one AAC frame (1024 samples: 0.128 s)
    assert start + len(got) / 8000 - shift == pytest.approx(FRAMES / 25, abs=0.15)


def test_a_camera_that_drops_is_opened_again_and_its_sound_follows_on(
        camera_clip: tuple[list[tuple[bytes, int]], list[tuple[bytes, int]]], tmp_path: Path) -> None:
    """A live camera (no length in its SDP) closes the connection after 10 frames: FFmpeg reads that as
    the end of the stream, which a camera's has not (before: the job ended there, exit 0, as if done). The
    URL is opened again (``--retries 1``); the new session's RTP times start again, so its frames follow
    on one frame after the last, and its sound takes the same shift. That session ends too (BYE), with no
    retry left: exit 3, one line, the file holding all 10 + 24 frames 40 ms apart and the sound in step."""
    cam = RtspCamera(*camera_clip, drop_after=10)
    out = tmp_path / "cam.mkv"
    run = upscale_from(cam, out, "--retries", "1")
    assert run.returncode == 3, run.stderr
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("vsr: error:")]
    assert len(errors) == 1 and "live RTSP stream" in errors[0] and f"{10 + FRAMES} frames" in errors[0]
    assert "Traceback" not in run.stderr and cam.sessions == 2
    times = video_times(out)
    assert len(times) == 10 + FRAMES and times[0] == 0
    assert np.allclose(np.diff(times), 0.04, atol=2e-3), times
    start, got = sound(out)
    reference = camera_sound(cam.audio)
    lag, corr = lag_ms(reference[: 10 * 320], start, got[: round((times[10] - start) * 8000)])
    assert abs(lag) <= AAC_LAG_MS and corr > 0.9, ("first session", lag, corr)
    k = round((times[10] - start) * 8000)  # the second session's sound sits under its frames, from frame 10
    lag, corr = lag_ms(reference, start + k / 8000 - times[10], got[k:])
    assert abs(lag) <= AAC_LAG_MS and corr > 0.9, ("second session", lag, corr)


def test_b_frames_and_a_camera_without_a_frame_rate(tmp_path: Path) -> None:
    """A camera whose H.264 has B-frames (RTP times are display times, packets come in decode order) and
    whose SPS declares no usable rate (the 90 kHz clock: the stream's rates all read 90000): frames in
    display order at their times, the same pictures as the file pipeline gives for the same access units;
    the first frame, which FFmpeg's RTSP client gives no pts, is timed from the next ones (not "repaired"),
    and the output says 25 fps (the default for a stream that declares no plausible rate)."""
    src = str(shared_path("videos", "bikes.mp4"))
    video, _ = encode_clip(src, FRAMES, (160, 68), bframes=True, rate=None)
    assert [p for _, p in video] != sorted(p for _, p in video)  # decode order differs from display order
    raw = tmp_path / "cam.h264"
    with av.open(str(raw), "w", format="h264") as o:
        s = o.add_stream("h264")
        s.width, s.height = 160, 68
        for data, pts in video:
            p = av.Packet(data)
            p.pts, p.time_base, p.stream = pts, Fraction(1, 90000), s
            o.mux(p)
    out = tmp_path / "cam.mkv"
    run = upscale_from(RtspCamera(video, live=False), out)
    assert run.returncode == 0, run.stderr
    assert "repaired" not in run.stderr  # the first frame's pts: estimated from the next ones
    times = video_times(out)
    with av.open(str(out)) as c:  # before: the header said 90000 fps (the RTP clock), as players then read
        assert c.streams.video[0].codec_context.framerate == 25
    assert times == pytest.approx([i / 25 for i in range(FRAMES)], abs=2e-3)
    ref = tmp_path / "ref.mkv"
    assert vsr(str(raw), "-o", str(ref), "--model", "espcn", "--scale", "4").returncode == 0
    got, want = decode(out)[0], decode(ref)[0]
    assert got.shape == want.shape == (FRAMES, 272, 640, 3)
    assert min_psnr(got, want) > 40


def test_a_camera_with_a_password_and_h265_gives_its_frames_and_never_shows_the_password(
        tmp_path: Path) -> None:
    """An H.265 camera that asks for Digest credentials (``rtsp://admin:PASSWORD@host/...``, as cameras
    are addressed): FFmpeg answers the challenge, every frame comes out at its time with the pictures the
    file pipeline gives for the same access units; the password appears nowhere: not in stderr, the JSON
    result, the manifest, the output file (before: every message, the result's and the manifest's input
    named the URL whole)."""
    video, _ = encode_clip(str(shared_path("videos", "bikes.mp4")), 12, (160, 68), codec_name="libx265")
    raw = tmp_path / "cam.hevc"
    raw.write_bytes(b"".join(data for data, _ in video))
    password = "Pa55-w0rd-4-cam"
    cam = RtspCamera(video, live=False, hevc=True, auth=("admin", password))
    cam.start()
    try:
        url = cam.url.replace("rtsp://", f"rtsp://admin:{password}@")
        out = tmp_path / "cam.mkv"
        run = vsr(url, "-o", str(out), "--model", "espcn", "--scale", "4", "--retries", "0")
        wrong = vsr(url.replace(password, "guess"), "-o", str(tmp_path / "no.mkv"), "--model", "espcn")
    finally:
        cam.close()
    assert run.returncode == 0, run.stderr
    assert cam.refused >= 2  # challenged, then let in (and the wrong password refused)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["frames_out"] == 12 and result["input"].startswith("rtsp://admin:***@127.0.0.1:")
    manifest = Path(result["manifest"]).read_text()
    for text in (run.stdout, run.stderr, manifest, wrong.stdout, wrong.stderr):
        assert password not in text
    assert password.encode() not in out.read_bytes()
    assert wrong.returncode == 3 and "rtsp://admin:***@" in wrong.stderr and "guess" not in wrong.stderr
    assert not (tmp_path / "no.mkv").exists()
    assert video_times(out) == pytest.approx([i / 25 for i in range(12)], abs=2e-3)
    ref = tmp_path / "ref.mkv"
    assert vsr(str(raw), "-o", str(ref), "--model", "espcn", "--scale", "4").returncode == 0
    got, want = decode(out)[0], decode(ref)[0]
    assert got.shape == want.shape == (12, 272, 640, 3)
    assert min_psnr(got, want) > 40


def test_a_camera_that_freezes_is_opened_again_after_the_timeout(
        camera_clip: tuple[list[tuple[bytes, int]], list[tuple[bytes, int]]], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """A camera that stops sending after 10 frames, its connection left open (frozen): the read waits out
    the timeout (2 s here, 10 s by default), the URL is opened again and the stream goes on: 10 + 24 frames.
    The warning says what happened ("no data for 2 s"; before: FFmpeg's "Immediate exit requested")."""
    import logging

    from vsr_pipeline.options import UpscaleOptions
    from vsr_pipeline.streaming import stream_upscale

    cam = RtspCamera(*camera_clip, live=False, stall_after=10)
    cam.start()
    try:
        with caplog.at_level(logging.WARNING):
            result = stream_upscale(cam.url, tmp_path / "cam.mkv",
                                    UpscaleOptions(model="espcn", scale=4, retries=1), timeout=2.0)
    finally:
        cam.close()
    assert result["reopened"] == 1 and cam.sessions == 2
    assert result["frames_out"] == 10 + FRAMES
    assert "reading the stream failed (no data for 2 s); opening it again (1 of 1)" in caplog.text
    times = video_times(tmp_path / "cam.mkv")
    assert np.allclose(np.diff(times), 0.04, atol=2e-3), times


def test_a_camera_that_only_sends_over_udp_is_read_over_udp(
        camera_clip: tuple[list[tuple[bytes, int]], list[tuple[bytes, int]]], tmp_path: Path) -> None:
    """TCP is asked for first; a camera that refuses it (461 Unsupported Transport, as old ones do) is read
    over UDP (FFmpeg's ``prefer_tcp``): every frame. Forcing TCP (``rtsp_transport=tcp``) failed to open it
    ("Protocol not supported")."""
    cam = RtspCamera(*camera_clip, live=False, tcp=False)
    out = tmp_path / "cam.mkv"
    run = upscale_from(cam, out)
    assert run.returncode == 0, run.stderr
    assert "interleaved" in cam.transports[0] and all("UDP" in t for t in cam.transports[1:])
    assert video_times(out) == pytest.approx([i / 25 for i in range(FRAMES)], abs=2e-3)


@pytest.mark.parametrize("suffix", [".mp4", ".ts"])
def test_a_camera_with_aac_sound_keeps_it_as_is_and_in_step(tmp_path: Path, suffix: str) -> None:
    """Most cameras now send AAC (RTP MPEG4-GENERIC, RFC 3640): copied packet for packet (not re-encoded),
    every packet, and in step with the video: the output's sound against the demo clip's own from time 0."""
    src = str(shared_path("videos", "bigbuckbunny.mp4"))
    video, _ = encode_clip(src, FRAMES, SIZE)
    audio, config = encode_aac(src, FRAMES / 25)
    out = tmp_path / f"cam{suffix}"
    run = upscale_from(RtspCamera(video, audio, live=False, aac=(config, 16000)), out)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    with av.open(str(out)) as c:
        copied = [bytes(p) for p in c.demux(audio=0) if p.size]
    strip = 7 if suffix == ".ts" else 0  # MPEG-TS carries AAC with a 7-byte ADTS header
    assert [p[strip:] for p in copied] == [data for data, _ in audio][: len(copied)]
    assert len(copied) >= len(audio) - 1  # cut at the last frame: at most the packet past it
    assert result["audio"] == [{"stream": 1, "codec": "aac", "written_as": "copy", "packets": len(copied)}]
    times = video_times(out)
    start, got = sound(out)
    with av.open(src) as c:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=8000)
        want = np.concatenate([r.to_ndarray().reshape(-1) for f in c.decode(audio=0)
                               for r in resampler.resample(f)])
    lag, corr = lag_ms(want, start - times[0], got)
    assert abs(lag) <= AAC_LAG_MS and corr > 0.9, (lag, corr)
