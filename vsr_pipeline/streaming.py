"""Streaming upscale: non-seekable inputs (stdin ``-``, http/rtsp/... URLs) to a progressively written output.

A pipe or a live URL can be read only once, front to back, and its length is unknown, so it is an
*incremental source* for the one scheduler (``vsr_pipeline.scheduler.run_chunks``) that files and batches use:
a decode thread fills a bounded queue, the chunks are cut as their frames arrive (``vsr_pipeline.plan
.LivePolicy``), and a ``LocalExecutor`` runs the inference engine and the encoder on a thread each, no Ray
(memory stays bounded whatever the stream's length):

    decode thread --(LR frames, <= QUEUE_FRAMES)--> chunks (caller's thread) --> engine --> encode thread

How many *later* frames must arrive before output frame ``t`` can be computed (``latency_frames``, compute and
encoder time not counted): single-image models 0 (whatever has arrived is batched, up to ``--batch``); window
models (VESPCN, EDVR, radius ``r``) ``r``; recurrent models (BasicVSR) ``chunk + padding - 1`` (default 16 and
10: 25 frames, 1 s at 25 fps). Chunks are truncated only at the stream's ends, so the HR frames are the ones
the file pipeline computes for the same chunk and padding. The encoder runs with low-delay settings (x264/x265
``tune=zerolatency``, a keyframe every 2 s) so packets leave it as frames go in, and the muxer writes them
under the output's own name as they come: Matroska in one cluster per frame, MP4/MOV fragmented
(``movflags=frag_keyframe+empty_moov+default_base_moof``, a fragment at least every second), MPEG-TS as is.
Output pts are the input's (in the input stream's time base, rescaled by the muxer); fragmented MP4 starts its
timeline at 0 (the muxer shifts the first pts to 0), Matroska and MPEG-TS keep the input's offset.

End of stream flushes everything. Ctrl-C (or SIGTERM through the CLI) stops reading, finishes the output up to
the last frame computed, and raises ``InterruptedJob`` saying how many frames the playable file holds.
Audio and subtitles are not copied (a warning says so).
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import av
import numpy as np

from models.registry import ModelSpec
from vsr_pipeline.errors import InterruptedJob, UsageError, VsrError
from vsr_pipeline.media import MediaError, VideoInfo, VideoWriter, frame_to_rgb
from vsr_pipeline.media.errors import short_reason
from vsr_pipeline.media.ingest import (
    Deinterlacer,
    TimestampRepair,
    frame_step,
    is_interlaced,
    repair_message,
    stream_rate,
)
from vsr_pipeline.options import UpscaleOptions, check_memory, check_options, check_paths, check_perf_options
from vsr_pipeline.plan import LivePolicy, live_policy
from vsr_pipeline.scheduler import ChunkWork, run_chunks

log = logging.getLogger(__name__)

#: URL schemes FFmpeg's protocols open (``-`` is stdin).
STREAM_SCHEMES = frozenset({
    "http", "https", "rtsp", "rtsps", "rtmp", "rtmps", "rtmpt", "rtp", "srt", "udp", "tcp", "pipe", "hls",
    "mms", "mmsh", "mmst", "ftp", "sftp", "tls", "unix",
})
#: Output containers that can be written as they grow.
STREAM_OUTPUTS = {".mkv": "matroska", ".mp4": "mp4", ".mov": "mov", ".ts": "mpegts"}
FRAGMENTED_MP4 = "frag_keyframe+empty_moov+default_base_moof"
#: LR frames the decode thread may hold ahead of the model.
QUEUE_FRAMES = 32
#: Seconds a URL may take to open and, later, to deliver more data.
DEFAULT_TIMEOUT = 10.0

#: Demuxer options: no wait for 20 frames to estimate the frame rate before the first is handed out (a live
#: stream would start that much later); the rate comes from the codec's headers, else 25.
PROBE_OPTIONS = {"fpsprobesize": "0"}

_END = object()


class _Pipe:
    """stdin for PyAV: ``read(n)`` returns the bytes that have arrived (at least one, ``b""`` at the end)
    instead of blocking until ``n`` (a live pipe would stall until PyAV's 32 KiB buffer filled)."""

    def __init__(self, raw: Any):
        self.raw = raw

    def read(self, n: int) -> bytes:
        return bytes(self.raw.read1(n))


def is_stream_source(s: str) -> bool:
    """``-`` (stdin) or a URL with an FFmpeg network/pipe protocol (``http://``, ``rtsp://``, ``pipe:``)."""
    if s == "-":
        return True
    scheme = urlsplit(s).scheme.lower()
    return (scheme in STREAM_SCHEMES and "://" in s) or scheme == "pipe"


def _check(source: str, output: Path, opts: UpscaleOptions) -> ModelSpec:
    """The job's option checks (``check_options``) plus a stream's own, before anything is opened
    (UsageError, one line)."""
    if opts.align:
        raise UsageError("--align is not available for streams (use a file input)")
    if opts.resume == "require":
        raise UsageError("--resume: a stream is read once and cannot be resumed")
    spec = check_options(opts)
    if output.suffix.lower() not in STREAM_OUTPUTS:
        raise UsageError(f"output {output}: a stream is written progressively to "
                         f"{', '.join(STREAM_OUTPUTS)}, not {output.suffix or 'a folder'}")
    check_paths(Path(source), output, opts.overwrite)
    return spec


def _check_stdin() -> None:
    """stdin must be a pipe or file that holds data (UsageError / MediaError, one line)."""
    stdin = sys.stdin.buffer
    if stdin.isatty():
        raise UsageError("input - reads a video from stdin, but stdin is a terminal; pipe one in "
                         "(cat clip.ts | vsr upscale - -o out.mkv)")
    if not stdin.peek(1):  # type: ignore[attr-defined]
        raise MediaError("stdin: empty input (no bytes)")


def _open_source(source: str, timeout: float) -> av.container.InputContainer:
    """Open stdin or the URL for sequential reading (MediaError, one line, on failure)."""
    name = "stdin" if source == "-" else source
    try:
        if source == "-":
            stdin = _Pipe(sys.stdin.buffer)
            return av.open(stdin, mode="r", options=PROBE_OPTIONS, metadata_errors="replace")
        return av.open(source, mode="r", options=PROBE_OPTIONS, timeout=(timeout, timeout),
                       metadata_errors="replace")
    except av.FFmpegError as exc:
        hint = " (an MP4 must be fragmented to be read from a pipe; MPEG-TS or MKV stream as is)" \
            if source == "-" and "moov" in str(exc) else ""
        raise MediaError(f"{name}: cannot open as a video stream ({short_reason(exc)}){hint}") from None
    except OSError as exc:
        raise MediaError(f"{name}: cannot open ({short_reason(exc)})") from None


class _Decoder(threading.Thread):
    """Opens the source and decodes its first video stream. Puts on ``out``: ``("start", VideoInfo)``, then
    ``(rgb (H, W, 3) uint8, pts)`` per frame, then ``_END``, or an exception instead. Pts that are missing,
    repeat or go backwards are repaired as the file reader does (``media.ingest.TimestampRepair``, counted
    in ``timestamps``); interlaced frames are deinterlaced unless ``deinterlace`` is False (one frame of
    delay). Opening and reading happen here, never in the caller's thread, so Ctrl-C there is never
    swallowed inside PyAV's read callback (which would read as end of stream)."""

    def __init__(self, source: str, timeout: float, out: queue.Queue[Any], stop: threading.Event,
                 on_corrupt: str, deinterlace: bool = True):
        super().__init__(daemon=True, name="vsr-stream-decode")
        self.source, self.timeout, self.out, self.stop_event = source, timeout, out, stop
        self.name_shown = "stdin" if source == "-" else source
        self.on_corrupt = on_corrupt
        self.deinterlace = deinterlace
        self.deinterlaced = False
        self.timestamps = TimestampRepair(1)
        self.bad_packets = 0
        self.repeated = 0  # lost frames the previous frame stood in for

    def frames(self, container: av.container.InputContainer, stream: Any) -> Any:
        """Decoded frames, and for a packet that fails to decode its pts (an int, or None): with
        ``on_corrupt`` repeat the previous frame stands in at that pts, with skip it is left out, with fail
        it is a MediaError."""
        for packet in container.demux(stream):
            try:
                yield from stream.decode(packet)
            except av.FFmpegError as exc:
                if packet.size == 0:
                    return
                if self.on_corrupt == "fail":
                    raise MediaError(f"{self.name_shown}: a packet cannot be decoded ({short_reason(exc)}); "
                                     f"--on-corrupt repeat or skip carries on") from None
                self.bad_packets += 1
                if self.bad_packets == 1:
                    log.warning("%s: a packet cannot be decoded (%s): %s", self.name_shown,
                                short_reason(exc), "previous frame repeated" if self.on_corrupt == "repeat"
                                else "frame left out")
                yield packet.pts

    def run(self) -> None:
        try:
            container = _open_source(self.source, self.timeout)
            try:
                self._decode(container)
            finally:
                container.close()
        except av.FFmpegError as exc:
            self._put(MediaError(f"{self.name_shown}: reading the stream failed ({short_reason(exc)})"))
        except Exception as exc:
            self._put(exc)

    def _decode(self, container: av.container.InputContainer) -> None:
        name = self.name_shown
        if not container.streams.video:
            raise MediaError(f"{name}: no video stream")
        if container.streams.audio or container.streams.subtitles:
            log.warning("%s: audio and subtitles are not copied from a stream input (video only)", name)
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"  # frame threads would hold back one frame per thread
        items = self.frames(container, stream)
        # lost frames before the first decodable one have no frame to stand in for them: left out
        first = next((f for f in items if isinstance(f, av.VideoFrame)), None)
        if first is None:
            raise MediaError(f"{name}: the video stream has no decodable frame")
        interlaced = is_interlaced(stream, first)
        frames: Iterator[av.VideoFrame | int | None] = itertools.chain([first], items)
        if self.deinterlace and interlaced:
            frames = Deinterlacer(Fraction(stream.time_base or Fraction(1, 90000)), name).filter(frames)
            self.deinterlaced = True
        tags: tuple[int, int] | None = None
        good: np.ndarray | None = None
        for frame in frames:
            if not isinstance(frame, av.VideoFrame):  # a lost frame: its packet's pts, or None
                if self.on_corrupt == "repeat" and good is not None:
                    self.repeated += 1
                    if not self._put((good, self.timestamps.fix(frame, count=False))):
                        return
                continue
            if tags is None:
                tags = (int(frame.colorspace), int(frame.color_range or 0))
                rgb = frame_to_rgb(frame, *tags)
                info = _stream_info(self.source, container, stream, rgb, frame, interlaced)
                self.timestamps = TimestampRepair(frame_step(stream_rate(stream) or info.fps, info.time_base))
                self._put(("start", info))
            pts = self.timestamps.fix(frame.pts if frame.pts is not None else frame.dts)
            good = frame_to_rgb(frame, *tags)
            if not self._put((good, pts)):
                return
        self._put(_END)

    def _put(self, item: Any) -> bool:
        """Queue ``item``; False when the job was stopped first."""
        while not self.stop_event.is_set():
            try:
                self.out.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False


class _ProgressiveEncoder:
    """The stream's encoder for the executor: ``write_segment`` writes a chunk's HR frames into the one
    growing output, frame by frame (each reaches the file as soon as it can), and records when the first frame
    reached the file (``first_at``, perf_counter)."""

    def __init__(self, writer: VideoWriter, header_first: bool):
        self.writer = writer
        #: Matroska and fragmented MP4 write the header at the first packet and the frame later (with the
        #: next cluster or fragment): the first frame is on disk when the file grows past the header
        self.header_first = header_first
        self._header_size: int | None = None
        self.first_at: float | None = None

    def _check_first(self) -> None:
        if self.first_at is not None or self.writer.packets_written == 0:
            return
        if not self.header_first:
            self.first_at = time.perf_counter()
            return
        size = os.path.getsize(self.writer.path)
        if self._header_size is None:
            self._header_size = size
        elif size > self._header_size:
            self.first_at = time.perf_counter()

    def write_segment(self, index: int, frames: np.ndarray, pts: list[int | None]) -> tuple[None, int]:
        for i in range(len(pts)):
            self.writer.write(frames[i : i + 1], pts[i : i + 1])  # type: ignore[arg-type]
            self._check_first()
        return None, len(pts)


def _writer(output: Path, info: VideoInfo, opts: UpscaleOptions) -> VideoWriter:
    """A progressive writer: under the output's own name, low-delay encoder, streaming muxer options."""
    ext = output.suffix.lower()
    container: dict[str, str] = {"flush_packets": "1"}
    if ext == ".mkv":
        container["cluster_time_limit"] = "0"  # one cluster per frame: each is on disk as the next comes
    elif ext in (".mp4", ".mov"):
        container.update({"movflags": FRAGMENTED_MP4, "frag_duration": "1000000"})
    codec_opts: dict[str, str] = {"g": str(max(1, min(250, round(2 * float(info.fps or 25)))))}
    if opts.codec in ("libx264", "libx265"):
        codec_opts["tune"] = "zerolatency"
    return opts.encode_settings().open_writer(output, info.width * opts.scale, info.height * opts.scale, info,
                                              overwrite=opts.overwrite, options=codec_opts, atomic=False,
                                              container_options=container)


def _stream_info(source: str, container: av.container.InputContainer, s: Any, first: np.ndarray,
                 first_frame: av.VideoFrame, interlaced: bool = False) -> VideoInfo:
    """A VideoInfo for the stream (frames 0: unknown), from its first frame (``first``: it as RGB)."""
    rate = s.average_rate or s.codec_context.framerate or s.guessed_rate or 25
    return VideoInfo(
        path=source, width=first.shape[1], height=first.shape[0], frames=0, fps=Fraction(rate),
        time_base=Fraction(s.time_base or Fraction(1, 90000)), duration_s=0.0, codec=s.codec_context.name,
        pix_fmt=first_frame.format.name, bit_depth=8, color_range=int(first_frame.color_range or 0),
        color_primaries=int(first_frame.color_primaries), color_trc=int(first_frame.color_trc),
        colorspace=int(first_frame.colorspace), rotation=int(first_frame.rotation or 0),
        container=container.format.name, interlaced=interlaced,
    )


def stream_upscale(source: str, output: str | Path, opts: UpscaleOptions,
                   timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """Upscale stdin (``-``) or a URL to ``output`` (.mkv, .mp4/.mov fragmented, .ts), written as it grows.

    Returns input, output, model, frames_in, frames_out, width/height in and out, seconds, fps (frames out
    per second of the run), first_frame_s (start to the first output frame on disk), latency_frames (see the
    module docstring), chunk and padding (recurrent models), timestamps_repaired (frames whose pts was
    missing, repeated or went backwards), deinterlaced,
    bad_packets, repeated_frames (lost frames the previous one stood in for) and interrupted. ``timeout``:
    seconds a URL may take to open or to send more data.
    """
    from vsr_pipeline.engine import Engine, resolve_device
    from vsr_pipeline.executors import LocalExecutor

    started = time.perf_counter()
    output = Path(output)
    spec = _check(source, output, opts)
    try:
        device = resolve_device(opts.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    check_perf_options(spec, opts, device)
    policy = live_policy(spec.temporal, spec.radius, opts.batch, opts.chunk, opts.padding,
                         spec.default_padding)
    name = "stdin" if source == "-" else source
    if source == "-":
        _check_stdin()
    stop = threading.Event()
    frames_q: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_FRAMES)
    writer: VideoWriter | None = None
    sink: _ProgressiveEncoder | None = None
    executor: LocalExecutor | None = None
    decoder: _Decoder | None = None
    state = {"in": 0}
    interrupted = False
    failure: BaseException | None = None
    try:
        decoder = _Decoder(source, timeout, frames_q, stop, opts.on_corrupt, opts.deinterlace)
        decoder.start()  # connects and decodes while the model loads
        # a stream is this process's one job: freed buffers serve the next chunk (vsr_pipeline.heap)
        engine = Engine.from_settings(opts.model_settings(), spec=spec, device=str(device), reuse_memory=True)
        item = _get(frames_q)
        if isinstance(item, BaseException):
            raise item
        info = item[1]
        check_memory(info, opts.scale, opts.batch)
        writer = _writer(output, info, opts)
        sink = _ProgressiveEncoder(writer, header_first=output.suffix.lower() != ".ts")
        executor = LocalExecutor(engine, sink)
        run_chunks(_live_chunks(frames_q, policy, state), executor, max_inflight=opts.max_inflight,
                   fatal=(Exception,), progress=opts.progress, desc=f"{spec.name} x{opts.scale} (stream)")
    except KeyboardInterrupt:
        interrupted = True
    except BaseException as exc:
        failure = exc
    finally:
        stop.set()
        if executor is not None:
            try:  # what was handed to the engine is finished and written: the file ends at a chunk's end
                executor.close()
            except KeyboardInterrupt:
                interrupted = True
    if writer is None:
        _let_go(decoder)
        if interrupted:
            raise InterruptedJob("interrupted before the first frame; no output written")
        assert failure is not None
        raise failure
    frames_out = writer.frames_written
    if frames_out == 0:
        writer.abort()
        _let_go(decoder)
        if interrupted:
            raise InterruptedJob("interrupted before the first frame was written; no output written")
        raise (failure or MediaError(f"{name}: no frame was written"))
    try:
        writer.close()
    except VsrError as exc:
        failure = failure or exc
    assert sink is not None and decoder is not None
    if sink.first_at is None:  # the muxer held everything until the end
        sink.first_at = time.perf_counter()
    _let_go(decoder)
    held = f"{output} holds the {frames_out} frames written so far and is playable"
    if interrupted:
        raise InterruptedJob(f"interrupted: {held}")
    if failure is not None:
        if isinstance(failure, VsrError):
            raise type(failure)(f"{str(failure).splitlines()[0]}; {held}") from None
        raise failure
    seconds = time.perf_counter() - started
    ts = decoder.timestamps
    if ts.repaired:
        log.warning("%s: %s", name, repair_message(ts.repaired, ts.first, ts.step, info.time_base))
    return {
        "input": source,
        "output": str(output),
        "model": spec.name,
        "frames_in": state["in"],
        "frames_out": frames_out,
        "width_in": info.width,
        "height_in": info.height,
        "width_out": info.width * opts.scale,
        "height_out": info.height * opts.scale,
        "seconds": round(seconds, 3),
        "fps": round(frames_out / seconds, 3) if seconds > 0 else 0.0,
        "first_frame_s": round(sink.first_at - started, 3),
        "latency_frames": policy.latency_frames,
        "chunk": policy.core if policy.whole else None,
        "padding": policy.context if policy.whole else None,
        "device": engine.device_name(),
        "precision": engine.precision.name,
        # a live stream does not wait for a timed probe (vsr_pipeline.autotune): hardware + quality table
        "precision_reason": f"--precision {opts.precision}" if opts.precision != "auto" else
        "live stream: the hardware and quality rule of vsr_pipeline.precision, no timed probe",
        "timestamps_repaired": decoder.timestamps.repaired,
        "deinterlaced": decoder.deinterlaced,
        "bad_packets": decoder.bad_packets,
        "repeated_frames": decoder.repeated,
        "interrupted": False,
    }


def _let_go(decoder: _Decoder | None) -> None:
    """Give the decode thread a second to see the stop (it closes the input); one blocked in a read is a
    daemon and is left behind."""
    if decoder is not None and decoder.is_alive():
        decoder.join(timeout=1.0)


def _live_chunks(frames_q: queue.Queue[Any], policy: LivePolicy, state: dict[str, int]
                 ) -> Iterator[ChunkWork]:
    """The stream as chunk work, each chunk as soon as the frames it needs have arrived.

    ``buf`` holds frames ``base .. received - 1`` (what later chunks still need as context); ``done`` is the
    next output frame."""
    buf: list[np.ndarray] = []
    pts: list[int] = []
    base = done = index = 0
    eof = False
    while True:
        c = policy.next_chunk(index, done, base + len(buf), eof)
        if c is None:
            if eof:
                return
            item = _get(frames_q)
            while True:
                if item is _END:
                    eof = True
                    break
                if isinstance(item, BaseException):
                    raise item
                buf.append(item[0])
                pts.append(item[1])
                state["in"] += 1
                try:  # take whatever else has arrived, without waiting
                    item = frames_q.get_nowait()
                except queue.Empty:
                    break
            continue
        window = np.stack(buf[c.read_start - base : c.read_stop - base])
        yield ChunkWork(c, slice(0, len(window)), [window], list(pts[c.start - base : c.stop - base]))
        index, done = index + 1, c.stop
        drop = max(0, done - policy.context) - base
        if drop > 0:
            del buf[:drop], pts[:drop]
            base += drop


def _get(q: queue.Queue[Any]) -> Any:
    """``q.get()`` in short waits, so Ctrl-C is seen at once."""
    while True:
        try:
            return q.get(timeout=0.2)
        except queue.Empty:
            continue


__all__ = ["STREAM_OUTPUTS", "is_stream_source", "stream_upscale"]
