"""CPU time per output frame of every registered model, in one run.

    python benchmarks/speed_model.py [--height 180 --width 320] [--repeats 3] [--threads 2] [--models a b ...]
                                    [--json benchmarks/results/model_speed.json]

Each model is built with random weights (speed does not depend on the values) at x4, or at its largest
scale below 4 where x4 is not defined, and run under ``torch.inference_mode`` in fp32 on a
``(1, 3, H, W)`` frame (single-image models), a ``(1, 2r+1, 3, H, W)`` window (window models: one output
frame per call) or a ``(1, T, 3, H, W)`` sequence (recurrent models: time divided by ``T``).
The first call is a warm-up; when it takes longer than ``--slow`` seconds (pre-upsampling models work at
the output size and take tens of seconds) it is the measurement, otherwise the median of ``--repeats``
further calls is. Models whose module is missing are reported with their error, not skipped silently.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from models.registry import build_model, count_params, list_specs


def pick_scale(scales: tuple[int, ...]) -> int:
    """x4 where the model defines it, else its largest scale below 4, else its smallest."""
    if 4 in scales:
        return 4
    below = [s for s in scales if s < 4]
    return max(below) if below else min(scales)


def time_model(name: str, height: int, width: int, repeats: int, seq: int, slow: float) -> dict:
    spec = next(s for s in list_specs() if s.name == name)
    scale = pick_scale(spec.scales)
    model = build_model(name, scale).eval()
    if spec.temporal == "window":
        x = torch.rand(1, 2 * spec.radius + 1, 3, height, width)
        per_call = 1
    elif spec.temporal == "recurrent":
        x = torch.rand(1, seq, 3, height, width)
        per_call = seq
    else:
        x = torch.rand(1, 3, height, width)
        per_call = 1
    with torch.inference_mode():
        t0 = time.perf_counter()
        model(x)  # warm-up, and the measurement of a slow model
        times = [time.perf_counter() - t0]
        if times[0] <= slow:
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - t0)
    sec = statistics.median(times) / per_call
    return {
        "model": name,
        "scale": scale,
        "params": count_params(model),
        "input": [height, width],
        "frames_per_call": per_call,
        "seconds_per_frame": round(sec, 4),
        "frames_per_second": round(1.0 / sec, 3),
        "timed_calls": len(times),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--height", type=int, default=180)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--slow", type=float, default=5.0, help="a slower first call is the measurement")
    ap.add_argument("--seq", type=int, default=5, help="frames per call for recurrent models")
    ap.add_argument("--models", nargs="*", help="default: every registered model")
    ap.add_argument("--json", type=Path, default=Path("benchmarks/results/model_speed.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    names = args.models or [s.name for s in list_specs()]
    rows = []
    for name in names:
        try:
            row = time_model(name, args.height, args.width, args.repeats, args.seq, args.slow)
        except Exception as exc:  # a model that cannot be built or run is reported, not hidden
            row = {"model": name, "error": f"{type(exc).__name__}: {exc}"}
        rows.append(row)
        if "error" in row:
            print(f"{name:<14} ERROR {row['error']}", flush=True)
        else:
            print(f"{name:<14} x{row['scale']}  {row['params']:>11,} params  "
                  f"{row['seconds_per_frame']:>9.3f} s/frame  {row['frames_per_second']:>8.2f} frames/s",
                  flush=True)
    out = {
        "load_average_after": list(os.getloadavg()),
        "command": "python benchmarks/speed_model.py " + " ".join(
            f"--{k} {v}" for k, v in [("height", args.height), ("width", args.width),
                                      ("repeats", args.repeats), ("threads", args.threads)]),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "threads": args.threads,
        "precision": "fp32",
        "models": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
