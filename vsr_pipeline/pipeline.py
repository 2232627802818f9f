"""The upscale job: probe, plan chunks, stream them through Decoder -> Upscaler -> Encoder actors.

With ``--align ESTIMATOR`` (window models only) two stages sit before the upscaler:
Decoder -> Motion (flow from every neighbour to each window's centre) -> Aligner (warped, pre-aligned
windows) -> Upscaler. Each stage receives object references from the previous one; the driver only
passes references along.

Frames cross actors as uint8 batches in Ray's object store. Decode batches are fixed-size
(``chunk`` frames) and each chunk's window references the batches it overlaps, so padding
frames are decoded once and shared, never re-decoded. At most ``max_inflight`` chunks are
in flight; the encoder receives chunks in order (Ray runs one caller's calls to an actor in
submission order), and the output appears under its name only when it is complete.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from models.registry import ModelSpec, get_spec, resolve_weights
from vsr_pipeline.errors import ChunkFailedError, InterruptedJob, ResourceError, UsageError, VsrError
from vsr_pipeline.media import MediaError, VideoInfo, probe
from vsr_pipeline.media.reader import ON_CORRUPT
from vsr_pipeline.media.seek import SeekError
from vsr_pipeline.plan import Chunk, batches_for, plan_chunks
from vsr_pipeline.windows import check_padding

log = logging.getLogger(__name__)

#: Frames of context each side of a chunk, by temporal kind. For recurrent models this is the
#: measured default (see docs/benchmarks.md, "chunk padding"); window models need their radius.
RECURRENT_PADDING = 10
#: Flow estimators ``--align`` refuses: nothing trained exists for them alone (VESPCN's motion compensation
#: is learnt jointly with VESPCN), so their flow would be noise.
UNTRAINED_ESTIMATORS = frozenset({"vespcn"})
#: Budget for one chunk's activations on the CPU/GPU, used to size the default chunk.
CHUNK_FEATURE_BYTES = 2 * 1024**3


@dataclass
class UpscaleOptions:
    model: str = "basicvsr"
    weights: str | None = None
    scale: int = 4
    device: str = "auto"
    chunk: int | None = None
    padding: int | None = None
    codec: str = "libx264"
    crf: int = 18
    preset: str = "medium"
    address: str | None = None
    overwrite: bool = False
    fps: Fraction | None = None
    max_inflight: int = 2
    progress: bool = True
    #: frames (single-image models) or windows (window models) per forward pass
    batch: int = 4
    #: single-image model used as the body of a video model whose spec accepts_backbone
    backbone: str | None = None
    #: flow estimator for the Motion + Aligner stages (window models); None: the model aligns itself
    align: str | None = None
    #: dtype of pre-aligned windows between the Aligner and the Upscaler: "uint8" or "float16"
    aligned_dtype: str = "uint8"
    #: forward-pass precision: auto|fp32|bf16|fp16 (vsr_pipeline.precision); `vsr upscale` defaults to auto
    precision: str = "fp32"
    #: LR tile size for frames that do not fit (None: whole frames; out-of-memory still backs off to tiles)
    tile: int | None = None
    #: LR pixels shared by neighbouring tiles, blended linearly
    overlap: int = 16
    #: torch.compile the model (fixed shapes)
    compile: bool = False
    #: a frame the decoder cannot produce: "repeat" the previous one (default), "skip" it, or "fail"
    on_corrupt: str = "repeat"
    #: "auto": reuse a matching ledger's finished chunks; "require": refuse to start over; "never"
    resume: str = "auto"
    #: further attempts for a chunk whose upscaling or encoding failed
    retries: int = 2
    #: decoders per input: > 1 seeks to keyframes and decodes in parallel where that is exact
    #: (``vsr_pipeline.media.seek``), else one sequential decoder
    decoders: int = 1


@dataclass
class UpscaleResult:
    input: str
    output: str
    model: str
    weights: str | None
    backbone: str | None
    align: str | None
    device: str
    frames_in: int
    frames_out: int
    width_in: int
    height_in: int
    width_out: int
    height_out: int
    fps_in: float
    chunk: int
    padding: int
    chunks: int
    seconds: float
    fps: float  # frames computed in this run per second
    chunks_resumed: int = 0  # chunks a previous run had finished (taken from the ledger)
    chunks_computed: int = 0  # chunks computed in this run
    retries: int = 0  # failed chunk attempts that were retried
    on_corrupt: str = "repeat"
    corrupt_frames: int = 0  # frames the decoder could not produce
    corrupt: list[dict[str, Any]] = field(default_factory=list)  # the first 100: index, pts, time_s, reason
    #: wall seconds the job's own upscalers spent inside their forward calls (summed over actors; None when
    #: the upscalers were shared with other jobs): ``seconds`` minus this is what the pipeline itself cost
    model_seconds: float | None = None
    #: seconds from the job's start to its first forward call (actor start-up, the first chunk's decode),
    #: and from its last forward call's end to the job's end (the last chunk's encode, joining); None with
    #: shared upscalers
    model_head_s: float | None = None
    model_tail_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def default_padding(model: str) -> int:
    spec = get_spec(model)
    if spec.temporal == "recurrent":
        return RECURRENT_PADDING
    return spec.radius


def default_chunk(info: VideoInfo, padding: int) -> int:
    """Core frames per chunk, where ``fit`` is what a budget of ~64 feature maps per window frame allows
    (fewer for large frames).

    - Single-image and window models (no padding): 50, or ``fit`` if smaller; small chunks let the encoder
      start early, which matters where the codec costs as much as the model (ESPCN).
    - Recurrent models (``padding`` context frames recomputed on each side of a chunk): as large as ``fit``
      allows, spread evenly over the video, since padding is pure extra work (20 % of BasicVSR's model
      time with chunks of 50, docs/benchmarks.md 8.3b; on 250 frames it is 16 % more frames computed with
      chunks of 100, 8 % with this rule's 2 x 125). Live streams (unknown length) keep 10x the padding,
      for latency.
    """
    per_frame = 64 * 4 * info.width * info.height * 3  # features kept per frame, both directions + slack
    fit = max(1, CHUNK_FEATURE_BYTES // per_frame - 2 * padding)
    floor = min(8, info.frames or 8)
    if padding == 0:
        return int(max(min(50, fit), floor))
    if not info.frames:
        return int(max(min(10 * padding, fit), floor))
    pieces = -(-info.frames // fit)  # ceil: as few chunks as memory allows, then equal sizes
    return int(max(-(-info.frames // pieces), floor))


@contextmanager
def ray_session(address: str | None = None) -> Iterator[None]:
    """Use a running Ray, join ``address``, or start Ray in-process on loopback with no dashboard."""
    import ray

    if ray.is_initialized():
        yield
        return
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.ERROR,
        "configure_logging": True,
    }
    sigterm = signal.getsignal(signal.SIGTERM)
    if address:
        ray.init(address=address, **kwargs)
    else:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        # Ray starts workers at nice 15; our actors do the job's work, so on a busy machine they would lose
        # the CPU to every other process (measured: the upscaler actor got 0.2 cores at load 20).
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(num_cpus=os.cpu_count() or 1, _node_ip_address="127.0.0.1", **kwargs)
    if callable(sigterm) and threading.current_thread() is threading.main_thread():
        # ray.init installs a SIGTERM handler that aborts the process; keep the caller's (the CLI stops
        # cleanly on SIGTERM, like Ctrl-C, leaving a resumable ledger)
        signal.signal(signal.SIGTERM, sigterm)
    try:
        yield
    finally:
        ray.shutdown()


def check_backbone(spec: ModelSpec, backbone: str | None, scale: int) -> None:
    """``--backbone`` only for video models that accept one, naming a parametric single-image model that
    supports ``scale``."""
    if backbone is None:
        return
    if not spec.accepts_backbone:
        raise UsageError(
            f"model {spec.name} takes no --backbone (only models whose body is a single-image model do)"
        )
    try:
        body = get_spec(backbone)
    except ValueError as exc:
        raise UsageError(f"--backbone: {exc}") from None
    if body.kind != "sisr" or not body.parametric:
        raise UsageError(
            f"--backbone {backbone} is not a trainable single-image model; choose one of: "
            f"{', '.join(s.name for s in backbones())}"
        )
    if scale not in body.scales:
        raise UsageError(
            f"--backbone {backbone} supports scale {', '.join(map(str, body.scales))}, not {scale}"
        )


def backbones() -> list[ModelSpec]:
    """Registered models usable as ``--backbone``."""
    from models.registry import list_specs

    return [s for s in list_specs() if s.kind == "sisr" and s.parametric]


def check_align(spec: ModelSpec, align: str | None, aligned_dtype: str) -> None:
    if align is None:
        return
    if spec.temporal != "window":
        raise UsageError(
            f"--align pre-aligns the frames of window models (VESPCN, EDVR); model {spec.name} is not one"
        )
    if aligned_dtype not in ("uint8", "float16"):
        raise UsageError(f"aligned windows are uint8 or float16, not {aligned_dtype!r}")
    from models.motion import list_flow_estimators

    usable = [n for n in list_flow_estimators() if n not in UNTRAINED_ESTIMATORS]
    if align in UNTRAINED_ESTIMATORS:
        raise UsageError(
            f"--align {align}: that estimator has no trained weights of its own (it is trained inside its "
            f"video model); use one of: {', '.join(usable)}"
        )
    if align not in usable:
        raise UsageError(f"--align: unknown flow estimator {align!r}; known: {', '.join(usable)}")


def check_paths(input_path: Path, output: Path, overwrite: bool) -> None:
    if output.resolve() == input_path.resolve():
        raise UsageError(f"output {output} is the input; choose another output path")
    if output.exists() and not overwrite:
        raise UsageError(f"output {output} exists; pass --overwrite to replace it")
    parent = output.resolve().parent
    if not parent.is_dir():
        raise UsageError(f"output directory {parent} does not exist")
    probe_file = parent / f".{output.name}.vsr-write-test"
    try:  # a real write: access() says yes to root even where nothing can be created
        probe_file.touch()
        probe_file.unlink()
    except OSError as exc:
        raise UsageError(f"output directory {parent} is not writable ({exc.strerror or exc})") from None


def job_settings(
    spec: ModelSpec, opts: UpscaleOptions, info: VideoInfo, chunk: int, padding: int, device: str
) -> dict[str, Any]:
    """What made a job's segments: the ledger reuses them only when every one of these is equal."""
    from vsr_pipeline.ledger import file_sha256, input_fingerprint

    weights = resolve_weights(spec.name, opts.weights, opts.scale)
    return {
        "model": spec.name,
        "weights": opts.weights or spec.default_weights,
        "weights_sha256": file_sha256(weights) if weights is not None else None,
        "scale": opts.scale,
        "backbone": opts.backbone,
        "align": opts.align,
        "aligned_dtype": opts.aligned_dtype if opts.align else None,
        "batch": opts.batch,
        # segments made in another precision or tiling differ slightly; "auto" is recorded as what it
        # resolves to, so a CLI run (auto) and an API run (fp32) that compute the same way share segments
        "precision": _resolved_precision(opts.precision, device, spec.name),
        "tile": [opts.tile, opts.overlap] if opts.tile else None,
        "device": device,
        "codec": opts.codec,
        "crf": opts.crf,
        "preset": opts.preset,
        "chunk": chunk,
        "padding": padding,
        "fps": str(opts.fps) if opts.fps is not None else None,
        "on_corrupt": opts.on_corrupt,
        "frames": info.frames,
        "input": input_fingerprint(info.path),
    }


def _resolved_precision(precision: str, device: str, model: str) -> str:
    import torch

    from vsr_pipeline.precision import resolve_precision

    try:
        return resolve_precision(precision, torch.device(device), model)
    except ValueError:
        return precision


def memory_estimate(info: VideoInfo, scale: int, batch: int = 1) -> int:
    """A lower bound on the bytes one frame needs, whatever the batch or tiling: its HR output as float32
    (the model's) plus three uint8 RGB copies (upscaler, object store, encoder). Activations are left out:
    batching and tiling shrink them, and out-of-memory backs off to tiles."""
    hr = info.width * scale * info.height * scale * 3
    return hr * (4 + 3)


def total_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(info: VideoInfo, scale: int, batch: int) -> None:
    """Refuse, with the estimate, a frame whose processing cannot fit this machine's memory."""
    need, have = memory_estimate(info, scale, batch), total_memory()
    if have is not None and need > have:
        raise ResourceError(
            f"a {info.width}x{info.height} frame at x{scale} needs about {need / 2**30:.1f} GiB "
            f"(output frame {info.width * scale}x{info.height * scale}); this machine has "
            f"{have / 2**30:.1f} GiB, even with --batch 1 and tiles: downscale or crop the input first"
        )


def check_perf_options(spec: ModelSpec, opts: UpscaleOptions, device: Any) -> None:
    """``--precision`` valid on ``device``; ``--tile`` at least twice ``--overlap``."""
    from vsr_pipeline.precision import resolve_precision

    try:
        resolve_precision(opts.precision, device, spec.name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if opts.overlap < 0 or (opts.tile is not None and (opts.tile < 8 or 2 * opts.overlap > opts.tile)):
        raise UsageError("--tile must be >= 8 and at least twice --overlap (>= 0)")


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


def check_options(opts: UpscaleOptions) -> ModelSpec:
    """Refuse option values that cannot work, before anything is read or started; returns the model's spec."""
    spec = get_spec(opts.model)
    if opts.scale not in spec.scales:
        scales = ", ".join(str(s) for s in spec.scales)
        raise UsageError(f"model {spec.name} supports scale {scales}, not {opts.scale}")
    check_backbone(spec, opts.backbone, opts.scale)
    check_align(spec, opts.align, opts.aligned_dtype)
    if opts.batch < 1:
        raise UsageError("--batch must be >= 1")
    if opts.decoders < 1:
        raise UsageError("--decoders must be >= 1")
    if opts.on_corrupt not in ON_CORRUPT:
        raise UsageError(f"--on-corrupt must be one of {', '.join(ON_CORRUPT)}, not {opts.on_corrupt!r}")
    if opts.resume not in ("auto", "require", "never"):
        raise UsageError(f"resume must be auto, require or never, not {opts.resume!r}")
    resolve_weights(spec.name, opts.weights, opts.scale)  # fail before starting anything
    return spec


def plan_job(
    input_path: str | Path,
    output: str | Path,
    opts: UpscaleOptions,
    device: Any,
    spec: ModelSpec | None = None,
) -> JobPlan:
    """Check ``opts`` (unless ``spec``, what ``check_options`` returned, says that is done) and the paths,
    probe the input, size and plan its chunks (nothing is started)."""
    input_path, output = Path(input_path), Path(output)
    spec = check_options(opts) if spec is None else spec
    check_paths(input_path, output, opts.overwrite)
    check_perf_options(spec, opts, device)
    info = probe(input_path, fps=opts.fps)
    check_memory(info, opts.scale, opts.batch)
    padding = default_padding(spec.name) if opts.padding is None else opts.padding
    chunk = default_chunk(info, padding) if opts.chunk is None else opts.chunk
    if chunk < 1 or padding < 0:
        raise UsageError("--chunk must be >= 1 and --padding >= 0")
    if spec.temporal == "window":
        try:
            check_padding(spec.name, spec.radius, padding)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    return JobPlan(input_path, output, opts, spec, info, chunk, padding,
                   plan_chunks(info.frames, chunk, padding))


def upscaler_options(spec: ModelSpec, opts: UpscaleOptions, device: str) -> dict[str, Any]:
    """``Upscaler`` keyword arguments (besides the model and threads) for ``opts``."""
    return {
        "weights": opts.weights,
        "scale": opts.scale,
        "device": device,
        "batch": opts.batch,
        "backbone": None if opts.backbone is None else get_spec(opts.backbone),
        "precision": opts.precision,
        "tile": opts.tile,
        "overlap": opts.overlap,
        "compile": opts.compile,
        "reuse_memory": True,  # the actor's own process: freed buffers serve the next chunk (heap.py)
    }


def restart_policy(opts: UpscaleOptions) -> dict[str, int]:
    """Ray restarts a dead worker for each retry; a call is never re-run by Ray (the driver resubmits)."""
    return {"max_restarts": opts.retries + 1, "max_task_retries": 0}


def upscale(input_path: str | Path, output: str | Path, opts: UpscaleOptions) -> UpscaleResult:
    """Upscale a video file or image folder to ``output`` (video file or PNG folder).

    Resumable: finished chunks are recorded in a ledger beside the output (``vsr_pipeline.ledger``) and
    a rerun with the same settings and input redoes only the others. A chunk whose upscaling or encoding
    fails (exception, or a worker process that dies) is retried ``opts.retries`` times.
    """
    from vsr_pipeline.upscaler_pool import Placement, UpscalerPool
    from workers.upscaler import resolve_device

    spec = check_options(opts)  # option errors before device errors
    device = resolve_device(opts.device)
    plan = plan_job(input_path, output, opts, device, spec)
    gpu = device.type == "cuda"
    cpus = os.cpu_count() or 1
    # On the CPU the one upscaler takes a slot but runs on every core: the decoder and encoder are mostly idle
    # while the model runs. With alignment on a GPU the three torch stages share it (fractions summing to 1).
    placement = Placement(1, 0 if gpu else 1, (0.5 if opts.align else 1.0) if gpu else 0, 0 if gpu else cpus)

    def start_pool() -> UpscalerPool:
        return UpscalerPool.start(plan.spec, placement, upscaler_options(plan.spec, opts, str(device)),
                                  restart_policy(opts))

    return run_job(plan, device.type, start_pool)


def run_job(
    plan: JobPlan,
    device_type: str,
    pool: Any,
    cancel: threading.Event | None = None,
    on_chunk: Any = None,
) -> UpscaleResult:
    """Run a planned job: its own decoder, encoder (and motion/aligner) actors, upscalers from ``pool`` (an
    ``UpscalerPool`` shared with other jobs, or a function that starts one for this job alone, killed at
    the end). ``cancel`` set by another thread stops the job like Ctrl-C; ``on_chunk(frames)`` is called
    as each chunk is recorded. Ray must be running when ``pool`` is shared."""
    import ray

    from vsr_pipeline.ledger import Ledger
    from workers.aligner import Aligner
    from workers.encoder import FAULT_ENV, Encoder, check_encoder, is_video_path, join_segments
    from workers.motion import Motion

    opts, spec, info, chunks = plan.opts, plan.spec, plan.info, plan.chunks
    input_path, output = plan.input_path, plan.output
    started, started_epoch = time.perf_counter(), time.time()
    if is_video_path(output):  # a codec/container/setting that cannot work fails now, naming the output
        check_encoder(output, info, opts.scale, opts.codec, opts.crf, opts.preset)
    ledger = Ledger.open(output, job_settings(spec, opts, info, plan.chunk, plan.padding, device_type),
                         opts.resume)
    resumed = len(ledger.done)
    todo = {c.index for c in chunks} - set(ledger.done)
    stats: dict[str, int] = {"computed": 0, "retries": 0}
    own_pool = callable(pool)
    model_seconds: float | None = None
    busy: list[dict[str, Any]] = []
    try:
        with ray_session(opts.address):
            gpu = device_type == "cuda"
            cpus = os.cpu_count() or 1
            restarts = restart_policy(opts)
            gpu_share = (0.5 if opts.align else 1.0) if gpu else 0
            stage_device = "auto" if gpu else "cpu"  # resolved on the actor's own node
            upscalers = pool() if own_pool else pool
            decoders = _start_decoders(plan)
            actors = list(decoders.actors)
            motion = aligner = None
            if opts.align:
                motion = ray.remote(num_cpus=0, num_gpus=gpu_share / 2, **restarts)(
                    reporting_errors(Motion)
                ).remote(opts.align, spec.radius, stage_device, 0 if gpu else cpus)
                aligner = ray.remote(num_cpus=0, num_gpus=gpu_share / 2, **restarts)(
                    reporting_errors(Aligner)
                ).remote(spec.radius, opts.aligned_dtype, stage_device, 0 if gpu else max(1, cpus // 2))
                actors += [motion, aligner]
            encoder = ray.remote(num_cpus=0, **restarts)(reporting_errors(Encoder)).remote(
                str(output), info, opts.scale, opts.codec, opts.crf, opts.preset, str(ledger.segments),
                os.environ.get(FAULT_ENV),
            )
            actors.append(encoder)
            try:
                # Waited for at the first chunk's submission, after its decode was asked for: the first
                # decode overlaps the upscaler's start-up (torch import, weights) instead of following it.
                ready = ((upscalers.ready() if own_pool else [])
                         + [a.ready.remote() for a in (motion, aligner, encoder) if a is not None])
                log.debug("workers starting: %d of %d chunk(s) to compute", len(todo), len(chunks))
                stages = _Stages(decoders, upscalers, encoder, motion, aligner, ready)
                try:
                    _stream(chunks, todo, plan.chunk, stages, ledger, info.frames, opts, stats, cancel,
                            on_chunk)
                except SeekError as exc:  # not exact after all: the remaining chunks decode sequentially
                    log.warning("%s: %s; decoding the rest sequentially", input_path, exc)
                    for actor in decoders.actors:
                        ray.kill(actor)
                    stages.decoders = decoders = _start_decoders(plan, parallel=False)
                    actors += decoders.actors
                    todo = {c.index for c in chunks} - set(ledger.done)
                    _stream(chunks, todo, plan.chunk, stages, ledger, info.frames, opts, stats, cancel,
                            on_chunk)
                stages.wait_ready()  # when nothing was submitted (every chunk resumed): errors still count
                device_name = upscalers.device_name()
                corrupt = decoders.corrupt()
                if own_pool:
                    busy = [s for s in upscalers.stats() if s["first"] is not None]
                    model_seconds = round(sum(float(s["busy_s"]) for s in busy), 3)
            finally:
                for actor in actors:
                    ray.kill(actor)
                if own_pool:
                    upscalers.kill()
        ledger.extra["corrupt"] = _merge_corrupt(ledger.extra.get("corrupt", []), corrupt)
        ledger.save()
        done = [ledger.done[c.index] for c in chunks]
        segments = [ledger.segments / d["file"] for d in done if d["file"] is not None]
        frames_out = sum(d["frames"] for d in done)
        if not segments:
            raise MediaError(f"{input_path}: every frame was skipped as undecodable; no output written")
        join_segments(output, segments, info, opts.overwrite)
    except KeyboardInterrupt:
        _keep_if_useful(ledger)
        raise InterruptedJob(
            f"interrupted: {len(ledger.done)} of {len(chunks)} chunks are done; run the same command again "
            f"to resume"
        ) from None
    except BaseException:
        _keep_if_useful(ledger)
        raise
    corrupt = ledger.extra["corrupt"]
    ledger.remove()
    if corrupt:
        log.warning(
            "%s: %d frame(s) could not be decoded (%s): %s", input_path, len(corrupt),
            "left out" if opts.on_corrupt == "skip" else "previous frame repeated",
            _where(corrupt),
        )
    expected = info.frames - (len(corrupt) if opts.on_corrupt == "skip" else 0)
    if frames_out != expected:
        raise RuntimeError(f"wrote {frames_out} frames but expected {expected}")
    seconds = time.perf_counter() - started
    ended_epoch = time.time()
    return UpscaleResult(
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
        model_seconds=model_seconds,
        # actors' epoch clocks against the driver's: exact on one node, good to the clock skew across nodes
        model_head_s=round(min(float(s["first"]) for s in busy) - started_epoch, 3) if busy else None,
        model_tail_s=round(ended_epoch - max(float(s["last"]) for s in busy), 3) if busy else None,
    )


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


def root_cause(exc: BaseException) -> BaseException:
    """The original exception inside Ray's wrappers (RayTaskError.cause, chained)."""
    seen = 0
    while seen < 10:
        cause = getattr(exc, "cause", None)
        if not isinstance(cause, BaseException) or cause is exc:
            break
        exc, seen = cause, seen + 1
    return exc


def reporting_errors(cls: type) -> type:
    """``cls`` for ``ray.remote``, with the constructor's exception kept and raised by ``ready()``.

    An exception in an actor's constructor kills the actor, and the driver then sees only
    ``ActorDiedError`` (exit 1, "internal error", Ray's traceback on stderr); raised from a method it
    arrives as the original exception (e.g. a checkpoint that does not fit: exit 4, one line).
    """

    class Actor(cls):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._error: Exception | None = None
            try:
                super().__init__(*args, **kwargs)
            except Exception as exc:
                self._error = exc

        def ready(self) -> bool:
            if self._error is not None:
                raise self._error
            return True

    Actor.__name__ = Actor.__qualname__ = cls.__name__
    return Actor


@dataclass
class _Decoders:
    """Decoder actors of one input: ``owners`` gives each decode batch's decoder (parallel, seeking), or is
    None for one sequential decoder."""

    actors: list[Any]
    owners: list[int] | None = None

    def read(self, b: int, n: int) -> tuple[Any, Any]:
        """References to decode batch ``b`` (``n`` frames) and its pts; sequentially, batches must be asked
        for in order."""
        if self.owners is None:
            return self.actors[0].read.options(num_returns=2).remote(n)  # type: ignore[no-any-return]
        return self.actors[self.owners[b]].read_batch.options(num_returns=2).remote(b, n)  # type: ignore[no-any-return]

    def skip(self, n: int) -> Any:
        """Reference to decoding and dropping the next batch (sequential only: every frame is decoded, so
        every undecodable one is reported); None when decoders seek."""
        return self.actors[0].skip.remote(n) if self.owners is None else None

    def corrupt(self) -> list[dict[str, Any]]:
        import ray

        found = [c for lists in ray.get([a.corrupt.remote() for a in self.actors]) for c in lists]
        return _merge_corrupt([], found)


def _start_decoders(plan: JobPlan, parallel: bool = True) -> _Decoders:
    """``plan.opts.decoders`` seeking decoders where seeking is exact for this input, else one sequential."""
    import ray

    from vsr_pipeline.media.seek import scan, seek_problem
    from workers.decoder import Decoder, assign_batches

    opts, info = plan.opts, plan.info
    make = ray.remote(num_cpus=0)(Decoder)
    args = (str(plan.input_path), opts.fps, opts.on_corrupt)
    if parallel and opts.decoders > 1:
        index = scan(plan.input_path)
        problem = seek_problem(index, info, opts.on_corrupt)
        if problem is None:
            owners = assign_batches(info.frames, plan.chunk, opts.decoders, index.keyframes)
            used = max(owners, default=0) + 1
            return _Decoders([make.remote(*args) for _ in range(used)], owners)
        log.info("%s: decoding sequentially (%s)", plan.input_path, problem)
    return _Decoders([make.remote(*args)])


@dataclass
class _Stages:
    """Actor handles of one job (``upscalers`` an ``UpscalerPool``); ``motion`` and ``aligner`` only with
    ``--align``."""

    decoders: _Decoders
    upscalers: Any
    encoder: Any
    motion: Any = None
    aligner: Any = None
    #: actors' ``ready()`` references not yet waited for: waited for (raising a constructor's error) before
    #: the first chunk goes to them
    ready: list[Any] = field(default_factory=list)

    def wait_ready(self) -> None:
        import ray

        refs, self.ready = self.ready, []
        if refs:
            ray.get(refs)

    def upscale(self, window: slice, keep: slice, batches: list[Any]) -> Any:
        """Reference to the HR core frames of one chunk."""
        self.wait_ready()
        if self.motion is None:
            return self.upscalers.process(window, keep, batches)
        flows = self.motion.process.remote(window, keep, *batches)
        aligned = self.aligner.process.remote(window, keep, flows, *batches)
        return self.upscalers.process_windows(aligned)


@dataclass
class _Job:
    """One chunk in flight: what to resubmit if it fails."""

    chunk: Chunk
    window: slice
    batches: list[Any]
    pts: list[int | None]
    attempt: int = 1


def _stream(
    chunks: list[Chunk],
    todo: set[int],
    batch: int,
    stages: _Stages,
    ledger: Any,
    total: int,
    opts: UpscaleOptions,
    stats: dict[str, int],
    cancel: threading.Event | None = None,
    on_chunk: Any = None,
) -> None:
    """Submit the chunks in ``todo`` (at most ``opts.max_inflight`` in flight), record each finished one in
    the ledger, retry failed ones; every frame is decoded (done chunks' frames are decoded and dropped).
    ``cancel`` set (by another thread) stops like Ctrl-C; ``on_chunk(frames)`` follows each recorded chunk."""
    import ray
    from ray.exceptions import RayError
    from tqdm import tqdm

    frames_refs: dict[int, Any] = {}
    pts_refs: dict[int, Any] = {}
    skips: list[Any] = []
    next_batch = 0
    pending: dict[Any, _Job] = {}
    stats.setdefault("computed_frames", 0)
    already = sum(c.core for c in chunks if c.index not in todo)

    def submit(job: _Job) -> None:
        log.debug("chunk %d submitted (attempt %d)", job.chunk.index, job.attempt)
        hr = stages.upscale(job.window, job.chunk.keep, job.batches)
        pending[stages.encoder.write_segment.remote(job.chunk.index, hr, job.pts)] = job

    with tqdm(
        total=total,
        initial=already,
        unit="frame",
        file=sys.stderr,
        disable=not opts.progress,
        dynamic_ncols=True,
        desc=f"{opts.model} x{opts.scale}",
    ) as bar:

        def wait_one() -> None:
            ready: list[Any] = []
            while not ready:
                if cancel is not None and cancel.is_set():
                    raise KeyboardInterrupt
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=None if cancel is None else 0.5)
            job = pending.pop(ready[0])
            c = job.chunk
            try:
                name, frames = ray.get(ready[0])
            except RayError as exc:
                cause = root_cause(exc)
                if isinstance(cause, SeekError):  # run_job decodes the rest sequentially
                    raise cause from None
                if isinstance(cause, VsrError):
                    raise cause from None
                text = str(cause).strip()
                reason = f"{type(cause).__name__}: {text.splitlines()[0] if text else ''}"
                if job.attempt > opts.retries:
                    raise ChunkFailedError(
                        f"chunk {c.index} (frames {c.start}-{c.stop - 1}) failed {job.attempt} times, last: "
                        f"{reason}; finished chunks are kept, rerun to resume"
                    ) from None
                log.warning("chunk %d (frames %d-%d) failed (%s); retrying", c.index, c.start, c.stop - 1,
                            reason)
                time.sleep(min(2.0, 0.25 * job.attempt))
                job.attempt += 1
                stats["retries"] += 1
                submit(job)
                return
            ledger.record(c.index, c.start, c.stop, name, frames)
            stats["computed"] += 1
            stats["computed_frames"] += c.core
            bar.update(c.core)
            if on_chunk is not None:
                on_chunk(c.core)

        for c in chunks:
            if c.index not in todo:
                continue
            need = batches_for(c, batch)
            while next_batch <= need[-1]:
                if next_batch < need[0]:
                    skips.append(stages.decoders.skip(batch))
                else:
                    frames_refs[next_batch], pts_refs[next_batch] = stages.decoders.read(next_batch, batch)
                next_batch += 1
            for old in [b for b in frames_refs if b < need[0]]:
                del frames_refs[old], pts_refs[old]
            offset = need[0] * batch
            window = slice(c.read_start - offset, c.read_stop - offset)
            pts = [p for b in need for p in ray.get(pts_refs[b])][window][c.keep]
            if len(pts) != c.core:
                raise RuntimeError(f"decoder returned too few frames for frames {c.start}-{c.stop - 1}")
            submit(_Job(c, window, [frames_refs[b] for b in need], pts))
            while len(pending) >= max(1, opts.max_inflight):
                wait_one()
        while pending:
            wait_one()
    # Decode what no chunk needed (a resumed job's tail) so every undecodable frame is reported.
    while next_batch * batch < total:
        skips.append(stages.decoders.skip(batch))
        next_batch += 1
    ray.get([r for r in skips if r is not None])
