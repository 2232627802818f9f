"""``vsr batch``: many videos through one pool of upscaler actors shared by all of them.

Each video is its own job (``vsr_pipeline.job.run_job``): its own decoder, encoder, ledger and final mux,
run in a driver thread, so one bad file fails alone while the others go on, and an interrupted batch resumes
video by video and chunk by chunk. Several videos are in flight at once (default: twice as many as there are
upscalers), so the upscalers stay busy while individual videos start (probe, actors) and finish (mux).

Placement (``vsr_pipeline.upscaler_pool``): with GPUs in the Ray cluster (and ``--device`` not ``cpu``) one
upscaler per GPU; on a CPU-only cluster one upscaler per node, taking a CPU slot and running the cluster's
cores shared out as torch threads. ``--address`` joins a running cluster; without it Ray runs in-process.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from vsr_pipeline.batch_list import BatchItem
from vsr_pipeline.cluster import ray_session, restart_policy
from vsr_pipeline.errors import EXIT_INTERRUPTED, InterruptedJob, UsageError, exit_code_and_message
from vsr_pipeline.job import plan_job, run_job
from vsr_pipeline.media.trim import check_times
from vsr_pipeline.options import DEFAULT_BATCH, UpscaleOptions, check_folder_output, check_options, crop_input
from vsr_pipeline.stream_source import is_stream_source, redact_url

log = logging.getLogger(__name__)

#: exit codes of ``vsr batch`` beyond the common ones (vsr_pipeline.errors): some videos failed / all did
EXIT_SOME_FAILED = 7
EXIT_ALL_FAILED = 8


@dataclass
class BatchOptions:
    """``vsr batch`` settings; ``upscale`` applies to every video."""

    upscale: UpscaleOptions
    outdir: Path
    #: container of every output: mp4, mkv, mov, ... or png (a folder of frames per video)
    format: str = "mp4"
    #: upscaler actors (default: one per GPU in the cluster, else one per node)
    upscalers: int | None = None
    #: torch threads per CPU upscaler (default: the cluster's cores shared out)
    threads: int = 0
    #: videos in flight at once (default: 2 x upscalers + 2: a video spends seconds starting its actors and
    #: joining its output, during which the others keep the upscalers busy)
    jobs: int | None = None


@dataclass
class VideoOutcome:
    """One line of the summary: status ``ok``, ``failed``, ``skipped`` (output exists) or ``interrupted``."""

    input: str
    output: str
    status: str
    error: str | None = None
    frames: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    chunks_resumed: int = 0
    exit_code: int = 0
    timestamps_repaired: int = 0  # frames whose pts was missing, repeated or went backwards (repaired)
    timestamps_renumbered: int = 0  # frames whose pts were not display times (renumbered in display order)
    started: float | None = None  # epoch seconds
    finished: float | None = None
    manifest: str | None = None  # the provenance manifest beside the output (``vsr_pipeline.manifest``)
    quality: dict[str, Any] | None = None  # the job's quality report (``vsr_pipeline.check``)
    #: what the input's list line set (``start``, ``end``, ``crop``, ``name``; ``vsr_pipeline.batch_list``)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Timeline:
    """Frames finished over time (epoch seconds), appended to from every job's thread."""

    events: list[tuple[float, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, frames: int) -> None:
        with self.lock:
            self.events.append((time.time(), frames))


def output_paths(inputs: Sequence[str | BatchItem], outdir: Path, fmt: str) -> list[Path]:
    """``OUTDIR/<input name>.<fmt>`` for each input (a folder of PNGs for ``png``; a list line's ``--name``
    instead of the input's); two inputs that would write the same output are refused before anything
    starts."""
    suffix = "" if fmt == "png" else f".{fmt}"
    outs: dict[Path, BatchItem] = {}
    paths = []
    for item in as_items(inputs):
        path = Path(item.input.rstrip("/"))
        stem = item.name or (path.stem if suffix or path.is_file() else path.name)
        out = outdir / f"{stem}{suffix}"
        if out in outs:
            first = outs[out]
            fix = "give each line its own --name" if first.input == item.input else "rename one"
            raise UsageError(f"inputs {first.label} and {item.label} would both write {out}; {fix}")
        outs[out] = item
        paths.append(out)
    return paths


def as_items(inputs: Sequence[str | BatchItem]) -> list[BatchItem]:
    """Command-line inputs (paths) and list lines alike as :class:`~vsr_pipeline.batch_list.BatchItem`."""
    return [i if isinstance(i, BatchItem) else BatchItem(i) for i in inputs]


def item_options(opts: UpscaleOptions, item: BatchItem) -> UpscaleOptions:
    """The batch's options with what ``item``'s list line sets (``--start``, ``--end``, ``--crop``)."""
    return replace(opts, **item.overrides()) if item.overrides() else opts


def check_format(fmt: str) -> None:
    from vsr_pipeline.media.output_names import WRITTEN

    known = [*(e.lstrip(".") for e in WRITTEN), "png"]
    if fmt not in known:
        raise UsageError(f"--format must be one of {', '.join(known)}, not {fmt!r}")


def choose_placement(opts: BatchOptions) -> Any:
    """Upscaler placement from the running cluster's resources (``ray.cluster_resources``)."""
    import ray

    from vsr_pipeline.upscaler_pool import cpu_placement, gpu_placement

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    cpus = int(resources.get("CPU", 1))
    device = opts.upscale.device
    if device == "cuda" and gpus == 0:
        raise UsageError("--device cuda: the Ray cluster has no GPU resources")
    if device != "cpu" and gpus > 0:
        return gpu_placement(opts.upscalers or gpus, 0.5 if opts.upscale.align else 1.0)
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    return cpu_placement(opts.upscalers or max(1, nodes), cpus, opts.threads)


def run_batch(inputs: Sequence[str | BatchItem], opts: BatchOptions) -> dict[str, Any]:
    """Upscale every input (a path, or a list line with its own part, region and name) into
    ``opts.outdir``; returns the summary (also written beside the outputs with a Markdown report and a
    throughput plot). Raises only for what stops the whole batch (bad options, a model that cannot load,
    Ctrl-C); a video's own failure is recorded in its line of the summary."""
    from vsr_pipeline.upscaler_pool import UpscalerPool

    if not inputs:
        raise UsageError("no inputs: name video files or folders, or --list FILE")
    items = as_items(inputs)
    streams = [i.input for i in items if is_stream_source(i.input)]
    if streams:  # before: "rtsp:/host/cam: no such file" per URL, a camera's password in the report
        raise UsageError(f"{redact_url(streams[0])}: a stream (stdin, a URL) is not a batch input; run one "
                         f"`vsr upscale URL -o OUT` per stream")
    check_format(opts.format)
    spec = check_options(opts.upscale)
    if opts.format == "png":
        check_folder_output(opts.upscale, "--format png")
    if opts.upscale.device not in ("auto", "cpu", "cuda"):
        raise UsageError(f"--device must be auto, cpu or cuda, not {opts.upscale.device!r}")
    if opts.jobs is not None and opts.jobs < 1:
        raise UsageError("--jobs must be >= 1")
    if opts.outdir.exists() and not opts.outdir.is_dir():
        raise UsageError(f"output directory {opts.outdir} is a file")
    for item in items:  # a line's --start/--end against the batch's (a line may set one of the two)
        merged = item_options(opts.upscale, item)
        try:
            check_times(merged.start, merged.end)
        except ValueError as exc:
            raise UsageError(f"{item.where or item.input}: {exc}") from None
    outputs = output_paths(items, opts.outdir, opts.format)
    opts.outdir.mkdir(parents=True, exist_ok=True)
    video_opts = replace(opts.upscale, progress=False)
    timeline = _Timeline()
    outcomes = [VideoOutcome(i.input, str(o), "pending", options=i.to_json())
                for i, o in zip(items, outputs, strict=True)]
    cancel = threading.Event()
    started = time.time()
    import ray

    keep_ray = ray.is_initialized()  # the pool is kept warm only where Ray outlives the batch
    ended_well = False
    with ray_session(opts.upscale.address):
        placement = choose_placement(opts)
        device = "auto" if placement.num_gpus else "cpu"
        video_opts, reasons = _decide_auto(video_opts, spec, items, outputs, device, placement.threads)
        placement, reasons["threads_reason"] = _decide_threads(video_opts, spec, items, outputs, device,
                                                              placement, opts.threads)
        pool = UpscalerPool.start(spec, placement, video_opts.model_settings(), device,
                                  restart_policy(video_opts.retries))
        try:
            ray.get(pool.ready())
            device_type = pool.device_type()
            device_name = pool.device_name()
            ready = time.time()
            jobs = opts.jobs or 2 * placement.actors + 2
            log.info("batch: %d video(s), %d upscaler(s) on %s, %d in flight", len(items),
                     placement.actors, device_name, jobs)

            def one(k: int) -> None:
                _run_video(outcomes[k], outputs[k], item_options(video_opts, items[k]), spec, device_type,
                           pool, cancel, timeline, k, len(items))

            _run_all(one, len(items), jobs, cancel)
            busy = pool.stats()
            ended_well = not cancel.is_set()
        finally:
            pool.finish(keep=keep_ray and ended_well)
    ended = time.time()
    summary = _summary(outcomes, opts, placement, device_name, busy, timeline, started, ready, ended)
    summary.update(precision=video_opts.precision, batch=video_opts.batch, **reasons)
    summary.update(write_reports(summary, timeline, opts.outdir, started))
    if any(o.status == "interrupted" for o in outcomes):
        done = sum(o.status in ("ok", "skipped") for o in outcomes)
        raise InterruptedJob(
            f"interrupted: {done} of {len(outcomes)} videos are done; run the same command again to resume "
            f"(report: {summary['report']})"
        )
    return summary


def _kept(opts: UpscaleOptions, outputs: list[Path], name: str, section: str = "settings") -> Any:
    """What the first unfinished job among ``outputs`` recorded for ``name`` (``ledger.recorded_setting``), so
    a resumed batch keeps its ``auto`` choices rather than probing again (a probe that chose otherwise would
    redo every finished chunk); None when not resuming or nothing is recorded."""
    from vsr_pipeline.ledger import recorded_setting

    if opts.resume == "never":
        return None
    return next((v for v in (recorded_setting(o, name, section) for o in outputs) if v is not None), None)


KEPT = "kept from the unfinished run this one resumes (its ledger)"


def _decide_auto(opts: UpscaleOptions, spec: Any, inputs: Sequence[str | BatchItem], outputs: list[Path],
                 device: str, threads: int) -> tuple[UpscaleOptions, dict[str, str | None]]:
    """``precision auto`` and ``batch auto`` decided once for the whole pool (``vsr_pipeline.autotune``) at
    the first readable input's frame size, when the upscalers run on this machine's CPU; returns the options
    and the reasons. On GPUs or a cluster the actors apply the hardware rule on their own node
    (``vsr_pipeline.precision``) and the batch is ``DEFAULT_BATCH``."""
    reasons: dict[str, str | None] = {"precision_reason": None, "batch_reason": None}
    auto_precision, auto_batch = opts.precision == "auto", opts.batch is None
    if not (auto_precision or auto_batch):
        return opts, reasons
    if opts.address or device != "cpu":
        if auto_batch:
            where = "a cluster's nodes" if opts.address else "a GPU"
            reasons["batch_reason"] = f"the default {DEFAULT_BATCH}: the upscalers run on {where}, untimed"
        return opts, reasons
    import torch

    from vsr_pipeline.autotune import candidates, choose_batch, choose_precision
    from vsr_pipeline.media import MediaError, probe

    cpu = torch.device("cpu")
    kept_precision = _kept(opts, outputs, "precision") if auto_precision else None
    kept_batch = _kept(opts, outputs, "batch") if auto_batch else None
    for item in as_items(inputs):
        try:  # the model's frames: a crop's size
            _, info, _ = crop_input(probe(item.input, fps=opts.fps), item_options(opts, item))
        except (MediaError, OSError, UsageError):
            continue
        w, h = info.width, info.height
        if kept_precision in candidates(spec, cpu)[0]:
            precision, reason = kept_precision, KEPT
        else:
            precision, reason = choose_precision(opts.model_settings(), cpu, w, h, spec, threads)
        opts = replace(opts, precision=precision)
        if isinstance(kept_batch, int) and kept_batch >= 1:
            batch, batch_reason = kept_batch, KEPT
        else:
            batch, batch_reason = choose_batch(opts.model_settings(), cpu, w, h, spec, threads)
        opts = replace(opts, batch=batch)
        if auto_precision:
            reasons["precision_reason"] = reason
            log.info("batch: precision auto -> %s (%s)", precision, reason)
        if auto_batch:
            reasons["batch_reason"] = batch_reason
            log.info("batch: batch auto -> %d (%s)", batch, batch_reason)
        break
    return opts, reasons


def _decide_threads(opts: UpscaleOptions, spec: Any, inputs: Sequence[str | BatchItem], outputs: list[Path],
                    device: str,
                    placement: Any, forced: int) -> tuple[Any, str | None]:
    """One upscaler on this machine's CPU without ``--threads``: its threads chosen as ``vsr upscale``
    chooses them (``autotune.choose_threads``, the first readable input's decode and encode weighed
    beside the model), so a batch and a single job of the same video run alike. Otherwise the placement's
    share of the cores, unchanged."""
    if forced or opts.address or device != "cpu" or placement.actors != 1 or placement.threads < 2:
        return placement, None
    import torch

    from vsr_pipeline.autotune import choose_job_threads
    from vsr_pipeline.media import MediaError, probe
    from workers.encoder import segment_suffix

    kept = _kept(opts, outputs, "threads", "extra")
    if isinstance(kept, int) and kept >= 1:
        return replace(placement, threads=kept), KEPT
    cpu = torch.device("cpu")
    for item, output in zip(as_items(inputs), outputs, strict=True):
        try:  # the model's frames: a crop's size
            _, info, _ = crop_input(probe(item.input, fps=opts.fps), item_options(opts, item))
        except (MediaError, OSError, UsageError):
            continue
        encode = opts.encode_settings()
        threads, why = choose_job_threads(opts.model_settings(), cpu, item.input, info, encode,
                                          segment_suffix(output), spec, placement.threads)
        log.info("batch: upscaler threads -> %d (%s)", threads, why)
        return replace(placement, threads=threads), why
    return placement, None


def _run_all(one: Any, n: int, jobs: int, cancel: threading.Event) -> None:
    """Run ``one(k)`` for every video, ``jobs`` at a time; Ctrl-C sets ``cancel`` and waits for the jobs
    to stop (each keeps its finished chunks for resuming)."""
    with cf.ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="vsr-video") as ex:
        futures = [ex.submit(one, k) for k in range(n)]
        try:
            while not all(f.done() for f in futures):
                cf.wait(futures, timeout=0.5)
        except KeyboardInterrupt:
            cancel.set()
            for f in futures:
                f.cancel()
            cf.wait(futures)


def _run_video(
    outcome: VideoOutcome,
    output: Path,
    opts: UpscaleOptions,
    spec: Any,
    device_type: str,
    pool: Any,
    cancel: threading.Event,
    timeline: _Timeline,
    k: int,
    n: int,
) -> None:
    """One video, start to finish; every error ends up in ``outcome``, never raised."""
    import torch


    outcome.started = time.time()
    if cancel.is_set():
        outcome.status, outcome.error, outcome.exit_code = "interrupted", "not started", EXIT_INTERRUPTED
        return
    if output.exists() and not opts.overwrite:
        outcome.status = "skipped"
        outcome.error = "output exists (kept; pass --overwrite to redo it)"
        outcome.finished = time.time()
        _say(k, n, outcome)
        return
    try:
        plan = plan_job(outcome.input, output, opts, torch.device(device_type), spec, len(pool.actors))
        result = run_job(plan, device_type, pool, cancel, timeline.add)
    except (Exception, KeyboardInterrupt) as exc:
        code, message = exit_code_and_message(exc)
        interrupted = code == EXIT_INTERRUPTED or cancel.is_set()
        outcome.status = "interrupted" if interrupted else "failed"
        outcome.error = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
        outcome.exit_code = code
    else:
        outcome.status = "ok"
        outcome.frames = result.frames_out
        outcome.seconds = result.seconds
        outcome.fps = result.fps
        outcome.chunks_resumed = result.chunks_resumed
        outcome.manifest, outcome.quality = result.manifest, result.quality
        outcome.timestamps_repaired = result.timestamps_repaired
        outcome.timestamps_renumbered = result.timestamps_renumbered
    outcome.finished = time.time()
    _say(k, n, outcome)


def _say(k: int, n: int, o: VideoOutcome) -> None:
    detail = f"{o.frames} frames in {o.seconds:.1f} s" if o.status == "ok" else o.error
    if o.timestamps_repaired:
        detail = f"{detail}; {o.timestamps_repaired} timestamp(s) repaired"
    if o.timestamps_renumbered:
        detail = f"{detail}; {o.timestamps_renumbered} timestamp(s) renumbered in display order"
    print(f"[{k + 1}/{n}] {o.status}: {o.input} -> {o.output} ({detail})", file=sys.stderr, flush=True)


def busy_share(stats: list[dict[str, Any]], start: float, end: float) -> float:
    """Fraction of the upscalers' time they spent computing, over all of them: from ``start`` (the pool
    ready) to ``end`` (the last chunk recorded), widened to every forward call's own start and end (epoch
    ``first``/``last`` in ``stats``), so calls whose chunks were never recorded (a video that failed after
    the last recorded chunk) count inside the span, and the share stays at most 1."""
    firsts = [float(s["first"]) for s in stats if s.get("first") is not None]
    lasts = [float(s["last"]) for s in stats if s.get("last") is not None]
    start, end = min([start, *firsts]), max([end, *lasts])
    span = max(1e-9, end - start) * max(1, len(stats))
    return sum(float(s["busy_s"]) for s in stats) / span


def _summary(
    outcomes: list[VideoOutcome],
    opts: BatchOptions,
    placement: Any,
    device_name: str,
    busy: list[dict[str, Any]],
    timeline: _Timeline,
    started: float,
    ready: float,
    ended: float,
) -> dict[str, Any]:
    ok = sum(o.status == "ok" for o in outcomes)
    skipped = sum(o.status == "skipped" for o in outcomes)
    failed = sum(o.status == "failed" for o in outcomes)
    frames = sum(o.frames for o in outcomes)
    last = max((t for t, _ in timeline.events), default=ready)
    if failed == 0:
        code = 0
    elif ok + skipped == 0:
        code = EXIT_ALL_FAILED
    else:
        code = EXIT_SOME_FAILED
    return {
        "videos": [
            {k: v for k, v in asdict(o).items() if k not in ("started", "finished")}
            | {"started_s": round((o.started or started) - started, 3),
               "finished_s": round((o.finished or ended) - started, 3)}
            for o in outcomes
        ],
        "ok": ok,
        "skipped": skipped,
        "failed": failed,
        "interrupted": sum(o.status == "interrupted" for o in outcomes),
        "frames": frames,
        "seconds": round(ended - started, 3),
        "fps": round(frames / max(1e-9, ended - started), 3),
        "model": opts.upscale.model,
        "scale": opts.upscale.scale,
        "device": device_name,
        "upscalers": placement.actors,
        "placement": asdict(placement),
        "upscaler_busy_s": [round(float(s["busy_s"]), 3) for s in busy],
        "upscaler_nodes": [s.get("node") for s in busy],
        "upscaler_frames": [s.get("frames") for s in busy],
        "upscaler_calls": [s.get("calls") for s in busy],
        # from the pool being ready to the last chunk recorded: the span the upscalers could have worked
        "busy_share": round(busy_share(busy, ready, last), 4) if timeline.events or any(
            s.get("busy_s") for s in busy) else 0.0,
        "startup_s": round(ready - started, 3),
        "exit_code": code,
    }


def write_reports(
    summary: dict[str, Any], timeline: _Timeline, outdir: Path, started: float
) -> dict[str, str]:
    """``vsr-batch-<time>.json`` (the summary), ``.md`` (a table per video) and ``.png`` (frames/s over
    time) in ``outdir``; new names each run, so no earlier report is overwritten."""
    from vsr_pipeline.batch_report import markdown_report, throughput_plot

    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = outdir / f"vsr-batch-{stamp}"
    n = 1
    while base.with_suffix(".json").exists():
        n += 1
        base = outdir / f"vsr-batch-{stamp}-{n}"
    paths = {"summary": str(base.with_suffix(".json")), "report": str(base.with_suffix(".md")),
             "plot": str(base.with_suffix(".png"))}
    events = [(t - started, f) for t, f in timeline.events]
    plotted = throughput_plot(events, summary, Path(paths["plot"]))
    if not plotted:
        paths["plot"] = ""
    Path(paths["report"]).write_text(markdown_report(summary, Path(paths["plot"]).name if plotted else None))
    Path(paths["summary"]).write_text(json.dumps(summary | paths, indent=1) + "\n")
    return paths
