"""Streaming upscale: non-seekable inputs (stdin ``-``, http/rtsp/... URLs) to a progressively written output.

The file pipeline (``vsr_pipeline.pipeline.upscale``) probes the input, plans chunks and joins segments at the
end; a pipe or a live URL can be read only once, front to back, and its length is unknown. Here three threads
overlap the work, joined by bounded queues (memory stays bounded whatever the stream's length):

    decode thread --(LR frames, <= QUEUE_FRAMES)--> model (caller's thread) --(HR chunks, <= 2)--> encode

The model runs on windows as soon as the frames it needs have arrived. How many *later* frames must arrive
before output frame ``t`` can be computed (``latency_frames``, compute and encoder time not counted):

- single-image models: 0 (each frame alone; whatever has arrived is batched, up to ``--batch``);
- window models (VESPCN, EDVR, radius ``r``): ``r`` (frames ``t-r .. t+r``);
- recurrent models (BasicVSR): ``chunk + padding - 1``: frames go in chunks of ``chunk`` core frames with
  ``padding`` frames of context each side (default 16 and 10: 25 frames, 1 s at 25 fps).

Window edges follow the file pipeline (a window is truncated only at the stream's ends), so the HR frames are
the ones the file pipeline computes for the same chunk and padding. The encoder runs with low-delay settings
(x264/x265 ``tune=zerolatency``, a keyframe every 2 s) so packets leave it as frames go in, and the muxer
writes them under the output's own name as they come: Matroska in one cluster per frame, MP4/MOV fragmented
(``movflags=frag_keyframe+empty_moov+default_base_moof``, a fragment at least every second), MPEG-TS as is.
Output pts are the input's (in the input stream's time base, rescaled by the muxer); fragmented MP4 starts its
timeline at 0 (the muxer shifts the first pts to 0), Matroska and MPEG-TS keep the input's offset.

End of stream flushes everything. Ctrl-C (or SIGTERM through the CLI) stops reading, finishes the output up to
the last frame computed, and raises ``InterruptedJob`` saying how many frames the playable file holds.
Audio and subtitles are not copied (a warning says so).
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import av
import numpy as np

from models.registry import ModelSpec, get_spec, resolve_weights
from vsr_pipeline.errors import InterruptedJob, UsageError, VsrError
from vsr_pipeline.media import MediaError, VideoInfo, VideoWriter, frame_to_rgb
from vsr_pipeline.media.errors import short_reason
from vsr_pipeline.pipeline import (
    UpscaleOptions,
    check_backbone,
    check_memory,
    check_paths,
    check_perf_options,
    default_padding,
)
from vsr_pipeline.windows import check_padding

log = logging.getLogger(__name__)

#: URL schemes FFmpeg's protocols open (``-`` is stdin).
STREAM_SCHEMES = frozenset({
    "http", "https", "rtsp", "rtsps", "rtmp", "rtmps", "rtmpt", "rtp", "srt", "udp", "tcp", "pipe", "hls",
    "mms", "mmsh", "mmst", "ftp", "sftp", "tls", "unix",
})
#: Output containers that can be written as they grow.
STREAM_OUTPUTS = {".mkv": "matroska", ".mp4": "mp4", ".mov": "mov", ".ts": "mpegts"}
FRAGMENTED_MP4 = "frag_keyframe+empty_moov+default_base_moof"
#: Core frames per chunk for recurrent models when ``opts.chunk`` is not given.
STREAM_CHUNK = 16
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


def latency_frames(spec: ModelSpec, chunk: int, padding: int) -> int:
    """Frames that must arrive after frame ``t`` before output frame ``t`` can be computed."""
    if spec.temporal == "recurrent":
        return chunk + padding - 1
    if spec.temporal == "window":
        return spec.radius
    return 0


@dataclass
class _Plan:
    """How the model consumes the stream: ``context`` frames each side, at most ``core`` outputs per call;
    ``whole`` (recurrent): wait for ``core`` outputs plus ``context`` future frames before computing."""

    core: int
    context: int
    whole: bool


def _plan(spec: ModelSpec, opts: UpscaleOptions) -> _Plan:
    if spec.temporal == "recurrent":
        chunk = STREAM_CHUNK if opts.chunk is None else opts.chunk
        padding = default_padding(spec.name) if opts.padding is None else opts.padding
        return _Plan(chunk, padding, True)
    if spec.temporal == "window":
        padding = spec.radius if opts.padding is None else opts.padding
        try:
            check_padding(spec.name, spec.radius, padding)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return _Plan(opts.batch, spec.radius, False)
    return _Plan(opts.batch, 0, False)


def _check(source: str, output: Path, opts: UpscaleOptions) -> ModelSpec:
    """Validate options and paths before anything is opened (UsageError, one line)."""
    spec = get_spec(opts.model)
    if opts.scale not in spec.scales:
        raise UsageError(f"model {spec.name} supports scale {', '.join(map(str, spec.scales))}, not "
                         f"{opts.scale}")
    check_backbone(spec, opts.backbone, opts.scale)
    if opts.align:
        raise UsageError("--align is not available for streams (use a file input)")
    if opts.batch < 1:
        raise UsageError("--batch must be >= 1")
    if (opts.chunk is not None and opts.chunk < 1) or (opts.padding is not None and opts.padding < 0):
        raise UsageError("--chunk must be >= 1 and --padding >= 0")
    if output.suffix.lower() not in STREAM_OUTPUTS:
        raise UsageError(f"output {output}: a stream is written progressively to "
                         f"{', '.join(STREAM_OUTPUTS)}, not {output.suffix or 'a folder'}")
    check_paths(Path(source), output, opts.overwrite)
    resolve_weights(spec.name, opts.weights, opts.scale)
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
    ``(rgb (H, W, 3) uint8, pts)`` per frame, then ``_END``, or an exception instead. Frames whose pts does
    not increase are dropped (counted). Opening and reading happen here, never in the caller's thread, so
    Ctrl-C there is never swallowed inside PyAV's read callback (which would read as end of stream)."""

    def __init__(self, source: str, timeout: float, out: queue.Queue[Any], stop: threading.Event,
                 on_corrupt: str):
        super().__init__(daemon=True, name="vsr-stream-decode")
        self.source, self.timeout, self.out, self.stop_event = source, timeout, out, stop
        self.name_shown = "stdin" if source == "-" else source
        self.on_corrupt = on_corrupt
        self.dropped = 0
        self.bad_packets = 0

    def frames(self, container: av.container.InputContainer, stream: Any) -> Any:
        """Decoded frames; a packet that fails to decode is skipped (``on_corrupt`` fail: MediaError)."""
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
                    log.warning("%s: skipping a packet that cannot be decoded (%s)", self.name_shown,
                                short_reason(exc))

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
        tags: tuple[int, int] | None = None
        last: int | None = None
        step = 1
        for frame in self.frames(container, stream):
            if tags is None:
                tags = (int(frame.colorspace), int(frame.color_range or 0))
                rgb = frame_to_rgb(frame, *tags)
                info = _stream_info(self.source, container, stream, rgb, frame)
                step = max(1, round(1 / (info.fps * info.time_base)))
                self._put(("start", info))
            pts = frame.pts if frame.pts is not None else frame.dts
            if pts is None:
                pts = 0 if last is None else last + step
            if last is not None and pts <= last:
                self.dropped += 1
                continue
            last = int(pts)
            if not self._put((frame_to_rgb(frame, *tags), last)):
                return
        if tags is None:
            raise MediaError(f"{name}: the video stream has no decodable frame")
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


class _Encoder(threading.Thread):
    """Writes ``(hr (T, sH, sW, 3) uint8, pts)`` items from ``inp`` until ``_END``; records when the first
    frame reached the file (``first_at``, perf_counter) and any error."""

    def __init__(self, writer: VideoWriter, inp: queue.Queue[Any], header_first: bool):
        super().__init__(daemon=True, name="vsr-stream-encode")
        self.writer, self.inp = writer, inp
        #: Matroska and fragmented MP4 write the header at the first packet and the frame later (with the
        #: next cluster or fragment): the first frame is on disk when the file grows past the header
        self.header_first = header_first
        self._header_size: int | None = None
        self.first_at: float | None = None
        self.error: BaseException | None = None

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

    def run(self) -> None:
        try:
            while True:
                item = self.inp.get()
                if item is _END:
                    return
                hr, pts = item
                for i in range(len(pts)):  # frame by frame: each reaches the file as soon as it can
                    self.writer.write(hr[i : i + 1], pts[i : i + 1])
                    self._check_first()
        except BaseException as exc:
            self.error = exc


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
    w, h = info.width * opts.scale, info.height * opts.scale
    return VideoWriter(output, w, h, info.time_base, info.fps, codec=opts.codec, crf=opts.crf,
                       preset=opts.preset, source=info, overwrite=opts.overwrite, options=codec_opts,
                       atomic=False, container_options=container)


def _stream_info(source: str, container: av.container.InputContainer, s: Any, first: np.ndarray,
                 first_frame: av.VideoFrame) -> VideoInfo:
    """A VideoInfo for the stream (frames 0: unknown), from its first frame (``first``: it as RGB)."""
    rate = s.average_rate or s.codec_context.framerate or s.guessed_rate or 25
    return VideoInfo(
        path=source, width=first.shape[1], height=first.shape[0], frames=0, fps=Fraction(rate),
        time_base=Fraction(s.time_base or Fraction(1, 90000)), duration_s=0.0, codec=s.codec_context.name,
        pix_fmt=first_frame.format.name, bit_depth=8, color_range=int(first_frame.color_range or 0),
        color_primaries=int(first_frame.color_primaries), color_trc=int(first_frame.color_trc),
        colorspace=int(first_frame.colorspace), rotation=int(first_frame.rotation or 0),
        container=container.format.name,
    )


def stream_upscale(source: str, output: str | Path, opts: UpscaleOptions,
                   timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """Upscale stdin (``-``) or a URL to ``output`` (.mkv, .mp4/.mov fragmented, .ts), written as it grows.

    Returns input, output, model, frames_in, frames_out, width/height in and out, seconds, fps (frames out
    per second of the run), first_frame_s (start to the first output frame on disk), latency_frames (see the
    module docstring), chunk and padding (recurrent models), dropped_frames (non-increasing pts) and
    interrupted. ``timeout``: seconds a URL may take to open or to send more data.
    """
    from workers.upscaler import Upscaler, resolve_device

    started = time.perf_counter()
    output = Path(output)
    spec = _check(source, output, opts)
    try:
        device = resolve_device(opts.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    check_perf_options(spec, opts, device)
    plan = _plan(spec, opts)
    latency = latency_frames(spec, plan.core, plan.context)
    if opts.resume == "require":
        raise UsageError("--resume: a stream is read once and cannot be resumed")
    backbone = None if opts.backbone is None else get_spec(opts.backbone)
    name = "stdin" if source == "-" else source
    if source == "-":
        _check_stdin()
    stop = threading.Event()
    frames_q: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_FRAMES)
    hr_q: queue.Queue[Any] = queue.Queue(maxsize=2)
    writer: VideoWriter | None = None
    encoder: _Encoder | None = None
    decoder: _Decoder | None = None
    state = {"in": 0, "out": 0}
    interrupted = False
    failure: BaseException | None = None
    try:
        decoder = _Decoder(source, timeout, frames_q, stop, opts.on_corrupt)
        decoder.start()  # connects and decodes while the model loads
        upscaler = Upscaler(spec, opts.weights, opts.scale, str(device), 0, opts.batch, backbone,
                            opts.precision, opts.tile, opts.overlap, opts.compile,
                            reuse_memory=True)  # a stream is this process's one job (vsr_pipeline.heap)
        item = _get(frames_q)
        if isinstance(item, BaseException):
            raise item
        info = item[1]
        check_memory(info, opts.scale, opts.batch)
        writer = _writer(output, info, opts)
        encoder = _Encoder(writer, hr_q, header_first=output.suffix.lower() != ".ts")
        encoder.start()
        _model_loop(upscaler, spec, plan, frames_q, hr_q, encoder, state, opts)
    except KeyboardInterrupt:
        interrupted = True
    except BaseException as exc:
        failure = exc
    finally:
        stop.set()
        if encoder is not None:
            _finish_encoder(encoder, hr_q)
    if writer is None:
        _let_go(decoder)
        if interrupted:
            raise InterruptedJob("interrupted before the first frame; no output written")
        assert failure is not None
        raise failure
    frames_out = writer.frames_written
    encode_error = encoder.error if encoder is not None else None
    if frames_out == 0:
        writer.abort()
        _let_go(decoder)
        if interrupted:
            raise InterruptedJob("interrupted before the first frame was written; no output written")
        raise (failure or encode_error or MediaError(f"{name}: no frame was written"))
    try:
        writer.close()
    except VsrError as exc:
        failure = failure or exc
    if encoder is not None and encoder.first_at is None:  # the muxer held everything until the end
        encoder.first_at = time.perf_counter()
    _let_go(decoder)
    held = f"{output} holds the {frames_out} frames written so far and is playable"
    if interrupted:
        raise InterruptedJob(f"interrupted: {held}")
    if failure is not None or encode_error is not None:
        exc = failure or encode_error
        assert exc is not None
        if isinstance(exc, VsrError):
            raise type(exc)(f"{str(exc).splitlines()[0]}; {held}") from None
        raise exc
    seconds = time.perf_counter() - started
    assert encoder is not None and decoder is not None
    if decoder.dropped:
        log.warning("%s: %d frame(s) with non-increasing pts were dropped", name, decoder.dropped)
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
        "first_frame_s": round(encoder.first_at - started, 3) if encoder.first_at is not None else None,
        "latency_frames": latency,
        "chunk": plan.core if plan.whole else None,
        "padding": plan.context if plan.whole else None,
        "device": upscaler.device_name(),
        "dropped_frames": decoder.dropped,
        "bad_packets": decoder.bad_packets,
        "interrupted": False,
    }


def _let_go(decoder: _Decoder | None) -> None:
    """Give the decode thread a second to see the stop (it closes the input); one blocked in a read is a
    daemon and is left behind."""
    if decoder is not None and decoder.is_alive():
        decoder.join(timeout=1.0)


def _finish_encoder(encoder: _Encoder, hr_q: queue.Queue[Any]) -> None:
    """Hand the encoder its end marker and wait until it has written everything queued."""
    while encoder.is_alive():
        try:
            hr_q.put(_END, timeout=0.2)
            break
        except queue.Full:
            continue
    encoder.join()


def _model_loop(upscaler: Any, spec: ModelSpec, plan: _Plan, frames_q: queue.Queue[Any],
                hr_q: queue.Queue[Any], encoder: _Encoder, state: dict[str, int],
                opts: UpscaleOptions) -> None:
    """Take LR frames as they come, upscale every core range whose context has arrived, hand HR frames on.

    ``buf`` holds frames ``base .. received - 1``; ``done`` is the next output frame to compute.
    """
    from tqdm import tqdm

    buf: list[np.ndarray] = []
    pts: list[int] = []
    base = done = 0
    eof = False
    with tqdm(unit="frame", file=sys.stderr, disable=not opts.progress, dynamic_ncols=True,
              desc=f"{spec.name} x{opts.scale} (stream)") as bar:
        while True:
            received = base + len(buf)
            stop = _ready(plan, done, received, eof)
            if stop <= done:
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
            if encoder.error is not None:
                raise encoder.error
            first = max(0, done - plan.context)
            last = min(received, stop + plan.context)
            window = np.stack(buf[first - base : last - base])
            hr = upscaler.process(slice(0, last - first), slice(done - first, stop - first), window)
            _put(hr_q, (hr, pts[done - base : stop - base]), encoder)
            bar.update(stop - done)
            state["out"] += stop - done
            done = stop
            drop = max(0, done - plan.context) - base
            if drop > 0:
                del buf[:drop], pts[:drop]
                base += drop


def _ready(plan: _Plan, done: int, received: int, eof: bool) -> int:
    """End (exclusive) of the core frames that can be computed now, starting at ``done``."""
    if eof:
        return min(received, done + plan.core)
    if plan.whole:
        return done + plan.core if received >= done + plan.core + plan.context else done
    return max(done, min(received - plan.context, done + plan.core))


def _get(q: queue.Queue[Any]) -> Any:
    """``q.get()`` in short waits, so Ctrl-C is seen at once."""
    while True:
        try:
            return q.get(timeout=0.2)
        except queue.Empty:
            continue


def _put(q: queue.Queue[Any], item: Any, encoder: _Encoder) -> None:
    while True:
        if encoder.error is not None:
            raise encoder.error
        if not encoder.is_alive():
            raise RuntimeError("the encode thread stopped")
        try:
            q.put(item, timeout=0.2)
            return
        except queue.Full:
            continue


__all__ = ["STREAM_OUTPUTS", "is_stream_source", "latency_frames", "stream_upscale"]
