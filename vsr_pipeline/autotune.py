"""``--precision auto`` decided by this machine: what its hardware allows, then a short timed probe.

1. Candidates (``candidates``): the quality gate stays ``vsr_pipeline.precision`` (bf16 only for a model
   whose measured ``ModelSpec.bf16_delta_db`` is within ``BF16_TOLERANCE_DB``), and the hardware must have
   the units: CPU bf16 only where the CPU computes it (``cpu_has_bf16``: AVX-512 BF16 / AMX flags, oneDNN's
   query on Arm; not AVX-512 alone, where oneDNN emulates bf16, 4x slower for BasicVSR); CUDA
   fp16, plus bf16 for a bf16-safe model on compute capability 8.0 or newer. fp32 and fp32 channels-last
   are always allowed on the CPU (the same float32 arithmetic, other kernels).
2. Where more than one candidate remains, each is timed on the real model and weights with input of the
   job's frame size (a few frames: ``PROBE_FRAMES`` for a recurrent model, one batch otherwise), after a
   warm-up call, in turns (A, B, C, A, B, C: a burst of other load falls on all of them alike); the
   fastest per frame wins.
3. The result is cached per machine (CPU model, capability, cores; GPU name and capability; torch version),
   model, scale, batch, tile, backbone and frame size (not the weights: their values do not change a dense
   model's time) in ``cache_path()`` (``$VSR_CACHE_DIR/autotune.json``, else
   ``$XDG_CACHE_HOME/vsr-pipeline/``, else ``~/.cache/vsr-pipeline/``); later runs reuse it. A probe taken
   while the machine was busy (1-minute load above the core count) is marked so and redone at the first
   run on an idle machine. A forced ``--precision`` always wins and probes nothing.

The decision and why go to the log and to ``vsr upscale --json`` (``precision``, ``precision_reason``).

Threads (``choose_threads``, CPU): the chosen precision is timed at every core and at half of them, in
turns as above, and more threads are kept only where they make the model at least ``THREAD_GAIN`` faster:
two hyperthreads of one core, or a machine whose memory bandwidth is the limit, gain little from the second
thread, and the core left free runs the decoder and encoder beside the model instead of contending with it.
Cached like the precision (key: the same plus the precision); ``vsr upscale --json`` reports ``threads``
and ``threads_reason``.

Batch (``choose_batch``, ``--batch auto``, the default): frames or windows per forward call of a
single-image or window model, ``CPU_BATCHES`` (or ``CUDA_BATCHES``) timed in turns on one engine with the
chosen precision; the smallest within ``BATCH_GAIN`` of the fastest is kept. Cached like the others;
``batch`` and ``batch_reason`` in ``vsr upscale --json``. Order in a job: precision (at ``DEFAULT_BATCH``),
then batch, then threads (``vsr_pipeline.job.resolve_auto_settings``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.registry import ModelSpec, get_spec
from vsr_pipeline.options import DEFAULT_BATCH, ModelSettings, concrete_batch
from vsr_pipeline.precision import cpu_bf16_safe, cpu_has_bf16, resolve_precision
from vsr_pipeline.probe_cache import busy_reason, cache_path, load_cache, machine, save_cache

log = logging.getLogger(__name__)

#: Frames a recurrent model is timed on (per-frame cost is what matters; a chunk's length is not needed).
PROBE_FRAMES = 3
#: Timed calls per candidate after the warm-up; the fastest counts (the least disturbed by other load).
PROBE_CALLS = 2
#: A candidate whose warm-up is this many times slower than the fastest warm-up is not timed further.
SLOWER = 3.0
#: More torch threads are used only where they make the model at least this much faster per frame.
THREAD_GAIN = 0.05
#: ``--batch auto``: frames (or windows) per forward call timed on the CPU / a GPU
CPU_BATCHES = (1, 2, 4)
CUDA_BATCHES = (4, 8, 16)
#: a larger batch is used only where it makes the model at least this much faster per frame
BATCH_GAIN = 0.05
#: one probe call (a setting on its frames) is kept near this many seconds: a frame whose call is estimated
#: longer is probed on a smaller frame of the same shape (``probe_size``), its figures scaled by pixels
CALL_BUDGET_S = 2.0
#: frames of about this many pixels estimate what one call costs at the job's size
CALIBRATE_PIXELS = 128 * 128
#: a setting whose warm-up call took longer is not called again, its warm-up is its figure: first-call
#: costs are small beside it, and repeats would make a large frame's probe take minutes
LONG_CALL_S = 1.0


def candidates(spec: ModelSpec, device: torch.device) -> tuple[list[str], str]:
    """The precisions ``auto`` may choose for ``spec`` on ``device``, and why (one line)."""
    safe = spec.name in cpu_bf16_safe()
    if device.type == "cuda":
        if safe and torch.cuda.get_device_capability(device)[0] >= 8:
            return ["fp16", "bf16"], "CUDA: fp16, or bf16 (measured safe here, compute capability >= 8)"
        return ["fp16"], "CUDA: fp16"
    if not safe:
        return ["fp32", "fp32-cl"], (f"CPU: bf16 not measured within tolerance for {spec.name}; "
                                     "fp32 in either memory layout")
    if not cpu_has_bf16():
        return ["fp32", "fp32-cl"], (f"CPU {torch.backends.cpu.get_cpu_capability()} without bf16 units "
                                     "(bf16 would be emulated); fp32 in either memory layout")
    return ["bf16", "fp32-cl", "fp32"], "CPU with bf16 units; bf16 measured safe for this model"


def _probe_input(spec: ModelSpec, settings: ModelSettings, width: int, height: int,
                 outputs: int | None = None) -> np.ndarray:
    """Frames of the job's size with texture (the time of a dense model does not depend on their content):
    ``outputs`` output frames (default: ``PROBE_FRAMES`` for a recurrent model, one batch otherwise) and the
    window model's context."""
    if outputs is None:
        outputs = PROBE_FRAMES if spec.temporal == "recurrent" else concrete_batch(settings.batch)
    n = outputs + (0 if spec.temporal == "recurrent" else 2 * spec.radius)
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return np.stack([np.roll(base, k, axis=1) for k in range(n)])


def time_candidates(spec: ModelSpec, settings: ModelSettings, device: torch.device, frames: np.ndarray,
                    precisions: list[str], threads: int = 0) -> dict[str, float]:
    """Seconds per output frame of the real model in each of ``precisions`` on ``frames``.

    Every candidate is built and warmed up first (oneDNN primitives, allocations); one whose warm-up took
    over ``SLOWER`` times the fastest warm-up keeps that figure and is not timed further. The others are
    then timed in turns, ``PROBE_CALLS`` rounds of one call each (A, B, C, A, B, C): a burst of load from
    another process falls on all of them alike, and each keeps its fastest call. Where the fastest warm-up
    call took over ``LONG_CALL_S`` there are no rounds: the warm-ups are the figures."""
    from vsr_pipeline.engine import Engine

    n = len(frames) - 2 * spec.radius
    window, keep = slice(0, len(frames)), slice(spec.radius, spec.radius + n)

    def once(engine: Engine) -> float:
        start = time.perf_counter()
        engine.process(window, keep, frames)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - start) / n

    engines = {c: Engine.from_settings(replace(settings, precision=c), spec=spec, device=str(device),
                                       threads=threads) for c in precisions}
    seconds = {c: once(e) for c, e in engines.items()}  # the warm-ups
    fastest = min(seconds.values())
    timed = {c: seconds[c] for c in precisions if seconds[c] <= SLOWER * fastest}
    for _ in range(_rounds(fastest * n)):
        for c in timed:
            timed[c] = min(timed[c], once(engines[c]))
    return {c: round(timed.get(c, seconds[c]), 5) for c in precisions}


def _time_values(engine: Any, spec: ModelSpec, device: torch.device, frames: np.ndarray, values: list[int],
                 apply: Callable[[int], None]) -> dict[int, float]:
    """Seconds per output frame of ``engine`` on ``frames`` with each of ``values`` put in force by
    ``apply``: a warm-up at each (oneDNN primitives are made per shape and thread count), then
    ``PROBE_CALLS`` rounds in turns (none past ``LONG_CALL_S``), the fastest call of each kept."""
    n = len(frames) - 2 * spec.radius
    window, keep = slice(0, len(frames)), slice(spec.radius, spec.radius + n)

    def once(value: int) -> float:
        apply(value)
        start = time.perf_counter()
        engine.process(window, keep, frames)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - start) / n

    seconds = {v: once(v) for v in values}  # the warm-ups
    for _ in range(_rounds(min(seconds.values()) * n)):
        for v in values:
            seconds[v] = min(seconds[v], once(v))
    return {v: round(t, 5) for v, t in seconds.items()}


def _rounds(call_s: float) -> int:
    """Timed rounds after a warm-up whose fastest call took ``call_s``: none past ``LONG_CALL_S``."""
    return PROBE_CALLS if call_s <= LONG_CALL_S else 0


def _smaller(width: int, height: int, pixels: float) -> tuple[int, int]:
    """``width`` x ``height`` scaled to about ``pixels`` (aspect kept, even sides of at least 16)."""
    f = math.sqrt(pixels / (width * height))
    return max(16, int(width * f) // 2 * 2), max(16, int(height * f) // 2 * 2)


#: seconds per output frame and pixel, per (model, settings, device, calibration size, threads), this process
_CALIBRATED: dict[tuple[Any, ...], float] = {}


def probe_size(spec: ModelSpec, settings: ModelSettings, device: torch.device, width: int, height: int,
               threads: int = 0) -> tuple[int, int]:
    """The frame size probes for a ``width`` x ``height`` job run at: its own where one call is estimated
    within ``CALL_BUDGET_S``, else a smaller frame of the same shape whose call is (at least
    ``CALIBRATE_PIXELS``). The estimate: the model (``settings.precision``, or the first candidate for
    ``auto``) timed on ``CALIBRATE_PIXELS`` and scaled by pixels. Measured (BasicVSR x4 at 640x272, probed
    on 338x142 and scaled against probed at full size): bf16 2.60 / 2.64, fp32-cl 6.06 / 6.02, fp32 7.10 /
    7.04 s per frame, the same choices, 23.6 s of probing instead of 217 (docs/performance.md). CUDA: the
    job's size."""
    pixels = width * height
    if device.type == "cuda" or pixels <= CALIBRATE_PIXELS:
        return width, height
    if settings.precision == "auto":
        settings = replace(settings, precision=candidates(spec, device)[0][0])
    w, h = _smaller(width, height, CALIBRATE_PIXELS)
    # a job's precision, batch and thread probes share one calibration (the batch only sets the frames)
    key = (spec.name, replace(settings, batch=None, weights=None), str(device), w, h, threads)
    if key not in _CALIBRATED:
        from vsr_pipeline.engine import Engine

        frames = _probe_input(spec, settings, w, h)
        engine = Engine.from_settings(settings, spec=spec, device=str(device), threads=threads)
        _CALIBRATED[key] = _time_values(engine, spec, device, frames, [0], lambda _: None)[0] / (w * h)
    outputs = PROBE_FRAMES if spec.temporal == "recurrent" else concrete_batch(settings.batch)
    call = _CALIBRATED[key] * pixels * outputs
    if call <= CALL_BUDGET_S:
        return width, height
    return _smaller(width, height, max(CALIBRATE_PIXELS, pixels * CALL_BUDGET_S / call))


def _sized(spec: ModelSpec, settings: ModelSettings, device: torch.device, width: int, height: int,
           threads: int, outputs: int | None, run: Callable[[np.ndarray], dict[Any, float]]
           ) -> Callable[[], dict[Any, Any]]:
    """A probe for ``_probed``: ``run`` on frames of ``probe_size``, its seconds scaled to the job's pixels,
    and that size under ``"at"`` where it is not the job's."""
    def probe() -> dict[Any, Any]:
        w, h = probe_size(spec, settings, device, width, height, threads)
        seconds = run(_probe_input(spec, settings, w, h, outputs))
        ratio = width * height / (w * h)
        scaled = {k: round(v * ratio, 5) for k, v in seconds.items()}
        return scaled | ({"at": [w, h]} if (w, h) != (width, height) else {})
    return probe


def time_threads(spec: ModelSpec, settings: ModelSettings, device: torch.device, frames: np.ndarray,
                 counts: list[int]) -> dict[int, float]:
    """Seconds per output frame of ``settings`` (a concrete precision) at each torch thread count in
    ``counts`` (one engine; ``_time_values``). The process's thread count is restored after."""
    from vsr_pipeline.engine import Engine, set_threads

    before = torch.get_num_threads()
    engine = Engine.from_settings(settings, spec=spec, device=str(device), threads=counts[0])
    try:
        return _time_values(engine, spec, device, frames, counts, set_threads)
    finally:
        set_threads(before)


def time_batches(spec: ModelSpec, settings: ModelSettings, device: torch.device, frames: np.ndarray,
                 batches: list[int], threads: int = 0) -> dict[int, float]:
    """Seconds per output frame of ``settings`` (a concrete precision) at each batch in ``batches`` (one
    engine whose batch is set before each call; ``_time_values``)."""
    from vsr_pipeline.engine import Engine

    engine = Engine.from_settings(settings, spec=spec, device=str(device), threads=threads)
    return _time_values(engine, spec, device, frames, batches, lambda b: setattr(engine, "batch", b))


def _fewest_within(seconds: dict[int, float], gain: float) -> int:
    """The smallest setting whose time is within ``gain`` of the fastest."""
    fastest = min(seconds.values())
    return min(v for v, t in seconds.items() if t <= fastest * (1 + gain))


def _probed(key: str, values: list[Any], device: torch.device,
            probe: Callable[[], dict[Any, Any]]) -> tuple[dict[str, float], str]:
    """Seconds per value of ``values``, from the cache entry ``key`` when it holds a probe of the same
    ``values`` (not a busy one on an idle machine), else from ``probe()`` (cached; an ``"at"`` item in its
    result is the frame size it ran at, ``_sized``). Returns the seconds (keys as strings) and a note on
    where they came from."""
    path = cache_path()
    entry = load_cache(path).get(key)
    busy = busy_reason(device)
    if (isinstance(entry, dict) and not (entry.get("busy") and busy is None)
            and sorted(entry.get("seconds", {})) == sorted(str(v) for v in values)):
        note = " (probed on a busy machine)" if entry.get("busy") else ""
        return entry["seconds"], f"cached probe{_at(entry)}{note} ({path})"
    with _heap_like_the_actor():
        result = dict(probe())
    at = result.pop("at", None)
    seconds = {str(v): t for v, t in result.items()}
    cache = load_cache(path)
    cache[key] = {"seconds": seconds, "busy": busy is not None, **({"at": at} if at else {}),
                  "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    save_cache(path, cache)
    return seconds, f"probe{_at(cache[key])}{f' ({busy})' if busy else ''}"


def _at(entry: dict[str, Any]) -> str:
    at = entry.get("at")
    return f" on {at[0]}x{at[1]} frames, scaled by pixels," if at else ""


#: how much slower the model and the encoder run when they overlap on shared cores than each alone (x264's
#: threads, the decoder, Ray and the driver take turns on the model's core): ESPCN x4 at 640x272, 1 thread
#: beside x264 on 2 cores, ran 1.25x its time alone (AVX-512) and 1.16x (AVX2 emulated); `vsr bench`
#: pipeline_model_over_model, docs/performance.md
OVERLAP_SLOWDOWN = 1.2


def pipeline_seconds(model_s: dict[int, float], beside_s: float, cores: int) -> dict[int, float]:
    """Predicted wall seconds per frame of a job whose model takes ``model_s[t]`` per frame with ``t`` torch
    threads and whose decoder and encoder need ``beside_s`` CPU seconds per frame beside it, on ``cores``.

    With every core in the model's OpenMP team the two run one after the other, ``model_s + beside_s``: the
    team's threads spin-wait for each other whenever the encoder takes one of their cores (ESPCN x4
    640x272 -> 2560x1088 on 2 cores: 0.049 s model + 0.102 s x264 per frame predicted 0.151, the pipeline
    ran at 0.147 s per frame outside its start-up). With ``t`` < ``cores`` they overlap, the encoder on the
    other cores, each ``OVERLAP_SLOWDOWN`` slower than alone: ``max(model_s, beside_s / (cores - t))``
    times that."""
    if beside_s <= 0:
        return dict(model_s)
    return {t: (s + beside_s if t >= cores else OVERLAP_SLOWDOWN * max(s, beside_s / (cores - t)))
            for t, s in model_s.items()}


def choose_threads(settings: ModelSettings, device: torch.device, width: int, height: int,
                   spec: ModelSpec | None = None, cores: int | None = None,
                   beside: tuple[float, str] | None = None) -> tuple[int, str]:
    """Torch threads for the job's upscaler (``settings.precision`` concrete) on this machine, and why.

    The model is timed at every core, one fewer and half of them (cached); ``beside`` is the CPU seconds per
    frame that decoding and encoding need beside it and where that figure came from
    (``decode_encode_seconds``; None: nothing). The fewest threads whose ``pipeline_seconds`` are within
    ``THREAD_GAIN`` of the fastest win. CUDA: 0 (torch's own choice; the model does not run on them)."""
    spec = spec or get_spec(settings.model)
    cores = cores or os.cpu_count() or 1
    if device.type == "cuda":
        return 0, "CUDA: the model runs on the GPU"
    counts = sorted({cores, cores - 1, max(1, cores // 2)} - {0}, reverse=True)
    if len(counts) == 1:
        return cores, "one core"
    key = _key(spec, settings, device, width, height) + f"|threads|{settings.precision}"
    seconds, source = _probed(key, counts, device, _sized(
        spec, settings, device, width, height, cores, None,
        lambda frames: time_threads(spec, settings, device, frames, counts)))
    beside_s, beside_note = beside or (0.0, "")
    predicted = pipeline_seconds({int(k): float(v) for k, v in seconds.items()}, beside_s, cores)
    choice = _fewest_within(predicted, THREAD_GAIN)
    if choice == cores:
        rule = "every core"
    elif beside_s > 0 and min(seconds.values()) < float(seconds[str(choice)]) * (1 - THREAD_GAIN):
        rule = f"{cores - choice} core(s) left to decode and encode, which then overlap the model"
    else:
        rule = f"more threads gain under {THREAD_GAIN:.0%}, the rest of the cores left to decode and encode"
    why = f"{rule}; {source} model {_thread_figures(seconds)} at {width}x{height}"
    if beside_s > 0:
        why += (f"; decode+encode {beside_s:.4f} CPU-s/frame ({beside_note}) -> predicted "
                + ", ".join(f"{t} threads {s:.4f}" for t, s in sorted(predicted.items(), reverse=True))
                + " s/frame")
    return choice, why


def decode_encode_seconds(input_path: str | Path, info: Any, scale: int, encode: Any, suffix: str,
                          device: torch.device) -> tuple[float, str]:
    """CPU seconds per frame that decoding ``input_path`` and encoding its output (``EncodeSettings``
    ``encode``, a ``suffix`` video or PNGs for "") take on this machine (``vsr_pipeline.encode_cost``), and
    where the figure came from. Cached per machine, encode settings, output kind and frame sizes. (0.0, why)
    when it cannot be measured: the thread choice then considers the model alone."""
    from vsr_pipeline.encode_cost import time_decode_encode

    bits = encode.bits_for(info, info.width * scale, info.height * scale)
    extra = [*([encode.tune] if encode.tune else []), *([f"{bits}bit"] if bits > 8 else []),
             *([f"chroma{encode.chroma}"] if encode.chroma not in (None, "420") else []),
             *encode.codec_options]
    settings = [encode.codec, encode.crf, encode.preset, *extra]
    key = json.dumps({"machine": machine(device), "decode_encode": settings,
                      "suffix": suffix, "size": [info.width, info.height], "scale": scale}, sort_keys=True)
    try:
        seconds, source = _probed(key, ["decode", "encode"], device,
                                  lambda: time_decode_encode(input_path, info, scale, encode, suffix))
    except Exception as exc:  # a probe is advice: the job reports its own errors on these files
        log.debug("decode/encode cost not measured (%s); threads chosen by the model alone", exc)
        return 0.0, f"not measured: {exc}"
    source = source.replace(f" ({cache_path()})", "")  # the thread reason names the cache once
    return (float(seconds["decode"]) + float(seconds["encode"]),
            f"{source}: decode {float(seconds['decode']):.4f}, encode {float(seconds['encode']):.4f}")


def choose_job_threads(settings: ModelSettings, device: torch.device, input_path: str | Path, info: Any,
                       encode: Any, suffix: str, spec: ModelSpec | None = None, cores: int | None = None
                       ) -> tuple[int, str]:
    """``choose_threads`` for a job that decodes ``input_path`` (``info``) and encodes a ``suffix`` output
    with ``encode``: that work is measured and weighed beside the model where more than one core is shared
    out (``decode_encode_seconds``). What ``vsr upscale``, ``vsr batch`` and ``vsr bench`` call."""
    cores = cores or os.cpu_count() or 1
    beside = None
    if device.type != "cuda" and cores > 1:
        beside = decode_encode_seconds(input_path, info, settings.scale, encode, suffix, device)
    return choose_threads(settings, device, info.width, info.height, spec, cores, beside=beside)


def choose_batch(settings: ModelSettings, device: torch.device, width: int, height: int,
                 spec: ModelSpec | None = None, threads: int = 0) -> tuple[int, str]:
    """Frames (single-image model) or windows (window model) per forward call for ``settings``
    (``settings.precision`` concrete) on this machine at ``width`` x ``height``, and why.

    ``settings.batch`` set: kept. A recurrent model takes a chunk as one sequence: ``DEFAULT_BATCH``, never
    used. Otherwise ``CPU_BATCHES`` / ``CUDA_BATCHES`` are timed on one engine (a larger batch amortises
    per-call costs, a smaller one keeps a large frame's feature maps in cache; on the CPUs measured so far
    they differ by at most 7 %, docs/performance.md) and the smallest within ``BATCH_GAIN`` of the fastest
    wins (less memory, less padding of a chunk's last call). Cached like the precision."""
    spec = spec or get_spec(settings.model)
    if settings.batch is not None:
        return settings.batch, f"--batch {settings.batch}"
    if spec.temporal == "recurrent":
        return DEFAULT_BATCH, "recurrent model: a chunk is one sequence, no batch to choose"
    batches = list(CUDA_BATCHES if device.type == "cuda" else CPU_BATCHES)
    key = _key(spec, settings, device, width, height) + f"|batch|{settings.precision}|{threads}"
    seconds, source = _probed(key, batches, device, _sized(
        spec, settings, device, width, height, threads, max(batches),
        lambda frames: time_batches(spec, settings, device, frames, batches, threads)))
    choice = _fewest_within({int(k): float(v) for k, v in seconds.items()}, BATCH_GAIN)
    rule = (f"larger batches gain under {BATCH_GAIN:.0%}" if choice < max(batches)
            else "the largest batch tried is the fastest")
    figures = ", ".join(f"batch {k} {float(v):.4f} s/frame" for k, v in sorted(seconds.items(),
                                                                              key=lambda kv: int(kv[0])))
    return choice, f"{rule}; {source} {figures} at {width}x{height}"


def _thread_figures(seconds: dict[Any, float]) -> str:
    return ", ".join(f"{k} threads {float(v):.4f} s/frame" for k, v in sorted(seconds.items(),
                                                                              key=lambda kv: -int(kv[0])))


def _key(spec: ModelSpec, settings: ModelSettings, device: torch.device, width: int, height: int,
         threads: int | None = None) -> str:
    # not the weights: their values do not change the time of a dense model, only its architecture does.
    # ``threads``: what the probe runs with (not the process's count now: an engine made earlier in this
    # process, vsr bench's model-only run at 1 thread, would change the key and re-probe inside the job)
    return json.dumps({"machine": machine(device), "model": spec.name,
                       "scale": settings.scale, "batch": settings.batch, "tile": settings.tile,
                       "backbone": settings.backbone, "size": [width, height],
                       **({"threads": threads} if threads is not None else {})}, sort_keys=True)


def choose_precision(settings: ModelSettings, device: torch.device, width: int, height: int,
                     spec: ModelSpec | None = None, threads: int = 0) -> tuple[str, str]:
    """The concrete precision for ``settings`` on ``device`` at ``width`` x ``height`` frames, and why.

    ``settings.precision`` other than ``auto`` is returned as it is (validated). ``threads``: torch threads
    the probe runs with (0: leave them)."""
    spec = spec or get_spec(settings.model)
    if settings.precision != "auto":
        return resolve_precision(settings.precision, device, spec.name), f"--precision {settings.precision}"
    allowed, why = candidates(spec, device)
    if len(allowed) == 1:
        return allowed[0], why
    probe_threads = threads or (0 if device.type == "cuda" else torch.get_num_threads())
    key = _key(spec, settings, device, width, height, probe_threads)
    seconds, source = _probed(key, allowed, device, _sized(
        spec, settings, device, width, height, threads, None,
        lambda frames: time_candidates(spec, settings, device, frames, allowed, threads)))
    choice = min(allowed, key=lambda c: float(seconds[c]))
    return choice, f"{why}; {source} {_figures(seconds)} at {width}x{height}"


def _figures(seconds: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f} s/frame" for k, v in sorted(seconds.items(), key=lambda kv: kv[1]))


@contextmanager
def _heap_like_the_actor() -> Iterator[None]:
    """Run a probe with the upscaler actor's malloc settings (``vsr_pipeline.heap``: freed large buffers
    reused, ``Engine(reuse_memory=True)``), then glibc's defaults again and the probe's buffers handed back
    to the OS (the driver keeps running the job). Without it a probe pays page faults the actor does not:
    ESPCN x4 at 640x272 timed 1.5x faster at batch 1 than at 4 that way, where in the actor both ran alike
    (docs/performance.md)."""
    from vsr_pipeline.heap import release_free_memory, reuse_freed_memory

    reuse_freed_memory(True)
    try:
        yield
    finally:
        reuse_freed_memory(False)
        release_free_memory()
