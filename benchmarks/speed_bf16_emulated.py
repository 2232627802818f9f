"""How much slower a forced ``--precision bf16`` runs than fp32 on this CPU (the figure behind the warning
``precision.emulated_bf16_note`` gives where the CPU lacks bf16 units).

    python benchmarks/speed_bf16_emulated.py [--model basicvsr] [--frames 2] [--size 16x32] [--json PATH]

Real frames (the first of bikes.mp4, MATLAB bicubic x4 down, cropped to ``--size`` LR), the model's default
weights, the engine's forward (``vsr_pipeline.engine``) in fp32 and in bf16 autocast, one warm-up each, then
the fastest of ``--repeats`` calls. Without bf16 units PyTorch runs bf16 convolutions through its generic
``_slow_conv2d_forward`` (no oneDNN kernel), which the ratio shows.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    from vsr_pipeline.degrade import degrade_bi
    from vsr_pipeline.engine import Engine
    from vsr_pipeline.media import FrameReader
    from vsr_pipeline.precision import cpu_has_bf16

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="basicvsr")
    ap.add_argument("--frames", type=int, default=2)
    ap.add_argument("--size", default="16x32", help="LR HxW (default 16x32)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    h, w = map(int, args.size.split("x"))
    with FrameReader(ROOT.parent / "shared" / "data" / "videos" / "bikes.mp4") as reader:
        hr = reader.read(args.frames)[0][:, 64 : 64 + 4 * h, 160 : 160 + 4 * w]
    lr = np.ascontiguousarray(degrade_bi(np.ascontiguousarray(hr), 4))
    n = len(lr)
    seconds = {}
    for precision in ("fp32", "bf16"):
        engine = Engine(args.model, None, 4, "cpu", precision=precision)
        engine.process(slice(0, n), slice(0, n), lr)  # warm-up
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            engine.process(slice(0, n), slice(0, n), lr)
            runs.append(time.perf_counter() - start)
        seconds[precision] = round(min(runs) / n, 4)
        print(f"{args.model} {precision}: {seconds[precision]} s/frame", flush=True)
    result = {"model": args.model, "lr_size": args.size, "frames": n, "s_per_frame": seconds,
              "bf16_over_fp32": round(seconds["bf16"] / seconds["fp32"], 1), "bf16_units": cpu_has_bf16(),
              "capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads(),
              "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
