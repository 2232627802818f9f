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
Output pts are the input's (in the input stream's time base, rescaled by the muxer), the start offset too:
fragmented MP4 writes its header with the first fragment (``delay_moov``), so its edit lists keep where each
track starts (before, its timeline started at 0, which would have put copied audio out of step).

End of stream flushes everything. Ctrl-C (or SIGTERM through the CLI) stops reading, finishes the output up to
the last frame computed, and raises ``InterruptedJob`` saying how many frames the playable file holds.
Audio is copied packet for packet as the video reaches its time (``media.live_copy``; after a reopened URL
with the same shift as its frames); subtitles are not copied (a warning says so).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from models.registry import ModelSpec
from vsr_pipeline.errors import InterruptedJob, UsageError, VsrError
from vsr_pipeline.media import MediaError, VideoInfo, VideoWriter
from vsr_pipeline.media.hdr_metadata import hdr_report
from vsr_pipeline.media.ingest import timestamp_warnings
from vsr_pipeline.options import (
    DEFAULT_BATCH,
    UpscaleOptions,
    check_input,
    check_options,
    check_paths,
    check_perf_options,
    concrete_batch,
    output_format,
)
from vsr_pipeline.plan import LivePolicy, live_policy
from vsr_pipeline.scheduler import ChunkWork, run_chunks
from vsr_pipeline.stream_source import END, StreamDecoder, check_stdin, is_stream_source, redact_url

log = logging.getLogger(__name__)

#: Output containers that can be written as they grow.
STREAM_OUTPUTS = {".mkv": "matroska", ".mp4": "mp4", ".mov": "mov", ".ts": "mpegts"}
FRAGMENTED_MP4 = "frag_keyframe+empty_moov+delay_moov+default_base_moof"
#: LR frames the decode thread may hold ahead of the model.
QUEUE_FRAMES = 32
#: Seconds a URL may take to open and, later, to deliver more data.
DEFAULT_TIMEOUT = 10.0



def _check(source: str, output: Path, opts: UpscaleOptions) -> ModelSpec:
    """The job's option checks (``check_options``) plus a stream's own, before anything is opened
    (UsageError, one line)."""
    if opts.align:
        raise UsageError("--align is not available for streams (use a file input)")
    if opts.resume == "require":
        raise UsageError("--resume: a stream is read once and cannot be resumed")
    if opts.decimate:
        raise UsageError("--decimate takes a file: a stream's cycles of five frames are not known ahead")
    if opts.sequences > 1:
        raise UsageError("--sequences: a stream runs each chunk as soon as it arrives, one at a time (use a "
                         "file input)")
    if opts.start is not None:
        raise UsageError("--start takes a file; a stream is upscaled from the moment it is read (--end T "
                         "stops it T seconds after its first frame)")
    spec = check_options(opts)
    if output.suffix.lower() not in STREAM_OUTPUTS:
        raise UsageError(f"output {output}: a stream is written progressively to "
                         f"{', '.join(STREAM_OUTPUTS)}, not {output.suffix or 'a folder'}")
    check_paths(Path(source), output, opts.overwrite)
    from vsr_pipeline.manifest import check_manifest_free

    check_manifest_free(output, opts.overwrite)
    return spec


class _ProgressiveEncoder:
    """The stream's encoder for the executor: ``write_segment`` writes a chunk's HR frames into the one
    growing output, frame by frame (each reaches the file as soon as it can), and records when the first frame
    reached the file (``first_at``, perf_counter)."""

    def __init__(self, writer: VideoWriter, header_first: bool, cut: tuple[int, ...] | None = None):
        self.writer = writer
        self.cut = cut  # HR (x, y, width, height) of the output in the frames (``--crop``'s context dropped)
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
        if self.cut is not None:
            x, y, w, h = self.cut
            frames = np.ascontiguousarray(frames[:, y : y + h, x : x + w])
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
    if opts.codec in ("libx264", "libx265"):  # live: no B-frames to wait for; --tune grain: grain,zerolatency
        tunes = [t for t in (opts.tune or "").split(",") if t and t != "zerolatency"]
        codec_opts["tune"] = ",".join([*tunes, "zerolatency"])
    return opts.encode_settings().open_writer(output, info.width * opts.scale, info.height * opts.scale, info,
                                              overwrite=opts.overwrite, options=codec_opts, atomic=False,
                                              container_options=container, trim_copied_streams=True)


def stream_upscale(source: str, output: str | Path, opts: UpscaleOptions,
                   timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """Upscale stdin (``-``) or a URL to ``output`` (.mkv, .mp4/.mov fragmented, .ts), written as it grows.

    Returns input, output, model, frames_in, frames_out, width/height in and out, seconds, fps (frames out
    per second of the run), first_frame_s (start to the first output frame on disk), latency_frames (see the
    module docstring), chunk and padding (recurrent models), timestamps_repaired (frames whose pts was
    missing, repeated or went backwards), deinterlaced, bit_depth (of the output: 10 for a deeper source),
    bad_packets, repeated_frames (lost frames the previous one stood in for), reopened (times a URL whose
    reading failed was opened again and read on: ``opts.retries`` at most), interrupted and manifest
    (``OUTPUT.vsr.json``: ``vsr_pipeline.manifest.write_stream_manifest``). ``timeout``:
    seconds a URL may take to open or to send more data.
    """
    from vsr_pipeline.engine import Engine, resolve_device
    from vsr_pipeline.executors import LocalExecutor, engine_thread
    from vsr_pipeline.heap import single_arena

    started, started_epoch = time.perf_counter(), time.time()
    output = Path(output)
    spec = _check(source, output, opts)
    try:
        device = resolve_device(opts.device)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    check_perf_options(spec, opts, device)
    policy = live_policy(spec.temporal, spec.radius, concrete_batch(opts.batch), opts.chunk, opts.padding,
                         spec.default_padding)
    shown = redact_url(source)  # a camera URL's password is never shown, logged or recorded
    name = "stdin" if source == "-" else shown
    if source == "-":
        check_stdin()
    single_arena()  # before any thread starts: the engine's thread keeps its buffers (vsr_pipeline.heap)
    stop = threading.Event()
    frames_q: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_FRAMES)
    writer: VideoWriter | None = None
    sink: _ProgressiveEncoder | None = None
    executor: LocalExecutor | None = None
    upscale = engine_thread()  # the engine is built and run on this one thread
    decoder: StreamDecoder | None = None
    state = {"in": 0}
    interrupted = False
    failure: BaseException | None = None
    try:
        decoder = StreamDecoder(source, timeout, frames_q, stop, opts.on_corrupt, opts.deinterlace,
                                reopens=opts.retries, deep=opts.bit_depth != 8,
                                crop=tuple(opts.crop) if opts.crop else None, end=opts.end,
                                field_match=opts.field_match)
        decoder.start()  # connects and decodes while the model loads
        # a stream is this process's one job: freed buffers serve the next chunk (vsr_pipeline.heap)
        building = upscale.submit(Engine.from_settings, opts.model_settings(), spec=spec, device=str(device),
                                  threads=opts.threads, reuse_memory=True)
        item = _get(frames_q)
        if isinstance(item, BaseException):
            raise item
        seen = item[1]  # the frames the model sees; the output's are the crop's, without its context
        s = opts.scale
        cut = tuple(v * s for v in decoder.cut) if decoder.cut else None
        info = replace(seen, width=decoder.cut[2], height=decoder.cut[3]) if decoder.cut else seen
        opts = output_format(opts, info, output)  # auto bits: the source's
        check_input(seen, opts.scale, opts.bit_depth)
        engine = building.result()
        upscale.submit(engine.configure, **{**engine.base, "bit_depth": opts.bit_depth}).result()
        writer = _writer(output, info, opts)
        writer.copy_live(decoder.tap)  # the stream's audio, muxed as the video reaches its time
        sink = _ProgressiveEncoder(writer, header_first=output.suffix.lower() != ".ts", cut=cut)
        executor = LocalExecutor(engine, sink, upscale)
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
        else:
            upscale.shutdown(wait=True, cancel_futures=True)
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
    for line in timestamp_warnings({"repaired": ts.repaired, "first": ts.first, "step": ts.step,
                                    "renumbered": decoder.renumbered,
                                    "renumbered_first": decoder.renumbered_first}, info.time_base):
        log.warning("%s: %s", name, line)
    result = {
        "input": shown,
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
        "batch": engine.batch,
        "batch_reason": f"--batch {opts.batch}" if opts.batch is not None else
        f"live stream: the default {DEFAULT_BATCH}, no timed probe",
        "timestamps_repaired": decoder.timestamps.repaired,
        "timestamps_renumbered": decoder.renumbered,
        "deinterlaced": decoder.deinterlaced,
        "field_matched": decoder.deinterlaced and decoder.field_match,
        "bit_depth": writer.bit_depth,
        "pix_fmt": writer.pix_fmt,
        "bad_packets": decoder.bad_packets,
        "repeated_frames": decoder.repeated,
        "concealed_frames": decoder.concealed,  # decoded from damaged data, repaired by the decoder
        "resized_frames": decoder.resized,  # of another size than the stream's first, scaled to it
        "reopened": decoder.reopened,
        "audio": writer.audio,  # per source audio stream: written_as copy / the codec re-encoded as / None
        "crop": list(decoder.crop) if decoder.crop else None,  # [W, H, X, Y] as displayed (--crop)
        "hdr": hdr_report(info.hdr, opts.codec),  # the input's HDR10 metadata, and whether it was written
        "end": opts.end,  # --end: read up to that many seconds after the first frame
        "reached_end": decoder.reached_end,
        "interrupted": False,
    }
    from vsr_pipeline.manifest import write_stream_manifest

    pipe = decoder.pipe
    read = {"sha256": pipe.sha256.hexdigest(), "bytes": pipe.bytes} if pipe is not None else None
    result["manifest"] = str(write_stream_manifest(shown, output, opts, result, read, decoder.mapping,
                                                   started_epoch, time.time()))
    return result


def _let_go(decoder: StreamDecoder | None) -> None:
    """Give the decode thread a second to see the stop (it closes the input); one blocked in a read is a
    daemon and is left behind. An input held for its audio's parameters is closed."""
    if decoder is not None and decoder.is_alive():
        decoder.join(timeout=1.0)
    if decoder is not None and not decoder.is_alive():
        decoder.tap.release()


def _live_chunks(frames_q: queue.Queue[Any], policy: LivePolicy, state: dict[str, int]
                 ) -> Iterator[ChunkWork]:
    """The stream as chunk work, each chunk as soon as the frames it needs have arrived. Where the source
    fails, the frames received before are still chunked (as at the stream's end), then its error is raised.

    ``buf`` holds frames ``base .. received - 1`` (what later chunks still need as context); ``done`` is the
    next output frame."""
    buf: list[np.ndarray] = []
    pts: list[int] = []
    base = done = index = 0
    eof = False
    failed: BaseException | None = None
    while True:
        c = policy.next_chunk(index, done, base + len(buf), eof)
        if c is None:
            if failed is not None:
                raise failed
            if eof:
                return
            item = _get(frames_q)
            while True:
                if item is END:
                    eof = True
                    break
                if isinstance(item, BaseException):  # the source failed (a dropped camera): the frames
                    failed, eof = item, True          # received still go out as the last chunks, then it
                    break
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
