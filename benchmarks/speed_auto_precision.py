"""What ``--precision auto`` and ``--batch auto`` choose on this machine, and the probes' figures: the table
of docs/performance.md "How auto decides". Probes with a fresh cache (nothing reused), at the frame sizes the
docs quote, in a job's order: precision, then batch (``choose_batch``), then the upscaler threads
(``choose_threads`` on the model alone: a job also weighs its decode and encode, which depend on its input
and encode settings; ``vsr bench`` reports that choice).

    python benchmarks/speed_auto_precision.py    # -> benchmarks/results/auto_precision_<capability>.json
    # an AVX2-only CPU, emulated on an AVX-512 one (oneDNN and ATen kernels limited to AVX2; the ISA cap
    # also tells ``precision.cpu_has_bf16`` that the bf16 units are out of use):
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/speed_auto_precision.py \
        --out benchmarks/results/auto_precision_avx2_emulated.json
    # an AVX-512 CPU without bf16 units (Skylake to Ice Lake), emulated the same way:
    ONEDNN_MAX_CPU_ISA=AVX512_CORE python benchmarks/speed_auto_precision.py --case basicvsr:160x68 \
        --case espcn:640x272 --out benchmarks/results/auto_precision_avx512_core_emulated.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from models.registry import get_spec
from vsr_pipeline.autotune import candidates, choose_batch, choose_precision, choose_threads, machine
from vsr_pipeline.options import ModelSettings

ROOT = Path(__file__).resolve().parents[1]
#: (model, scale, width, height): BasicVSR on bikes.mp4 downscaled 4x and at its native size; ESPCN native
CASES = [("basicvsr", 4, 160, 68), ("basicvsr", 4, 640, 272), ("espcn", 4, 160, 68), ("espcn", 4, 640, 272),
         ("realesr-animevideo", 4, 160, 68), ("vespcn", 4, 640, 272), ("edvr-s", 4, 160, 68)]
#: ``--batch`` (frames per forward call of a single-image model): is it worth probing? Timed at these sizes
BATCH_CASES = [("espcn", 4, 160, 68), ("espcn", 4, 640, 272), ("realesr-animevideo", 4, 160, 68)]  # in CASES
BATCHES = [1, 4, 8]


def batch_seconds(model: str, scale: int, w: int, h: int, precision: str) -> dict[int, float]:
    """Seconds per frame at each of ``BATCHES`` (fastest of 3 calls on 8 frames, after a warm-up)."""
    import numpy as np

    from vsr_pipeline.engine import Engine

    frames = np.random.default_rng(0).integers(0, 256, (8, h, w, 3), dtype=np.uint8)
    out = {}
    for batch in BATCHES:
        settings = ModelSettings(model=model, scale=scale, batch=batch, precision=precision)
        engine = Engine.from_settings(settings, spec=get_spec(model), device="cpu",  # heap as in the actor
                                      threads=os.cpu_count() or 1, reuse_memory=True)
        best = float("inf")
        for _ in range(4):
            start = time.perf_counter()
            engine.process(slice(0, 8), slice(0, 8), frames)
            best = min(best, time.perf_counter() - start)
        out[batch] = round(best / 8, 5)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--quick", action="store_true", help="skip BasicVSR at 640x272 (minutes per candidate)")
    ap.add_argument("--case", action="append", default=[], metavar="MODEL:WxH",
                    help="only these cases (repeatable), e.g. basicvsr:640x272; no batch table")
    args = ap.parse_args()
    cases = [c for c in CASES if not (args.quick and c[:1] == ("basicvsr",) and c[2] > 320)]
    if args.case:
        cases = [c for c in CASES if f"{c[0]}:{c[2]}x{c[3]}" in args.case]
    cpu = torch.device("cpu")
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        os.environ["VSR_CACHE_DIR"] = cache
        for model, scale, w, h in cases:
            allowed, _ = candidates(get_spec(model), cpu)
            started = time.perf_counter()  # the three probes of a first job at this size, fresh cache
            choice, reason = choose_precision(ModelSettings(model=model, scale=scale), cpu, w, h,
                                              threads=os.cpu_count() or 1)
            entry = json.loads((Path(cache) / "autotune.json").read_text())
            keys = {k: json.loads(k) for k in entry if "|" not in k}
            seconds = next((entry[k]["seconds"] for k, v in keys.items()
                            if v["model"] == model and v["size"] == [w, h]), {choice: None})
            chosen = ModelSettings(model=model, scale=scale, precision=choice)
            batch, batch_reason = choose_batch(chosen, cpu, w, h, threads=os.cpu_count() or 1)
            chosen = ModelSettings(model=model, scale=scale, precision=choice, batch=batch)
            threads, threads_reason = choose_threads(chosen, cpu, w, h)
            probe_s = round(time.perf_counter() - started, 1)
            rows.append({"model": model, "size": f"{w}x{h}", "probe_s": probe_s, "candidates": allowed,
                         "choice": choice,
                         "seconds_per_frame": seconds, "reason": reason, "batch": batch,
                         "batch_reason": batch_reason, "threads": threads,
                         "threads_reason": threads_reason, "load": os.getloadavg()[0]})
            print(f"{model:20} {w}x{h}: probes {probe_s} s; {choice:8} {seconds}; batch {batch} "
                  f"({batch_reason}); {threads} threads ({threads_reason})", flush=True)
        batches = []
        for model, scale, w, h in [] if args.case else BATCH_CASES:
            precision = next(r["choice"] for r in rows if r["model"] == model and r["size"] == f"{w}x{h}")
            seconds = batch_seconds(model, scale, w, h, precision)
            batches.append({"model": model, "size": f"{w}x{h}", "precision": precision,
                            "seconds_per_frame_by_batch": seconds})
            print(f"{model:20} {w}x{h} {precision}: batch {seconds}", flush=True)
    info = machine(cpu)
    info["onednn_max_cpu_isa"] = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
    out = args.out or ROOT / "benchmarks" / "results" / f"auto_precision_{info['capability'].lower()}.json"
    out.write_text(json.dumps({"machine": info, "rows": rows, "batch": batches}, indent=1))


if __name__ == "__main__":
    main()
