"""How close does each precision run a model to what this CPU can compute? FLOPs, machine peak, headroom.

    python benchmarks/speed_compute_headroom.py [--model basicvsr] [--size 160x68] [--frames 12]
                                                [--repeats 3] [--json PATH]

On a CPU without bf16 units (AVX2 only: AMD Zen 2/3, Intel before Sapphire Rapids) the pipeline can only
run a model in float32; this says how much faster any float32 path could still be. Per output frame:

- ``gflop_per_frame``: the model's convolution and matrix FLOPs (2 per multiply-add), counted by
  ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass of the engine (``vsr_pipeline.engine``)
  over ``--frames`` frames of ``--size``;
- per precision (fp32 NCHW: what the naive loop runs; fp32 channels-last; bf16 channels-last where oneDNN
  reports bf16 units): seconds per frame (engine forward, warm, fastest of ``--repeats``) and the GFLOP/s
  it reaches;
- ``peak_gflops``: the fastest this machine runs the layer that makes up most of these models, a 3x3
  64->64 convolution on a batch of 8 feature maps of ``--size``, in each precision and layout;
- ``fp32_headroom``: peak fp32 GFLOP/s (best layout) over the model's fp32 NCHW GFLOP/s: the largest
  speed-up any float32 implementation of the same arithmetic could give here (a bound: no model runs every
  FLOP at the peak of its best layer).

Random frames (the arithmetic does not depend on the values). To see a CPU without bf16 units on one that
has them, emulate it: ``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2`` (AVX2 kernels, no AVX-512, no
AMX; clock and caches stay this machine's).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from vsr_pipeline.engine import Engine
from vsr_pipeline.precision import cpu_has_bf16

#: the settings that make this machine's oneDNN and ATen kernels those of an AVX2-only CPU
EMULATION = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")


def best_seconds(run: object, repeats: int) -> float:
    """Fastest of ``repeats`` timed calls of ``run`` after one warm-up call."""
    run()  # type: ignore[operator]
    times = []
    for _ in range(repeats):
        s = time.perf_counter()
        run()  # type: ignore[operator]
        times.append(time.perf_counter() - s)
    return min(times)


def conv_peak(width: int, height: int, repeats: int, bf16: bool) -> dict[str, float]:
    """GFLOP/s of a 3x3 64->64 convolution on 8 maps of ``height x width``, per precision and layout."""
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).eval()
    x = torch.rand(8, 64, height, width)
    flop = 2 * 64 * 64 * 9 * height * width * 8
    out: dict[str, float] = {}
    cases = [("fp32", torch.contiguous_format, None), ("fp32-cl", torch.channels_last, None)]
    if bf16:
        cases.append(("bf16-cl", torch.channels_last, torch.bfloat16))
    with torch.inference_mode():
        for name, layout, dtype in cases:
            c, xi = conv.to(memory_format=layout), x.to(memory_format=layout)

            def run(c: torch.nn.Module = c, xi: torch.Tensor = xi, dtype: torch.dtype | None = dtype) -> None:
                with torch.autocast("cpu", dtype=dtype or torch.float32, enabled=dtype is not None):
                    c(xi)

            out[name] = round(flop / best_seconds(run, repeats) / 1e9, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="basicvsr")
    ap.add_argument("--weights", default=None)
    ap.add_argument("--size", default="160x68", help="LR frame size WxH")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    torch.manual_seed(0)
    frames = np.random.default_rng(0).integers(0, 256, (args.frames, height, width, 3), dtype=np.uint8)
    n, every = args.frames, slice(0, args.frames)
    bf16 = cpu_has_bf16()

    fp32 = Engine(args.model, args.weights, 4, "cpu", batch=min(4, n), precision="fp32")
    with FlopCounterMode(display=False) as counter:
        fp32.process(every, every, frames)
    gflop = counter.get_total_flops() / 1e9 / n

    precisions = ["fp32", "fp32-cl"] + (["bf16"] if bf16 else [])
    models: dict[str, dict[str, float]] = {}
    for p in precisions:
        engine = fp32 if p == "fp32" else Engine(args.model, args.weights, 4, "cpu", batch=min(4, n),
                                                 precision=p)
        s = best_seconds(lambda e=engine: e.process(every, every, frames), args.repeats) / n
        models[p] = {"s_per_frame": round(s, 4), "gflops": round(gflop / s, 1)}
        print(f"{args.model} {p}: {s:.4f} s/frame, {gflop / s:.1f} GFLOP/s", flush=True)
    peak = conv_peak(width, height, args.repeats, bf16)
    fp32_peak = max(peak["fp32"], peak["fp32-cl"])
    result = {
        "model": args.model,
        "lr_size": f"{width}x{height}",
        "frames": n,
        "gflop_per_frame": round(gflop, 2),
        "models": models,
        "peak_gflops": peak,
        "fp32_share_of_peak": round(models["fp32"]["gflops"] / fp32_peak, 3),
        "fp32_headroom": round(fp32_peak / models["fp32"]["gflops"], 2),
        "fp32_cl_over_fp32": round(models["fp32"]["s_per_frame"] / models["fp32-cl"]["s_per_frame"], 2),
        "cpu": platform.processor() or platform.machine(),
        "capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_units": bf16,
        "emulation": {k: os.environ[k] for k in EMULATION if k in os.environ},
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "loadavg": [round(v, 2) for v in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
