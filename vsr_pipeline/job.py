"""One upscale job of a file or image folder: probe, plan chunks, run them on Ray actors, join the output.

``upscale`` is the whole job; ``plan_job`` + ``run_job`` are its two halves, which ``vsr batch`` calls for
each of its videos with one upscaler pool shared by all of them. The chunks go through the one scheduler
(``vsr_pipeline.scheduler``) on a ``RayExecutor``: Decoder -> [Motion -> Aligner] -> Upscaler -> Encoder,
each stage receiving object references from the one before. A ledger beside the output records every
finished segment (``vsr_pipeline.ledger``), so a rerun with the same settings redoes only the others, and the
output appears under its name only when it is complete.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from models.registry import ModelSpec, resolve_weights
from vsr_pipeline.cluster import ray_session, reporting_errors, restart_policy
from vsr_pipeline.errors import InterruptedJob, UsageError
from vsr_pipeline.job_result import UpscaleResult
from vsr_pipeline.media import MediaError, VideoInfo, probe
from vsr_pipeline.media.crop import output_offset
from vsr_pipeline.media.decimate import output_rate
from vsr_pipeline.media.hdr_metadata import hdr_report
from vsr_pipeline.media.ingest import timestamp_warnings
from vsr_pipeline.media.output_names import is_video_path
from vsr_pipeline.media.trim import Span
from vsr_pipeline.options import (
    UpscaleOptions,
    check_input,
    check_options,
    check_paths,
    check_perf_options,
    chunks_per_pass,
    concrete_batch,
    crop_input,
    output_format,
    trim_input,
)
from vsr_pipeline.plan import Chunk, machine_memory, plan_chunks, spec_chunk
from vsr_pipeline.scheduler import ChunkWork, decoded_chunks, run_chunks

log = logging.getLogger(__name__)


@dataclass
class JobPlan:
    """A checked, probed and chunked job: everything ``run_job`` needs besides the workers."""

    input_path: Path
    output: Path
    opts: UpscaleOptions
    spec: ModelSpec
    info: VideoInfo
    chunk: int
    padding: int
    chunks: list[Chunk]
    #: why ``opts.precision`` and ``opts.batch`` are what they are (``auto`` is resolved by
    #: ``resolve_auto_settings``)
    precision_reason: str = ""
    batch_reason: str = ""
    #: torch threads of the CPU upscaler (0: every core / not decided) and why (``autotune.choose_threads``)
    threads: int = 0
    threads_reason: str = ""
    #: the part of the input ``--start``/``--end`` select (None: all of it)
    span: Span | None = None
    #: the frames the model sees (None: ``info``'s; with ``--crop``, the region and its context), and where
    #: the region's HR pixels lie in its HR frames (None: all of them)
    model_info: VideoInfo | None = None
    cut: tuple[int, int] | None = None

    @property
    def seen(self) -> VideoInfo:
        """The frames the model sees (``model_info``, else ``info``)."""
        return self.model_info or self.info


def resolve_auto_settings(plan: JobPlan, device: Any) -> JobPlan:
    """``plan`` with ``precision auto``, ``batch auto`` and the upscaler's threads decided for this machine
    at the input's frame size (``vsr_pipeline.autotune``: hardware, then cached timed probes, in that order);
    forced values are kept. Resuming an unfinished job keeps what its ledger recorded for an ``auto``."""
    from vsr_pipeline.autotune import candidates, choose_batch, choose_job_threads, choose_precision
    from vsr_pipeline.ledger import recorded_setting
    from workers.encoder import segment_suffix

    opts = plan.opts
    forced = device.type != "cuda" and opts.threads > 0
    threads = 0 if device.type == "cuda" else opts.threads or os.cpu_count() or 1  # as the upscaler runs
    resuming = opts.resume != "never"
    earlier = recorded_setting(plan.output, "precision") if opts.precision == "auto" and resuming else None
    if isinstance(earlier, str) and earlier in candidates(plan.spec, device)[0]:
        precision, reason = earlier, "kept from the unfinished run this one resumes (its ledger)"
    else:
        precision, reason = choose_precision(opts.model_settings(), device, plan.seen.width, plan.seen.height,
                                             plan.spec, threads)
    if opts.precision == "auto":
        log.info("precision auto -> %s (%s)", precision, reason)
    opts = replace(opts, precision=precision)
    earlier = recorded_setting(plan.output, "batch") if opts.batch is None and resuming else None
    if isinstance(earlier, int) and earlier >= 1:
        batch, batch_reason = earlier, "kept from the unfinished run this one resumes (its ledger)"
    else:
        batch, batch_reason = choose_batch(opts.model_settings(), device, plan.seen.width, plan.seen.height,
                                           plan.spec, threads)
    if opts.batch is None:
        log.info("batch auto -> %d (%s)", batch, batch_reason)
    opts = replace(opts, batch=batch)
    earlier = recorded_setting(plan.output, "threads", "extra") if resuming and not forced else None
    if forced:
        threads_reason = f"--threads {threads}"
    elif device.type != "cuda" and isinstance(earlier, int) and earlier >= 1:
        threads, threads_reason = earlier, "kept from the unfinished run this one resumes (its ledger)"
    else:
        threads, threads_reason = choose_job_threads(opts.model_settings(), device, plan.input_path,
                                                     plan.seen, opts.encode_settings(),
                                                     segment_suffix(plan.output), plan.spec)
    log.info("upscaler threads -> %s (%s)", threads or "default", threads_reason)
    return replace(plan, opts=opts, precision_reason=reason, batch_reason=batch_reason, threads=threads,
                   threads_reason=threads_reason)


def plan_job(
    input_path: str | Path,
    output: str | Path,
    opts: UpscaleOptions,
    device: Any,
    spec: ModelSpec | None = None,
    sharing: int = 1,
) -> JobPlan:
    """Check ``opts`` (unless ``spec``, what ``check_options`` returned, says that is done) and the paths,
    probe the input, size and plan its chunks (nothing is started); ``sharing`` upscalers share this
    machine's memory (``vsr batch --upscalers``)."""
    input_path, output = Path(input_path), Path(output)
    spec = check_options(opts) if spec is None else spec
    check_paths(input_path, output, opts.overwrite)
    from vsr_pipeline.manifest import check_manifest_free

    check_manifest_free(output, opts.overwrite)
    check_perf_options(spec, opts, device)
    source = probe(input_path, fps=opts.fps)
    if opts.decimate and source.is_image_folder:
        raise UsageError(f"--decimate: {input_path} is a folder of pictures, which have no fields to match")
    info, seen, opts = crop_input(source, opts)  # the output's frames, and the model's (a crop's context)
    info, opts, span = trim_input(info, opts)
    seen = replace(seen, frames=info.frames, duration_s=info.duration_s)
    cut = output_offset(opts.crop, opts.crop_context, source.width, source.height, source.rotation,
                        opts.scale) if opts.crop and opts.crop_context else None
    opts = output_format(opts, info, output)  # auto bit depth and chroma are decided here
    check_input(seen, opts.scale, opts.bit_depth)
    if is_video_path(output):  # a codec/container/setting that cannot work fails now, naming the output
        from workers.encoder import check_encoder
        check_encoder(output, info, opts.scale, opts.encode_settings())
    padding = spec.default_padding if opts.padding is None else opts.padding
    chunk = opts.chunk or _default_chunk(output, opts, spec, seen, padding, device, sharing)
    return JobPlan(input_path, output, opts, spec, info, chunk, padding,
                   plan_chunks(info.frames, chunk, padding), span=span, model_info=seen, cut=cut)


def _default_chunk(output: Path, opts: UpscaleOptions, spec: ModelSpec, info: VideoInfo, padding: int,
                   device: Any, sharing: int) -> int:
    """The chunk when ``--chunk`` is not given: what an unfinished run of this job recorded (its finished
    chunks stay valid), else :func:`vsr_pipeline.plan.default_chunk` for this machine's memory (the floor
    on a joined cluster, whose upscalers' memory is not known here)."""
    from vsr_pipeline.ledger import recorded_setting

    earlier = recorded_setting(output, "chunk") if opts.resume != "never" else None
    if isinstance(earlier, int) and earlier >= 1:
        return earlier
    memory = None if opts.address else machine_memory(device.type)
    # a forward pass of several sequences holds that many chunks' activations
    sharing *= chunks_per_pass(spec, opts.sequences)
    chunk = spec_chunk(spec, info.width, info.height, info.frames, padding, memory, sharing)
    log.debug("chunk %d core frames (padding %d, memory %s)", chunk, padding, memory)
    return chunk


def job_settings(
    spec: ModelSpec, opts: UpscaleOptions, info: VideoInfo, chunk: int, padding: int, device: str
) -> dict[str, Any]:
    """What made a job's segments: the ledger reuses them only when every one of these is equal."""
    from vsr_pipeline.ledger import file_sha256, input_fingerprint
    from vsr_pipeline.manifest import segment_software
    from vsr_pipeline.precision import resolved_precision

    weights = resolve_weights(spec.name, opts.weights, opts.scale)
    return {
        "model": spec.name,
        "weights": opts.weights or spec.default_weights,
        "weights_sha256": file_sha256(weights) if weights is not None else None,
        "scale": opts.scale,
        "backbone": opts.backbone,
        "align": opts.align,
        "aligned_dtype": opts.aligned_dtype if opts.align else None,
        "batch": concrete_batch(opts.batch),
        # segments made in another precision or tiling differ slightly; "auto" is recorded as what it
        # resolves to, so a CLI run (auto) and an API run (fp32) that compute the same way share segments
        "precision": resolved_precision(opts.precision, device, spec.name),
        "tile": [opts.tile, opts.overlap] if opts.tile else None,
        "device": device,
        "codec": opts.codec, "crf": opts.crf, "preset": opts.preset,
        **({"tune": opts.tune} if opts.tune else {}),  # absent: the encoder's own default
        **({"bit_depth": opts.bit_depth} if (opts.bit_depth or 8) > 8 else {}),  # absent: 8, as before it
        **({"chroma": opts.chroma} if opts.chroma not in (None, "420") else {}),  # absent: 4:2:0 or PNGs
        **({"codec_options": list(opts.codec_options)} if opts.codec_options else {}),
        "chunk": chunk,
        "padding": padding,
        "fps": str(opts.fps) if opts.fps is not None else None,
        "on_corrupt": opts.on_corrupt,
        "frames": info.frames,
        "input": input_fingerprint(info.path),
        # only for interlaced inputs, so ledgers of progressive ones made before the flag still match
        **({"deinterlace": opts.deinterlace} if info.interlaced else {}),
        **({"field_match": True} if opts.field_match else {}),  # only with it: older ledgers still match
        **({"decimate": True} if opts.decimate else {}),
        # only with a crop, so ledgers made before the option still match
        **({"crop": list(opts.crop), "crop_context": list(opts.crop_context or ())} if opts.crop else {}),
        **({"hdr": info.hdr.to_json()} if info.hdr else {}),  # its segments carry it (before: not)
        **({"start": opts.start, "end": opts.end, "span": list(opts.span)} if opts.span else {}),
        # only where chunks run as several sequences (rounding differs from one at a time), likewise
        **({"sequences": opts.sequences} if chunks_per_pass(spec, opts.sequences) > 1 else {}),
        "software": segment_software(),
    }


def upscale(input_path: str | Path, output: str | Path, opts: UpscaleOptions | None = None) -> UpscaleResult:
    """Upscale a video file or image folder to ``output`` (video file or PNG folder).

    Resumable: finished chunks are recorded in a ledger beside the output (``vsr_pipeline.ledger``) and
    a rerun with the same settings and input redoes only the others. A chunk whose upscaling or encoding
    fails (exception, or a worker process that dies) is retried ``opts.retries`` times.
    """
    from vsr_pipeline.engine import resolve_device
    from vsr_pipeline.upscaler_pool import Placement, UpscalerPool

    opts = opts or UpscaleOptions()
    spec = check_options(opts)  # option errors before device errors
    device = resolve_device(opts.device)
    plan = resolve_auto_settings(plan_job(input_path, output, opts, device, spec), device)
    opts = plan.opts
    gpu = device.type == "cuda"
    cpus = os.cpu_count() or 1
    # On the CPU the one upscaler takes a slot but runs on every core: the decoder and encoder are mostly idle
    # while the model runs. With alignment on a GPU the three torch stages share it (fractions summing to 1).
    placement = Placement(1, 0 if gpu else 1, (0.5 if opts.align else 1.0) if gpu else 0,
                          0 if gpu else plan.threads or cpus)

    def start_pool() -> UpscalerPool:
        return UpscalerPool.start(plan.spec, placement, opts.model_settings(), str(device),
                                  restart_policy(opts.retries))

    return run_job(plan, device.type, start_pool)


def run_job(
    plan: JobPlan,
    device_type: str,
    pool: Any,
    cancel: threading.Event | None = None,
    on_chunk: Callable[[int], None] | None = None,
) -> UpscaleResult:
    """Run a planned job: its own decoder, encoder (idle ones an earlier job left, or new) and motion/aligner
    actors, upscalers from ``pool`` (an ``UpscalerPool`` shared with other jobs, or a function that starts
    one for this job alone). ``cancel`` set by another thread stops the job like Ctrl-C; ``on_chunk(frames)``
    is called as each chunk is recorded. Ray must be running when ``pool`` is shared."""
    import ray

    from vsr_pipeline.executors import (
        RayExecutor,
        finish_encoder,
        run_decoding,
        start_decoders,
        start_encoder,
    )
    from vsr_pipeline.ledger import Ledger
    from vsr_pipeline.precision import resolved_precision
    from workers.aligner import Aligner
    from workers.encoder import SegmentTarget, join_segments
    from workers.motion import Motion

    opts, spec, info, chunks = plan.opts, plan.spec, plan.info, plan.chunks
    input_path, output = plan.input_path, plan.output
    encode = opts.encode_settings()
    started, started_epoch = time.perf_counter(), time.time()
    settings = job_settings(spec, opts, info, plan.chunk, plan.padding, device_type)
    ledger = Ledger.open(output, settings, opts.resume)
    if plan.threads:  # not a setting (segments stay valid), but a resume keeps it: the same rounding
        ledger.extra["threads"] = plan.threads
    resumed = len(ledger.done)
    todo = {c.index for c in chunks} - set(ledger.done)
    stats: dict[str, int] = {"computed": 0, "computed_frames": 0, "retries": 0}
    own_pool = callable(pool)
    model_seconds: float | None = None
    busy: list[dict[str, Any]] = []

    def record(work: ChunkWork, result: tuple[str | None, int]) -> None:
        c = work.chunk
        ledger.record(c.index, c.start, c.stop, *result)
        if on_chunk is not None:
            on_chunk(c.core)

    def run(executor: RayExecutor, decoders: Any, todo: set[int]) -> tuple[Any, Any]:
        """The chunks in ``todo``, then the decoders' reports (every frame is decoded each run)."""
        run_chunks(
            decoded_chunks(chunks, todo, plan.chunk, decoders, info.frames), executor,
            max_inflight=opts.max_inflight, retries=opts.retries, on_done=record, cancel=cancel,
            progress=opts.progress, total=info.frames, stats=stats,
            initial=sum(c.core for c in chunks if c.index not in todo), desc=f"{opts.model} x{opts.scale}")
        return decoders.corrupt(), decoders.timestamps()

    # kept for the next job (``warm_actors``) where Ray outlives the job and it ends well; else killed
    ended_well = False
    keep_ray = ray.is_initialized()
    try:
        with ray_session(opts.address):
            gpu = device_type == "cuda"
            cpus = os.cpu_count() or 1
            restarts = restart_policy(opts.retries)
            gpu_share = (0.5 if opts.align else 1.0) if gpu else 0
            stage_device = "auto" if gpu else "cpu"  # resolved on the actor's own node
            upscalers = pool() if own_pool else pool
            decoders = start_decoders(info, plan.chunk, opts.read_settings(), opts.decoders)
            stages, motion, aligner = [], None, None
            if opts.align:
                motion = ray.remote(num_cpus=0, num_gpus=gpu_share / 2, **restarts)(
                    reporting_errors(Motion)
                ).remote(opts.align, spec.radius, stage_device, 0 if gpu else cpus)
                aligner = ray.remote(num_cpus=0, num_gpus=gpu_share / 2, **restarts)(
                    reporting_errors(Aligner)
                ).remote(spec.radius, opts.aligned_dtype, stage_device, 0 if gpu else max(1, cpus // 2))
                stages += [motion, aligner]
            out_info = replace(info, fps=output_rate(info.fps)) if opts.decimate else info  # writers' rate
            target = SegmentTarget(str(output), out_info, opts.scale, encode, str(ledger.segments), plan.cut)
            encoder, encoder_ready = start_encoder(target, restarts)
            try:
                # Waited for at the first chunk's submission, after its decode was asked for: the first
                # decode overlaps the upscaler's start-up (torch import, weights) instead of following it.
                ready = [*(upscalers.ready() if own_pool else []), *(a.ready.remote() for a in stages),
                         encoder_ready]
                log.debug("workers starting: %d of %d chunk(s) to compute", len(todo), len(chunks))
                executor = RayExecutor(upscalers, encoder, target, motion, aligner, ready=ready,
                                       sequences=chunks_per_pass(spec, opts.sequences),
                                       bit_depth=opts.bit_depth)
                (corrupt, timestamps), restarts_d = run_decoding(
                    lambda d, todo: run(executor, d, todo), decoders,
                    lambda: {c.index for c in chunks} - set(ledger.done), opts.retries)
                stats["retries"] += restarts_d  # after the call: the runs add to stats as they go
                executor.wait_ready()  # when nothing was submitted (every chunk resumed): errors still count
                device_name = upscalers.device_name()
                if own_pool:
                    busy = [s for s in upscalers.stats() if s["first"] is not None]
                    model_seconds = round(sum(float(s["busy_s"]) for s in busy), 3)
                ended_well = True
            finally:
                for actor in stages:
                    ray.kill(actor)
                decoders.finish(keep=keep_ray and ended_well)
                finish_encoder(encoder, restarts, keep=keep_ray and ended_well)
                if own_pool:
                    upscalers.finish(keep=keep_ray and ended_well)
        ledger.extra["corrupt"] = _merge_corrupt(ledger.extra.get("corrupt", []), corrupt)
        ledger.save()
        done = [ledger.done[c.index] for c in chunks]
        segments = [ledger.segments / d["file"] for d in done if d["file"] is not None]
        frames_out = sum(d["frames"] for d in done)
        if not segments:
            raise MediaError(f"{input_path}: every frame was skipped as undecodable; no output written")
        streams = join_segments(output, segments, info, opts.overwrite, plan.span)
    except KeyboardInterrupt:
        _keep_if_useful(ledger)
        raise InterruptedJob(
            f"interrupted: {len(ledger.done)} of {len(chunks)} chunks are done; run the same command again "
            f"to resume"
        ) from None
    except BaseException:
        _keep_if_useful(ledger)
        raise
    concealed = [c for c in ledger.extra["corrupt"] if c.get("concealed")]
    corrupt = [c for c in ledger.extra["corrupt"] if not c.get("concealed")]
    ledger.remove()
    if corrupt:
        log.warning(
            "%s: %d frame(s) could not be decoded (%s): %s", input_path, len(corrupt),
            "left out" if opts.on_corrupt == "skip" else "previous frame repeated",
            _where(corrupt),
        )
    if concealed:
        log.warning("%s: %d frame(s) were decoded from damaged data, repaired by the decoder from the "
                    "pictures around them: %s", input_path, len(concealed), _where(concealed))
    for line in timestamp_warnings(timestamps, info.time_base):
        log.warning("%s: %s", input_path, line)
    left_out = {int(c["index"]) for c in corrupt} if opts.on_corrupt == "skip" else set()
    expected = info.frames - len(left_out | set(timestamps["decimated"]))
    if frames_out != expected:
        raise RuntimeError(f"wrote {frames_out} frames but expected {expected}")
    seconds = time.perf_counter() - started
    # the job's length by the monotonic clock: a wall-clock step while it ran (seen on these VMs: 53 s in a
    # 5.6 s job) would otherwise put it into the manifest's started..ended
    ended_epoch = started_epoch + seconds
    result = UpscaleResult(
        input=str(input_path),
        output=str(output),
        model=spec.name,
        weights=opts.weights or spec.default_weights,
        backbone=opts.backbone,
        align=opts.align,
        device=device_name,
        frames_in=info.frames,
        frames_out=frames_out,
        width_in=info.width,
        height_in=info.height,
        width_out=info.width * opts.scale,
        height_out=info.height * opts.scale,
        fps_in=float(info.fps) if info.fps else 0.0,
        chunk=plan.chunk,
        padding=plan.padding,
        chunks=len(chunks),
        seconds=round(seconds, 3),
        fps=round(stats["computed_frames"] / seconds, 3) if seconds > 0 else 0.0,
        chunks_resumed=resumed,
        chunks_computed=stats["computed"],
        retries=stats["retries"],
        on_corrupt=opts.on_corrupt,
        corrupt_frames=len(corrupt),
        corrupt=corrupt[:100],
        concealed_frames=len(concealed),
        concealed=[{k: c[k] for k in ("index", "pts", "time_s")} for c in concealed[:100]],
        timestamps_repaired=timestamps["repaired"],
        timestamps_renumbered=timestamps["renumbered"],
        deinterlaced=timestamps["deinterlaced"],
        field_matched=timestamps["field_matched"],
        decimated_frames=len(timestamps["decimated"]),
        bit_depth=opts.bit_depth or 8,
        pix_fmt=encode.pix_fmt_for(info, info.width * opts.scale, info.height * opts.scale)
        if is_video_path(output) else None,
        model_seconds=model_seconds,
        # actors' epoch clocks against the driver's: exact on one node, good to the clock skew across nodes
        model_head_s=round(min(float(s["first"]) for s in busy) - started_epoch, 3) if busy else None,
        model_tail_s=round(ended_epoch - max(float(s["last"]) for s in busy), 3) if busy else None,
        precision=resolved_precision(opts.precision, device_type, spec.name),
        precision_reason=plan.precision_reason or None,
        batch=opts.batch,
        batch_reason=plan.batch_reason or None,
        threads=plan.threads or None,
        threads_reason=plan.threads_reason or None,
        audio=streams["audio"],
        subtitles=streams["subtitles"],
        attachments=streams.get("attachments", []),
        crop=list(opts.crop) if opts.crop else None,
        trim={"start": opts.start, "end": opts.end, "first_frame": opts.span[0], "stop_frame": opts.span[1]}
        if opts.span else None,
        hdr=hdr_report(info.hdr, opts.codec if is_video_path(output) else None),
    )
    from vsr_pipeline.manifest import write_job_manifest

    path, result.quality = write_job_manifest(input_path, output, opts, info, settings, result.to_json(),
                                              corrupt, started_epoch, ended_epoch,
                                              timestamps["decimated"] if opts.decimate else None)
    result.manifest, result.report_seconds = str(path), round(time.perf_counter() - started - seconds, 3)
    return result


def _keep_if_useful(ledger: Any) -> None:
    """After a failure: keep the job folder when it holds finished chunks (to resume), else remove it."""
    if ledger.done:
        ledger.release()
    else:
        ledger.remove()


def _merge_corrupt(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_index = {c["index"]: c for c in old}
    by_index.update({c["index"]: c for c in new})
    return [by_index[k] for k in sorted(by_index)]


def _where(corrupt: list[dict[str, Any]]) -> str:
    """``frame 7 (0.280 s), ...`` for the first few."""
    parts = [
        f"frame {c['index']}" + (f" ({c['time_s']:.3f} s)" if c.get("time_s") is not None else "")
        for c in corrupt[:5]
    ]
    return ", ".join(parts) + (f" and {len(corrupt) - 5} more" if len(corrupt) > 5 else "")
