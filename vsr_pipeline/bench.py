"""``vsr bench``: frames/s of the model alone, of the whole pipeline and of a naive loop, in one run.

Measured on the first ``--frames`` frames of ``--input`` (re-encoded once into a temporary clip so every
variant reads the same file), ``--repeats`` times, the three variants interleaved (a, b, c, a, b, c, ...) so
a machine whose load changes affects them alike; each figure is the median over the repeats.

- (a) **model only**: the ``Upscaler`` (same precision, batch, tiling, threads, heap reuse as the pipeline's)
  on frames already in memory, called on exactly the chunk windows the pipeline computes (``model_fps``), and
  on the whole clip in one call (``model_fps_whole``: no chunk overlap, what an unbounded-memory run would
  cost).
- (b) **pipeline**: ``upscale()`` to an encoded file with the given settings, Ray already started
  (``pipeline_fps``); during it the summed RSS and PSS of the process tree are sampled (``peak_rss_mb``,
  ``peak_pss_mb``) and each actor's CPU time is read from /proc (``stage_busy``: CPU seconds per wall second,
  so 1.0 is one core busy all the time).
- (c) **naive loop**: what peers' scripts do, in one fresh process (glibc malloc defaults): PyAV decode with
  swscale's rgb24 conversion, the model in fp32 (single-image models one frame per forward, window models one
  window, recurrent models the whole clip as one sequence), encode through PyAV (swscale back to yuv420p), one
  after the other (``naive_fps``, and each stage's share of the time in ``naive_share``).

Ratios: ``pipeline_over_model`` (b/a), ``pipeline_over_model_whole``, ``pipeline_over_naive`` (b/c).
The process-tree sampler runs during all of them (it costs the driver a few hundredths of a core), not only
during (b).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from models.registry import build_model, get_spec
from vsr_pipeline.errors import UsageError
from vsr_pipeline.options import UpscaleOptions
from vsr_pipeline.procstat import TreeSampler


@dataclass
class BenchOptions(UpscaleOptions):
    """The pipeline's own settings (``UpscaleOptions``: model, encode, chunking; same defaults) plus what to
    measure on."""

    #: a video whose first ``frames`` frames are used
    input: str = ""
    frames: int = 20
    repeats: int = 3
    skip_naive: bool = False
    #: shrink the frames this many times first (MATLAB bicubic), to keep slow models' runs short
    downscale: int = 1

    def job_options(self) -> UpscaleOptions:
        """The pipeline run's options: these settings, no progress bar, never resuming."""
        return UpscaleOptions(**{f.name: getattr(self, f.name) for f in fields(UpscaleOptions)}
                              | {"progress": False, "resume": "never"})


def make_clip(src: str, frames: int, out: Path, crf: int = 12, downscale: int = 1) -> Path:
    """The first ``frames`` frames of ``src`` (shrunk ``downscale`` times, MATLAB bicubic, sizes made even)
    encoded to ``out`` (H.264, no audio)."""
    from vsr_pipeline.degrade import crop_to_multiple, degrade_bi
    from vsr_pipeline.media import FrameReader, VideoWriter

    with FrameReader(src) as reader:
        rgb, pts = reader.read(frames)
        info = reader.info
    if len(rgb) == 0:
        raise UsageError(f"{src} has no frames")
    if downscale > 1:
        rgb = np.ascontiguousarray(degrade_bi(crop_to_multiple(rgb, 2 * downscale), downscale))
    with VideoWriter.like(out, info, width=rgb.shape[2], height=rgb.shape[1], crf=crf, preset="fast",
                          copy_streams=False) as w:
        w.write(rgb, pts)
    return out


def actor_startup(spec: Any, weights: str | None, scale: int, device: str, threads: int, batch: int,
                  precision: str, tile: int | None, overlap: int) -> float:
    """Seconds to start an Upscaler actor like the pipeline's and have it ready (process, imports, weights):
    the fixed cost inside ``pipeline_fps`` that a long video amortises."""
    import ray

    from vsr_pipeline.cluster import reporting_errors
    from vsr_pipeline.upscaler_pool import release_warm_upscalers
    from workers.upscaler import Upscaler

    release_warm_upscalers()  # a new actor is what is timed, and it needs the slot
    s = time.perf_counter()
    actor = ray.remote(num_cpus=1)(reporting_errors(Upscaler)).remote(
        spec, weights, scale, device, threads, batch, precision=precision, tile=tile, overlap=overlap,
        reuse_memory=True,
    )
    ray.get(actor.ready.remote())
    elapsed = time.perf_counter() - s
    ray.kill(actor)
    return elapsed


def naive_loop(model: Any, temporal: str, radius: int, clip: Path, out: Path, opts: BenchOptions) -> dict:
    """Decode -> model (fp32) -> encode in one process, swscale for both colour conversions."""
    import av
    import torch

    from vsr_pipeline.engine import to_frames, to_tensor
    from vsr_pipeline.media.probe import main_video

    t = {"decode": 0.0, "model": 0.0, "encode": 0.0}
    cpu = torch.device("cpu")
    t0 = time.perf_counter()
    with av.open(str(clip)) as src, av.open(str(out), "w") as dst, torch.inference_mode():
        vin = main_video(src)
        encode = opts.encode_settings()
        vout = dst.add_stream(encode.codec, rate=vin.average_rate or 25)
        vout.width, vout.height = vin.width * opts.scale, vin.height * opts.scale
        vout.pix_fmt = "yuv420p"
        vout.codec_context.options = {"crf": str(encode.crf), "preset": encode.preset}

        def encode(hr: np.ndarray) -> None:
            s = time.perf_counter()
            for img in hr:
                for packet in vout.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    dst.mux(packet)
            t["encode"] += time.perf_counter() - s

        decoded: list[np.ndarray] = []
        s = time.perf_counter()
        for frame in src.decode(vin):
            decoded.append(frame.to_ndarray(format="rgb24"))  # swscale
            if temporal == "none":
                t["decode"] += time.perf_counter() - s
                m = time.perf_counter()
                hr = to_frames(model(to_tensor(decoded.pop()[None], cpu)))
                t["model"] += time.perf_counter() - m
                encode(hr)
            s = time.perf_counter()
        t["decode"] += time.perf_counter() - s
        if temporal != "none":
            lr = np.stack(decoded)
            m = time.perf_counter()
            if temporal == "recurrent":
                hr = to_frames(model(to_tensor(lr, cpu).unsqueeze(0))[0])
            else:
                idx = np.clip(np.arange(len(lr))[:, None] + np.arange(-radius, radius + 1), 0, len(lr) - 1)
                hr = np.concatenate([to_frames(model(to_tensor(lr[i][None], cpu))) for i in idx])
            t["model"] += time.perf_counter() - m
            encode(hr)
        s = time.perf_counter()
        for packet in vout.encode():
            dst.mux(packet)
        t["encode"] += time.perf_counter() - s
    total = time.perf_counter() - t0
    return {"seconds": total, **{k: v / total for k, v in t.items()}}


STAGES = ("decode", "model", "encode")


def _naive_child(model: str, weights: str | None, clip: Path, out: Path, opts: BenchOptions,
                 threads: int) -> dict:
    import torch

    from vsr_pipeline.engine import load_upscaler_model

    torch.set_num_threads(threads)
    spec = get_spec(model)
    net = load_upscaler_model(model, weights, opts.scale)
    return naive_loop(net, spec.temporal, spec.radius, clip, out, opts)


def naive_in_fresh_process(model: str, weights: str | None, clip: Path, out: Path, opts: BenchOptions,
                           threads: int) -> dict:
    """``naive_loop`` in a new process (spawned; start-up and model loading not timed), as a peer's script
    runs: glibc's malloc defaults and no heap left over from the bench's other variants, which in this
    process keep their buffers (``vsr_pipeline.heap``) and would spare the loop its page faults."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_naive_child, model, weights, clip, out, opts, threads).result()


def engine_on_chunks(up: Any, chunks: list[Any], frames: np.ndarray) -> list[np.ndarray]:
    """The engine over ``chunks`` of ``frames`` as the pipeline runs them: a recurrent model's neighbours of
    equal shape ``up.sequences`` at a time (``plan.grouped``, as the scheduler groups them)."""
    from vsr_pipeline.plan import grouped

    out: list[np.ndarray] = []
    for group in grouped(chunks, up.sequences, lambda c: c.shape):
        items = [(slice(c.read_start, c.read_stop), c.keep, 1) for c in group]
        if len(group) == 1:
            out.append(up.process(*items[0][:2], frames))
        else:
            out.extend(up.process_group(items, *[frames] * len(group)))
    return out


def stage_bound(up: Any, chunks: list[Any], clip: Path, info: Any, opts: BenchOptions, tmp: Path,
                cores: int) -> dict[str, Any]:
    """What the pipeline can reach on this machine: each stage measured alone, in this process, one after the
    other (CPU seconds of every thread, and wall seconds): decode (``FrameReader``), the model on the
    pipeline's chunks (the ``Engine``), encode of those HR frames as the pipeline's segments (one per chunk,
    the job's encode settings). ``bound_fps`` = frames / max(model wall, encode wall, all CPU / cores): the
    model and the encoder each run at most as fast as alone, and together they share the cores."""
    from vsr_pipeline.engine import set_threads
    from vsr_pipeline.media import FrameReader

    def timed(run: Callable[[], Any]) -> tuple[Any, float, float]:
        c, w = time.process_time(), time.perf_counter()
        out = run()
        return out, time.process_time() - c, time.perf_counter() - w

    def decode() -> np.ndarray:
        with FrameReader(clip) as reader:
            return reader.read(info.frames)[0]

    frames, dec_cpu, dec_wall = timed(decode)
    n = len(frames)
    set_threads(up.threads)  # the engine's own count, whatever ran in this process since
    hr, mod_cpu, mod_wall = timed(lambda: engine_on_chunks(up, chunks, frames))
    encode = opts.encode_settings()

    def encode_all() -> None:
        for k, part in enumerate(hr):
            h, w = part.shape[1:3]
            with encode.open_writer(tmp / f"alone{k}.mp4", w, h, info, overwrite=True) as writer:
                writer.write(part, list(range(chunks[k].start, chunks[k].stop)))

    _, enc_cpu, enc_wall = timed(encode_all)
    hr.clear()
    total_cpu = dec_cpu + mod_cpu + enc_cpu
    bound_s = max(mod_wall, enc_wall, total_cpu / max(1, cores))
    return {
        "stage_cpu_s_per_frame": {"decode": round(dec_cpu / n, 5), "model": round(mod_cpu / n, 5),
                                  "encode": round(enc_cpu / n, 5)},
        "stage_wall_s": {"decode": round(dec_wall, 3), "model": round(mod_wall, 3),
                         "encode": round(enc_wall, 3)},
        "bound_fps": round(n / bound_s, 4),
        "bound_by": ("model" if bound_s == mod_wall else "encode" if bound_s == enc_wall else "cores"),
    }


def _median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def run_bench(opts: BenchOptions, log: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    import torch

    from models.weights import save_safetensors
    from vsr_pipeline.autotune import choose_batch, choose_job_threads, choose_precision
    from vsr_pipeline.cluster import ray_session
    from vsr_pipeline.engine import Engine, resolve_device, set_threads
    from vsr_pipeline.heap import release_free_memory, reuse_freed_memory
    from vsr_pipeline.job import upscale
    from vsr_pipeline.media import FrameReader, probe
    from vsr_pipeline.options import check_perf_options
    from vsr_pipeline.plan import grouped, machine_memory, plan_chunks, spec_chunk
    from vsr_pipeline.upscaler_pool import release_warm_upscalers

    spec = get_spec(opts.model)
    if opts.scale not in spec.scales:
        scales = ", ".join(map(str, spec.scales))
        raise UsageError(f"model {spec.name} supports scale {scales}, not {opts.scale}")
    if opts.frames < 1 or opts.repeats < 1:
        raise UsageError("--frames and --repeats must be >= 1")
    device = resolve_device(opts.device)
    load0 = os.getloadavg()
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="vsr-bench-") as tmp_name:
        tmp = Path(tmp_name)
        weights, weights_note = opts.weights, opts.weights or spec.default_weights
        if spec.parametric and weights is None and spec.default_weights is None:
            torch.manual_seed(0)  # speed does not depend on the values
            save_safetensors(build_model(spec.name, opts.scale).state_dict(), tmp / "random.safetensors")
            weights, weights_note = str(tmp / "random.safetensors"), "random init (timing only)"
        clip = make_clip(opts.input, opts.frames, tmp / "clip.mp4", downscale=opts.downscale)
        info = probe(clip)
        with FrameReader(clip) as reader:
            frames, _ = reader.read(info.frames)
        n = len(frames)
        padding = spec.default_padding if opts.padding is None else opts.padding
        chunk = opts.chunk or spec_chunk(spec, info.width, info.height, info.frames, padding,
                                         machine_memory(device.type), opts.sequences)
        chunks = plan_chunks(n, chunk, padding)
        up_opts = replace(opts.job_options(), weights=weights, chunk=chunk, padding=padding)
        check_perf_options(spec, up_opts, device)
        threads = 0 if device.type == "cuda" else cpus
        precision, precision_reason = choose_precision(up_opts.model_settings(),
                                                       device, info.width, info.height, spec, threads)
        up_opts = replace(up_opts, precision=precision)
        batch, batch_reason = choose_batch(up_opts.model_settings(), device, info.width, info.height, spec,
                                           threads)
        up_opts = replace(up_opts, batch=batch)
        threads_reason = "CUDA: the model runs on the GPU"
        if device.type != "cuda":  # model only runs with the threads the pipeline's upscaler will have
            threads, threads_reason = choose_job_threads(up_opts.model_settings(), device, clip, info,
                                                         opts.encode_settings(), ".mp4", spec)
        # like the pipeline's actor (malloc keeps freed buffers, vsr_pipeline.heap); the naive loop runs
        # with glibc's defaults, as peers' scripts do
        up = Engine.from_settings(up_opts.model_settings(), spec=spec,
                                  device=str(device), threads=threads, reuse_memory=True)

        def model_chunks() -> float:
            set_threads(up.threads)  # the pipeline's own probes may have changed the process's count
            s = time.perf_counter()
            engine_on_chunks(up, chunks, frames)
            return time.perf_counter() - s

        def model_whole() -> float:
            set_threads(up.threads)
            s = time.perf_counter()
            up.process(slice(0, n), slice(0, n), frames)
            return time.perf_counter() - s

        log(f"bench {spec.name} x{opts.scale} {precision} batch {batch}, sequences {up.sequences}: {n} "
            f"frames {info.width}x{info.height}, chunk {chunk} padding {padding} ({len(chunks)} chunks), "
            f"{opts.repeats} repeats")
        warm = min(n, max(2, batch))  # warm-up: first-call allocations, oneDNN primitive creation
        up.process(slice(0, warm), slice(0, warm), frames)
        times: dict[str, list[float]] = {"model": [], "model_whole": [], "pipeline": [], "naive": [],
                                         "startup": [], "pipeline_model": [], "pipeline_head": [],
                                         "pipeline_tail": []}
        samplers: list[TreeSampler] = []
        naive_shares: list[dict[str, float]] = []
        import ray

        ray_start: float | None = None if ray.is_initialized() else time.perf_counter()
        with ray_session(None):
            if ray_start is not None:  # what every `vsr upscale` run pays on top of the pipeline below
                ray_start = time.perf_counter() - ray_start
            for r in range(opts.repeats):
                reuse_freed_memory(True)  # model-only keeps its buffers, like the pipeline's actor
                with TreeSampler():  # the same sampling load as the pipeline's run below
                    times["model"].append(model_chunks())
                with TreeSampler():
                    times["model_whole"].append(model_whole() if len(chunks) > 1 else times["model"][-1])
                # the driver's heap (model-only keeps its buffers) back to the OS: the pipeline's memory and
                # the naive loop's page faults are measured as in a process that never ran model-only
                reuse_freed_memory(False)
                release_free_memory()
                release_warm_upscalers()  # every repeat starts its upscaler, as each `vsr upscale` does
                with TreeSampler() as sampler:
                    s = time.perf_counter()
                    res_up = upscale(clip, tmp / f"pipeline{r}.mp4", up_opts)
                    times["pipeline"].append(time.perf_counter() - s)
                times["pipeline_model"].append(res_up.model_seconds or 0.0)
                times["pipeline_head"].append(res_up.model_head_s or 0.0)
                times["pipeline_tail"].append(res_up.model_tail_s or 0.0)
                samplers.append(sampler)
                times["startup"].append(actor_startup(spec, weights, opts.scale, str(device), threads,
                                                      batch, precision, opts.tile, opts.overlap))
                if not opts.skip_naive:
                    with TreeSampler():
                        res = naive_in_fresh_process(spec.name, weights, clip, tmp / f"naive{r}.mp4", opts,
                                                     cpus)
                    times["naive"].append(res["seconds"])
                    naive_shares.append(res)
                log(f"repeat {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items() if v))
            ray_stop: float | None = time.perf_counter()
        ray_stop = time.perf_counter() - ray_stop if ray_start is not None else None
        reuse_freed_memory(True)
        bound = stage_bound(up, chunks, clip, info, opts, tmp, cpus)
        reuse_freed_memory(False)
        release_free_memory()
        per_frame = bound["stage_cpu_s_per_frame"].items()
        log("alone: " + ", ".join(f"{k} {v:.4f} CPU-s/frame" for k, v in per_frame)
            + f"; bound {bound['bound_fps']:.3f} frames/s")
    fps = {k: n / _median(v) for k, v in times.items() if v and not k.startswith(("startup", "pipeline_"))}
    startup = _median(times["startup"])
    after_startup = n / max(1e-9, _median(times["pipeline"]) - startup)
    order = sorted(range(len(samplers)), key=times["pipeline"].__getitem__)
    median_run = samplers[order[len(order) // 2]]  # stage shares of the median pipeline run
    # a recurrent model's padding frames, and the padded sequences of a group short of ``sequences``
    computed = (sum(up.sequences * g[0].shape[0] for g in grouped(chunks, up.sequences, lambda c: c.shape))
                if spec.temporal == "recurrent" else n)
    result: dict[str, Any] = {
        "model": spec.name, "weights": weights_note, "input": str(opts.input), "frames": n,
        "downscale": opts.downscale,
        "width": info.width, "height": info.height, "scale": opts.scale, "device": str(device),
        "precision": precision, "precision_reason": precision_reason, "threads": up.threads,
        "threads_reason": threads_reason, "batch": batch, "batch_reason": batch_reason,
        "sequences": up.sequences, "tile": opts.tile,
        "chunk": chunk, "padding": padding, "chunks": len(chunks), "frames_computed_per_frame": computed / n,
        "repeats": opts.repeats,
        "model_fps": round(fps["model"], 4),
        "model_fps_whole": round(fps["model_whole"], 4),
        "pipeline_fps": round(fps["pipeline"], 4),
        "upscaler_startup_s": round(startup, 3),
        "pipeline_fps_after_startup": round(after_startup, 4),
        "pipeline_after_startup_over_model": round(after_startup / fps["model"], 3),
        "naive_fps": round(fps["naive"], 4) if "naive" in fps else None,
        "pipeline_over_model": round(fps["pipeline"] / fps["model"], 3),
        # per repeat, then the median: the upscaler actor's own forward time inside the pipeline against the
        # model-only run of the same chunks (> 1: the model ran slower beside decode/encode/Ray), and the
        # pipeline's wall time outside the forward calls (start-up, first decode, last encode, joins)
        "pipeline_model_over_model": round(_median(
            [p / m for p, m in zip(times["pipeline_model"], times["model"], strict=True)]), 3),
        "pipeline_outside_model_s": round(_median(
            [t - p for t, p in zip(times["pipeline"], times["pipeline_model"], strict=True)]), 3),
        # of which: before the first forward call (start-up, first decode) and after the last (last encode)
        "pipeline_head_s": round(_median(times["pipeline_head"]), 3),
        "pipeline_tail_s": round(_median(times["pipeline_tail"]), 3),
        # Ray's start and stop when this run began it (None when Ray was already running), which a
        # `vsr upscale` run adds to the pipeline figures above; with them: what such a run achieves
        "ray_start_s": round(ray_start, 3) if ray_start is not None else None,
        "ray_stop_s": round(ray_stop, 3) if ray_stop is not None else None,
        "cli_fps": round(n / (_median(times["pipeline"]) + ray_start + ray_stop), 4)
        if ray_start is not None and ray_stop is not None else None,
        "pipeline_over_model_whole": round(fps["pipeline"] / fps["model_whole"], 3),
        "pipeline_over_naive": round(fps["pipeline"] / fps["naive"], 3) if "naive" in fps else None,
        **bound,
        "pipeline_over_bound": round(fps["pipeline"] / bound["bound_fps"], 3),
        "peak_rss_mb": round(max(s.peak_rss_kb for s in samplers) / 1024, 1),
        "peak_pss_mb": round(max(s.peak_pss_kb for s in samplers) / 1024, 1),
        "stage_busy": median_run.busy(),
        "naive_share": {k: round(_median([s[k] for s in naive_shares]), 3) for k in STAGES}
        if naive_shares else None,
        "seconds": {k: [round(x, 3) for x in v] for k, v in times.items()},
        "loadavg_start": [round(x, 2) for x in load0],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "cpus": cpus,
    }
    return result


def format_bench(r: dict[str, Any]) -> str:
    """The result as a few readable lines."""
    naive = f"{r['naive_fps']:.3f}" if r["naive_fps"] is not None else "-"
    lines = [
        f"{r['model']} x{r['scale']} on {r['frames']} frames {r['width']}x{r['height']}, {r['precision']}, "
        f"{r['device']} ({r['threads']} threads), median of {r['repeats']}, load {r['loadavg_start'][0]}",
        f"  model only   {r['model_fps']:.3f} frames/s (whole clip in one call: {r['model_fps_whole']:.3f})",
        f"  pipeline     {r['pipeline_fps']:.3f} frames/s   x{r['pipeline_over_model']:.2f} of model only, "
        f"x{r['pipeline_over_naive'] or 0:.2f} of naive; without the upscaler's start-up "
        f"({r['upscaler_startup_s']:.1f} s): {r['pipeline_fps_after_startup']:.3f} frames/s, "
        f"x{r['pipeline_after_startup_over_model']:.2f} of model only",
        f"  inside it    the upscaler's forward calls took x{r['pipeline_model_over_model']:.2f} the "
        f"model-only time; {r['pipeline_outside_model_s']:.1f} s of the pipeline's wall time outside them "
        f"({r['pipeline_head_s']:.1f} s before the first, {r['pipeline_tail_s']:.1f} s after the last)",
        *([f"  with Ray     {r['cli_fps']:.3f} frames/s, x{r['cli_fps'] / r['model_fps']:.2f} of model only: "
            f"a `vsr upscale` run also starts Ray ({r['ray_start_s']:.1f} s) and stops it "
            f"({r['ray_stop_s']:.1f} s)"] if r.get("cli_fps") else []),
        f"  naive loop   {naive} frames/s (fp32, swscale)",
        f"  bound        {r['bound_fps']:.3f} frames/s (by {r['bound_by']}; CPU-s per frame alone: "
        + ", ".join(f"{k} {v:.4f}" for k, v in r["stage_cpu_s_per_frame"].items())
        + f"): pipeline x{r['pipeline_over_bound']:.2f} of it",
        f"  precision    {r['precision']} ({r['precision_reason']})",
        f"  batch        {r['batch']} ({r['batch_reason']})",
        f"  threads      {r['threads']} ({r['threads_reason']})",
        f"  peak memory  RSS {r['peak_rss_mb']:.0f} MB, PSS {r['peak_pss_mb']:.0f} MB (process tree)",
        "  busy (cores) " + ", ".join(f"{k} {v:.2f}" for k, v in r["stage_busy"].items() if v >= 0.005),
    ]
    return "\n".join(lines)
