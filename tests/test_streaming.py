"""Streaming upscale (``vsr upscale - -o out.mkv``, URLs): real pipes into the real CLI, outputs decoded.

The clip is MPEG-TS (streamable): 12 frames of bikes.mp4 at 160x68.
"""

from __future__ import annotations

import io
import itertools
import os
import pty
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import shared_path
from vsr_pipeline import cli
from vsr_pipeline.media import FrameReader
from vsr_pipeline.streaming import is_stream_source

FRAMES = 12


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 frames of bikes.mp4 scaled to 160x68, H.264 in MPEG-TS (pts start at 0.08 s, 1/90000)."""
    src = shared_path("videos", "bikes.mp4")
    out = tmp_path_factory.mktemp("stream") / "clip.ts"
    with av.open(str(src)) as c, av.open(str(out), "w") as o:
        v = c.streams.video[0]
        s = o.add_stream("libx264", rate=v.average_rate, options={"crf": "18", "preset": "fast"})
        s.width, s.height, s.pix_fmt = 160, 68, "yuv420p"
        for i, f in enumerate(c.decode(v)):
            if i == FRAMES:
                break
            g = f.reformat(width=160, height=68, format="yuv420p")
            g.pts, g.time_base = f.pts, f.time_base
            o.mux(s.encode(g))
        o.mux(s.encode())
    return out


def vsr(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    # RAY_ADDRESS=local: the file pipeline starts a Ray of its own even where another job's Ray runs
    return subprocess.run([sys.executable, "-m", "vsr_pipeline.cli", *args], input=stdin,
                          capture_output=True, timeout=300, env={**os.environ, "RAY_ADDRESS": "local"})


def decode(path: Path) -> tuple[np.ndarray, list[float]]:
    """Frames (T, H, W, 3) float64 RGB and their times in seconds."""
    with av.open(str(path)) as c:
        frames = [(f.to_ndarray(format="rgb24").astype(np.float64), float(f.time)) for f in c.decode(video=0)]
    return np.stack([f for f, _ in frames]), [t for _, t in frames]


def times_of(path: Path) -> list[float]:
    return decode(path)[1]


def min_psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a - b) ** 2).reshape(len(a), -1).mean(axis=1)
    return float(np.min(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))))


def one_line_error(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.startswith("vsr: error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_is_stream_source() -> None:
    for s in ("-", "http://h/x.ts", "https://h/a", "rtsp://cam/1", "udp://@:1234", "pipe:0", "rtmp://h/l"):
        assert is_stream_source(s), s
    for s in ("clip.ts", "/abs/clip.mp4", "frames/", "C:\\v\\a.mp4", "http_dump.mkv"):
        assert not is_stream_source(s), s


def test_stdin_espcn_equals_file_pipeline(clip: Path, tmp_path: Path) -> None:
    out, ref = tmp_path / "out.mkv", tmp_path / "ref.mkv"
    run = vsr("upscale", "-", "-o", str(out), "--model", "espcn", "--scale", "4", "--no-progress", "--json",
              stdin=clip.read_bytes())
    assert run.returncode == 0, run.stderr.decode()
    import json

    result = json.loads(run.stdout.decode().strip().splitlines()[-1])
    assert result["frames_in"] == result["frames_out"] == FRAMES
    assert result["latency_frames"] == 0 and result["first_frame_s"] > 0
    assert vsr("upscale", str(clip), "-o", str(ref), "--model", "espcn", "--scale", "4",
               "--no-progress").returncode == 0
    got, t_got = decode(out)
    want, t_want = decode(ref)
    _, t_in = decode(clip)
    assert got.shape == (FRAMES, 272, 640, 3)
    assert t_got == t_want == pytest.approx(t_in, abs=1e-3)  # input pts kept (mkv stores ms)
    assert np.all(np.diff(t_got) > 0)
    assert min_psnr(got, want) > 40


def test_the_engine_is_built_and_run_on_its_own_thread_after_one_malloc_arena(
        clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run on a thread other than the one that built it, a torch forward pass met OpenMP's throttled spin
    (BasicVSR bf16 1.3x slower), and a thread's own malloc arena cannot keep large buffers (ESPCN x4 at
    640x272 1.9x slower; ``benchmarks/speed_engine_thread.py``): the live path builds the engine on the thread
    it runs on, after every thread was made to share one arena, before the decoder's thread starts."""
    import threading

    from vsr_pipeline import heap
    from vsr_pipeline.engine import Engine
    from vsr_pipeline.options import UpscaleOptions
    from vsr_pipeline.stream_source import StreamDecoder
    from vsr_pipeline.streaming import stream_upscale

    order: list[str] = []
    threads: dict[str, set[int]] = {"init": set(), "process": set()}
    real_init, real_process, real_start = Engine.__init__, Engine.process, StreamDecoder.start

    def init(self, *a, **k):  # type: ignore[no-untyped-def]
        threads["init"].add(threading.get_ident())
        real_init(self, *a, **k)

    def process(self, *a, **k):  # type: ignore[no-untyped-def]
        threads["process"].add(threading.get_ident())
        return real_process(self, *a, **k)

    monkeypatch.setattr(Engine, "__init__", init)
    monkeypatch.setattr(Engine, "process", process)
    monkeypatch.setattr(heap, "single_arena", lambda: order.append("one arena") or True)
    monkeypatch.setattr(StreamDecoder, "start", lambda self: order.append("decoder") or real_start(self))
    try:
        with open(clip, "rb") as raw:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(raw))
            result = stream_upscale("-", tmp_path / "out.mkv", UpscaleOptions(model="espcn", scale=4,
                                                                              progress=False))
    finally:
        heap.reuse_freed_memory(False)  # the engine set it for this whole process: glibc's defaults back
    assert result["frames_out"] == FRAMES
    assert order[:2] == ["one arena", "decoder"]
    assert len(threads["init"]) == 1 and threads["process"] == threads["init"]
    assert threading.main_thread().ident not in threads["init"]


def test_window_model_to_fragmented_mp4(clip: Path, tmp_path: Path) -> None:
    """VESPCN (radius 1) through the stream path into a fragmented MP4, equal to the model run on the whole
    clip at once (the Upscaler directly, no chunks)."""
    from vsr_pipeline.engine import Engine

    out = tmp_path / "out.mp4"
    run = vsr("upscale", "-", "-o", str(out), "--model", "vespcn", "--no-progress", stdin=clip.read_bytes())
    assert run.returncode == 0, run.stderr.decode()
    assert b"moof" in out.read_bytes() and b"mvex" in out.read_bytes()  # fragmented, header first
    got, t_got = decode(out)
    with FrameReader(clip) as reader:
        lr, _ = reader.read(FRAMES)
    want = Engine("vespcn", None, 4, "cpu").process(slice(0, FRAMES), slice(0, FRAMES), lr)
    _, t_in = decode(clip)
    assert len(got) == FRAMES
    # the input's times kept (``delay_moov``: the header waits for the first fragment, so its edit list says
    # where each track starts; before, the timeline started at 0 and a copied audio track's offset was lost)
    assert np.allclose(t_got, t_in, atol=1e-3)
    assert min_psnr(got, want.astype(np.float64)) > 40


def test_a_live_output_takes_the_users_tune_and_no_b_frames(clip: Path, tmp_path: Path) -> None:
    """A live output is always encoded without B-frames (``zerolatency``); ``--tune grain`` is added to that,
    not replaced by it (x264's SEI lists grain's deadzones and ``bframes=0``)."""
    out = tmp_path / "out.mkv"
    run = vsr("upscale", "-", "-o", str(out), "--model", "bicubic", "--scale", "2", "--tune", "grain",
              "--no-progress", stdin=clip.read_bytes())
    assert run.returncode == 0, run.stderr.decode()
    with av.open(str(out)) as c:
        first = next(bytes(p) for p in c.demux(c.streams.video[0]) if p.is_keyframe)
    assert b"bframes=0" in first and b"deadzone=6,6" in first


def test_interrupt_keeps_a_playable_file(clip: Path, tmp_path: Path) -> None:
    """The clip arrives, the stream stays open; the file is readable while it grows, then SIGINT
    closes it: exit 130, one line, every frame written is in a playable file."""
    out = tmp_path / "live.mkv"
    data = clip.read_bytes()
    proc = subprocess.Popen([sys.executable, "-m", "vsr_pipeline.cli", "upscale", "-", "-o", str(out),
                             "--model", "espcn", "--no-progress"], stdin=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdin is not None
    proc.stdin.write(data)  # all of it, the pipe left open: the demuxer and decoder hold the last frames
    proc.stdin.flush()
    growing: list[float] = []
    deadline = time.monotonic() + 120  # a hang guard, not a timing assertion
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.stat().st_size > 2000:
            try:
                growing = times_of(out)
            except (av.FFmpegError, ValueError):
                growing = []
            if growing:
                break
        time.sleep(0.2)
    assert growing, "no frame became readable while the stream was open"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    proc.stdin.close()
    assert proc.returncode == 130
    line = one_line_error(err.decode())
    assert "playable" in line
    final = times_of(out)
    assert f"{len(final)} frames" in line
    assert 0 < len(final) < FRAMES and final[: len(growing)] == growing


@pytest.mark.parametrize("case", ["text", "empty", "tty", "extension", "resume"])
def test_bad_stdin_one_line(case: str, clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                            capsys: pytest.CaptureFixture[str]) -> None:
    data = {"text": b"hello, not a video\n" * 50, "empty": b""}.get(case, clip.read_bytes())
    args = ["upscale", "-", "-o", str(tmp_path / ("out.avi" if case == "extension" else "out.mkv")),
            "--model", "espcn", "--no-progress"] + (["--resume"] if case == "resume" else [])
    if case == "tty":
        leader, follower = pty.openpty()
        stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(follower, "rb")))
    else:
        stdin = io.TextIOWrapper(io.BufferedReader(io.BytesIO(data)))  # type: ignore[arg-type]
    monkeypatch.setattr(sys, "stdin", stdin)
    try:
        code = cli.main(args)
    finally:
        if case == "tty":
            os.close(leader)
    line = one_line_error(capsys.readouterr().err)
    assert code == {"text": 3, "empty": 3}.get(case, 2), line
    assert {"text": "stdin", "empty": "empty", "tty": "terminal", "extension": ".avi",
            "resume": "resume"}[case] in line
    assert not (tmp_path / "out.mkv").exists()


def test_dead_url_fails_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing listens on port 9: refused within seconds (tried again once after 1 s,
    ``stream_source.HTTP_RECONNECT``; a silent host would hit the 10 s open timeout)."""
    start = time.monotonic()
    code = cli.main(["upscale", "http://127.0.0.1:9/x.ts", "-o", str(tmp_path / "o.mkv"), "--model", "espcn"])
    assert code == 3 and time.monotonic() - start < 8
    line = one_line_error(capsys.readouterr().err)
    assert "http://127.0.0.1:9/x.ts" in line and not (tmp_path / "o.mkv").exists()


class _DroppingServer:
    """An HTTP server of one file on 127.0.0.1 that takes ``Range`` requests and cuts its first response off
    half-way (the connection shut down), as a flaky network or a camera's web server does; ``then``: what it
    serves after that."""

    def __init__(self, data: bytes, then: bytes | None = None) -> None:
        import http.server
        import threading

        self.data, self.requests, self.drops = data, [], 1
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                rng = self.headers.get("Range")
                start = int(rng.split("=")[1].split("-")[0]) if rng else 0
                outer.requests.append(rng)
                body, size = outer.data[start:], len(outer.data)
                self.send_response(206 if rng else 200)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
                self.end_headers()
                if outer.drops and start == 0:
                    outer.drops -= 1
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    if then is not None:  # what the URL serves from now on (a live server's later part)
                        outer.data = then
                    return
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/clip.ts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_dropped_http_connection_is_reopened_and_the_stream_read_on(clip: Path, tmp_path: Path) -> None:
    """The first response stops half-way: FFmpeg reconnects at the byte it reached and the job gets every
    frame at its time (before 2026-12-05: an I/O error half-way, the job failed)."""
    from vsr_pipeline import UpscaleOptions
    from vsr_pipeline.streaming import stream_upscale

    server = _DroppingServer(clip.read_bytes())
    try:
        out = tmp_path / "out.mkv"
        result = stream_upscale(server.url, out, UpscaleOptions(model="bicubic", scale=2, progress=False))
    finally:
        server.close()
    assert server.drops == 0 and any(r and r != "bytes=0-" for r in server.requests), server.requests
    assert result["frames_in"] == result["frames_out"] == FRAMES
    assert times_of(out) == pytest.approx(times_of(clip), abs=1e-3)


def test_stdin_stream_writes_a_manifest_that_verifies_with_a_copy_of_the_input(clip: Path,
                                                                            tmp_path: Path) -> None:
    """A stream is read once: its manifest records the SHA-256 of the bytes piped in and each frame's pts;
    `vsr verify` checks the output and, given a saved copy of the stream with --input, the input too."""
    import hashlib
    import json

    out = tmp_path / "out.mkv"
    run = vsr("upscale", "-", "-o", str(out), "--model", "espcn", "--no-progress", "--json",
              stdin=clip.read_bytes())
    assert run.returncode == 0, run.stderr.decode()
    result = json.loads(run.stdout.decode().strip().splitlines()[-1])
    manifest = json.loads(Path(result["manifest"]).read_text())
    assert manifest["input"]["sha256"] == hashlib.sha256(clip.read_bytes()).hexdigest()
    assert manifest["input"]["path"] is None and manifest["input"]["source"] == "stdin"
    assert manifest["output"]["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    with av.open(str(clip)) as c:
        pts_in = [f.pts for f in c.decode(video=0)]
    assert [r["pts_in"] for r in manifest["mapping"]] == pts_in == [r["pts_out"] for r in manifest["mapping"]]
    assert [r["index_out"] for r in manifest["mapping"]] == list(range(FRAMES))

    alone = vsr("verify", result["manifest"], "--json")  # the piped bytes are gone: input cannot be checked
    assert alone.returncode == 3 and b"--input" in alone.stderr
    ok = vsr("verify", result["manifest"], "--input", str(clip), "--json")
    assert ok.returncode == 0, ok.stderr.decode()
    other = tmp_path / "other.ts"
    other.write_bytes(clip.read_bytes()[:-188])  # one TS packet short
    assert vsr("verify", result["manifest"], "--input", str(other)).returncode == 9
    again = vsr("upscale", "-", "-o", str(tmp_path / "again.mkv"), "--model", "espcn", "--no-progress",
                stdin=clip.read_bytes())
    assert again.returncode == 0
    assert vsr("upscale", "-", "-o", str(out), "--model", "espcn", "--no-progress",
               stdin=clip.read_bytes()).returncode == 2  # output and manifest exist: not replaced unasked


def test_a_stream_that_fails_keeps_every_frame_received_before(clip: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection that drops for good (FFmpeg's reconnect off here, as for rtsp; ``--retries 0``: not
    opened again): the frames decoded before the
    failure are upscaled and written, the file is playable, and the error says so in one line (before
    2026-12-05 the frames still queued were dropped: none were written and the file was removed)."""
    from vsr_pipeline import UpscaleOptions, stream_source
    from vsr_pipeline.media import MediaError
    from vsr_pipeline.streaming import stream_upscale

    monkeypatch.setattr(stream_source, "HTTP_RECONNECT", {})
    server = _DroppingServer(clip.read_bytes())
    out = tmp_path / "out.mkv"
    try:
        with pytest.raises(MediaError, match="reading the stream failed") as err:
            stream_upscale(server.url, out, UpscaleOptions(model="bicubic", scale=2, progress=False,
                                                           retries=0))
    finally:
        server.close()
    times = times_of(out)
    assert 0 < len(times) < FRAMES and f"holds the {len(times)} frames written so far" in str(err.value)
    assert times == pytest.approx(times_of(clip)[: len(times)], abs=1e-3)


def _reopened_run(clip: Path, out: Path, monkeypatch: pytest.MonkeyPatch, then: bytes | None = None
                  ) -> tuple[dict[str, object], _DroppingServer]:
    """``stream_upscale`` (bicubic x2) of the clip from a ``_DroppingServer`` with FFmpeg's reconnect off (as
    for rtsp), so the URL is opened again by the job; its result and the server."""
    from vsr_pipeline import UpscaleOptions, stream_source
    from vsr_pipeline.streaming import stream_upscale

    monkeypatch.setattr(stream_source, "HTTP_RECONNECT", {})
    monkeypatch.setattr(stream_source, "REOPEN_DELAY_S", 0.1)
    server = _DroppingServer(clip.read_bytes(), then=then)
    try:
        result = stream_upscale(server.url, out, UpscaleOptions(model="bicubic", scale=2, progress=False))
        return result, server
    finally:
        server.close()


def test_a_url_that_fails_is_opened_again_and_its_timeline_goes_on(clip: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """FFmpeg's reconnect off (as for rtsp): the read fails half-way, the URL is opened again (``--retries``
    2 by default) and its frames follow on, one frame duration after the last one; the server sends the
    whole clip again, so the output has the first connection's frames and then all 12."""
    out = tmp_path / "out.mkv"
    result, server = _reopened_run(clip, out, monkeypatch)
    times, src = times_of(out), times_of(clip)
    first = len(times) - FRAMES
    assert result["reopened"] == 1 and server.requests == ["bytes=0-", "bytes=0-"]  # two whole opens
    assert 0 < first < FRAMES and result["frames_out"] == len(times)
    assert times[:first] == pytest.approx(src[:first], abs=1e-3)
    step = src[1] - src[0]
    assert times[first] == pytest.approx(times[first - 1] + step, abs=1e-3)  # one frame on
    assert np.diff(times[first:]) == pytest.approx(np.diff(src), abs=1e-3)
    # the manifest says the URL was opened again and which frames came from the later connection: their own
    # pts plus the shift are the pts given, not counted as repairs
    import json

    manifest = json.loads(Path(result["manifest"]).read_text())
    assert manifest["input"]["reopened"] == 1 and manifest["frames"]["pts_repaired"] == 0
    rows = manifest["mapping"]
    assert ["pts_shift" in r for r in rows] == [False] * first + [True] * FRAMES
    assert all(r["pts_in"] + r.get("pts_shift", 0) == r["pts_out"] for r in rows)


def test_a_reopened_url_whose_clock_went_on_keeps_its_timestamps(clip: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """After the drop the server sends the clip again with its pts 5 s later (a live server's clock that went
    on over the outage): those pts are kept, so the output shows the 5 s gap the outage was."""
    later = tmp_path / "later.ts"
    with av.open(str(clip)) as c, av.open(str(later), "w", format="mpegts") as o:
        v = c.streams.video[0]
        s = o.add_stream_from_template(v)
        for packet in c.demux(v):
            if packet.size:
                packet.pts, packet.dts = packet.pts + 5 * 90000, packet.dts + 5 * 90000
                packet.stream = s
                o.mux(packet)
    out = tmp_path / "out.mkv"
    result, _ = _reopened_run(clip, out, monkeypatch, then=later.read_bytes())
    times, src = times_of(out), times_of(clip)
    first = len(times) - FRAMES
    assert result["reopened"] == 1 and 0 < first < FRAMES
    assert times[:first] == pytest.approx(src[:first], abs=1e-3)
    assert times[first:] == pytest.approx([t + 5 for t in src], abs=1e-3)


def size_change_clip(path: Path) -> Path:
    """An MPEG-TS H.264 stream whose size changes mid-stream, as a camera reconfigured (a new SPS at a
    keyframe): the first 10 frames of bikes.mp4 at 160x68, then the same 10 at 128x54, 25 fps."""
    src = shared_path("videos", "bikes.mp4")
    with av.open(str(src)) as c:
        pictures = [f.to_ndarray(format="rgb24") for f in itertools.islice(c.decode(video=0), 10)]
    with av.open(str(path), "w") as o:
        stream = o.add_stream("libx264", rate=25, options={"preset": "fast", "crf": "18"})
        stream.width, stream.height, stream.pix_fmt = 160, 68, "yuv420p"
        second = av.CodecContext.create("libx264", "w")
        second.width, second.height, second.pix_fmt = 128, 54, "yuv420p"
        second.time_base, second.framerate = Fraction(1, 25), Fraction(25)
        second.options = {"preset": "fast", "crf": "18"}
        for k, (encoder, (w, h)) in enumerate([(stream.codec_context, (160, 68)), (second, (128, 54))]):
            for i, rgb in enumerate(pictures):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(w, h, "yuv420p")
                frame.pts, frame.time_base = 10 * k + i, Fraction(1, 25)
                for p in encoder.encode(frame):
                    p.stream = stream
                    o.mux(p)
            for p in encoder.encode(None):
                p.stream = stream
                o.mux(p)
    return path


def test_a_stream_whose_picture_size_changes_is_scaled_to_its_first_size(tmp_path: Path) -> None:
    """A live H.264 stream whose size changes mid-stream (a camera reconfigured: new SPS at a keyframe):
    frames of the new size are scaled to the first (as FFmpeg's tools do), with one warning; before, the
    model's batch met two sizes and the job died ("internal error: ... same shape") after 8 of 20 frames.
    The second part is the first part's pictures at a lower size: the same pictures out (> 25 dB)."""
    clip = size_change_clip(tmp_path / "resized.ts")
    out = tmp_path / "out.mkv"
    run = vsr("upscale", "-", "-o", str(out), "--model", "espcn", "--scale", "4", "--no-progress", "--json",
              stdin=clip.read_bytes())
    assert run.returncode == 0, run.stderr.decode()
    stderr = run.stderr.decode()
    assert stderr.count("the stream began at 160x68") == 1 and "repaired" not in stderr
    import json

    assert json.loads(run.stdout.decode().strip().splitlines()[-1])["resized_frames"] == 10
    got, times = decode(out)
    assert got.shape == (20, 272, 640, 3)
    assert np.allclose(np.diff(times), 0.04, atol=1e-3)
    assert min_psnr(got[10:], got[:10]) > 25


@pytest.mark.parametrize("chunk", ["7", "10"])
def test_a_file_whose_picture_size_changes_is_scaled_to_its_first_size(tmp_path: Path, chunk: str) -> None:
    """The same in a file, through the chunked pipeline. Before, the chunk that began at the change (chunks
    of 10) reached the encoder at 128x54 x 4 and the job failed ("chunk 1 (frames 10-19) failed: ValueError:
    frames are 512x216, writer is 640x272 (internal error ...)"); a chunk that met it midway (chunks of 7)
    was refused ("frame 10 is 128x54, expected 160x68 (resolution changes mid-stream)"). Now such frames
    are scaled to the video's size."""
    clip = size_change_clip(tmp_path / "resized.ts")
    out = tmp_path / "out.mkv"
    run = vsr("upscale", str(clip), "-o", str(out), "--model", "espcn", "--scale", "4", "--no-progress",
              "--chunk", chunk)
    assert run.returncode == 0, run.stderr.decode()
    got, times = decode(out)
    assert got.shape == (20, 272, 640, 3)
    assert np.allclose(np.diff(times), 0.04, atol=1e-3)
    assert min_psnr(got[10:], got[:10]) > 25
