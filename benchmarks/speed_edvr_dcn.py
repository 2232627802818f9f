"""EDVR forward time on the CPU and the share of it spent in the deformable convolutions (issue 3).

    python benchmarks/speed_edvr_dcn.py [--quick] [--model edvr-m] [--size 64] [--frames-batch 1]
                                        [--repeats 5] [--threads 1] [--json benchmarks/results/edvr_dcn.json]

Builds the model untrained (timing does not depend on the weights, except that the offsets are set to
small random values so the sampling is fractional as after training), runs a ``(B, 5, 3, size, size)``
window through it under ``torch.no_grad()`` and reports the best and median wall time of ``--repeats``
runs, the time inside ``modulated_deform_conv2d`` (all DCNs of PCD: L3, L2, L1, cascading) and the
backend used (torchvision when it imports, else the pure-PyTorch one). ``--quick``: 2 repeats at 32x32.
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

import models.ops.deform_conv as dcn
from models.registry import build_model

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 repeats at 32x32")
    parser.add_argument("--model", default="edvr-m")
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--frames-batch", type=int, default=1, help="windows per forward call")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "edvr_dcn.json")
    args = parser.parse_args()
    if args.quick:
        args.size, args.repeats = 32, 2
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model = build_model(args.model, args.scale).eval()
    for m in model.modules():
        if isinstance(m, dcn.DCNv2Pack):
            torch.nn.init.normal_(m.conv_offset.weight, std=0.01)
    x = torch.rand(args.frames_batch, model.num_frame, 3, args.size, args.size)

    spent = [0.0]
    original = dcn.modulated_deform_conv2d

    def timed(*a: object, **k: object) -> torch.Tensor:
        t0 = time.perf_counter()
        out = original(*a, **k)  # type: ignore[arg-type]
        spent[0] += time.perf_counter() - t0
        return out

    dcn.modulated_deform_conv2d = timed  # DCNv2Pack looks the function up in its module at call time
    totals, in_dcn = [], []
    try:
        with torch.no_grad():
            model(x)  # warm-up
            for _ in range(args.repeats):
                spent[0] = 0.0
                t0 = time.perf_counter()
                model(x)
                totals.append(time.perf_counter() - t0)
                in_dcn.append(spent[0])
    finally:
        dcn.modulated_deform_conv2d = original

    backend = "torchvision" if dcn.torchvision_deform_conv2d() is not None else "pure"
    best = min(range(len(totals)), key=totals.__getitem__)
    result = {
        "model": args.model, "scale": args.scale, "input": list(x.shape), "threads": args.threads,
        "backend": backend, "repeats": args.repeats,
        "forward_s_best": round(totals[best], 4), "forward_s_median": round(statistics.median(totals), 4),
        "dcn_s_at_best": round(in_dcn[best], 4), "dcn_share_at_best": round(in_dcn[best] / totals[best], 3),
        "torch": torch.__version__, "machine": platform.machine(), "cpus": os.cpu_count(),
        "load_average_1min_after": round(os.getloadavg()[0], 2),  # other processes inflate wall times
    }
    print(json.dumps(result, indent=1))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
