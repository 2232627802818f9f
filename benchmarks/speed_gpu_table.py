"""Issue 6's GPU table, runnable on the lent GPU machine, whose image has torch, numpy and OpenCV but not PyAV
or Ray: the model alone (``vsr_pipeline.engine.Engine``, what the pipeline's upscaler actor runs) per
precision, and each precision's Y-PSNR against fp32's on real frames. Also runs on the CPU (small sizes: a
smoke test). The GPU machine has no install of this project: run it there from the repository root with
``PYTHONPATH=.`` so that ``vsr_pipeline`` and ``models`` import from the checkout.

    # here (PyAV): real frames of bikes.mp4 as PNGs, and the BasicVSR weights, into a carried folder
    .venv/bin/python benchmarks/speed_gpu_table.py --extract .gpu_carry
    # on the GPU machine (carry .gpu_carry; plain python3 holds CUDA torch; the checkout on the path):
    PYTHONPATH=. python3 benchmarks/speed_gpu_table.py --device cuda --carry .gpu_carry \
        --out $OUT/gpu_table.json

- ``speed``: BasicVSR x4 on one ``--frames``-frame sequence of ``--basicvsr-size`` LR (default 180x320, the
  issue's "x4 from 320x180"; random content: speed does not depend on it), and ESPCN x4 on ``--frames`` frames
  of 272x640 in batches of ``--batch``; per precision, the median of ``--repeats`` calls after a warm-up, the
  time including the uint8 output's copy back to the host (``Engine.process``), ``torch.compile`` too with
  ``--compile``; peak device memory.
- ``quality``: BasicVSR x4 (REDS4) on the first ``--quality-frames`` frames of bikes.mp4 (640x272 ground
  truth, LR by MATLAB bicubic x4), per precision: Y-PSNR against the ground truth (crop 4) and its
  difference from fp32's (``vsr_pipeline.precision``'s rule: within 0.02 dB). Never the benchmark sets.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIKES = ROOT.parent / "shared" / "data" / "videos" / "bikes.mp4"
WEIGHTS_FILE = "basicvsr_reds4.pth"


def extract(carry: Path, frames: int) -> None:
    """Write bikes.mp4's first ``frames`` frames as PNGs and the BasicVSR REDS4 weights into ``carry``."""
    import cv2

    from models.registry import resolve_weights
    from vsr_pipeline.media import FrameReader

    (carry / "bikes").mkdir(parents=True, exist_ok=True)
    with FrameReader(BIKES) as reader:
        rgb, _ = reader.read(frames)
    for i, frame in enumerate(rgb):
        cv2.imwrite(str(carry / "bikes" / f"{i:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    weights = resolve_weights("basicvsr", None)
    assert weights is not None
    shutil.copyfile(weights, carry / WEIGHTS_FILE)
    print(f"{len(rgb)} frames and {weights.name} in {carry}")


def read_frames(folder: Path, frames: int) -> Any:
    import cv2
    import numpy as np

    paths = sorted(folder.glob("*.png"))[:frames]
    if not paths:
        sys.exit(f"speed_gpu_table: error: no PNG frames in {folder} (run --extract first)")
    return np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths])


def sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(up: Any, lr: Any, repeats: int, chunked: bool, batch: int) -> list[float]:
    """Seconds per call of ``up.process`` over all of ``lr`` (a recurrent model: one sequence; otherwise
    ``batch`` frames per call), after one warm-up."""
    n = len(lr)
    steps = [(0, n)] if not chunked else [(s, min(n, s + batch)) for s in range(0, n, batch)]

    def once() -> float:
        sync(up.device)
        start = time.perf_counter()
        for a, b in steps:
            up.process(slice(a, b), slice(0, b - a), lr)
        sync(up.device)
        return time.perf_counter() - start

    once()
    return [once() for _ in range(repeats)]


def speed(args: argparse.Namespace, weights: str | None) -> list[dict[str, Any]]:
    import numpy as np
    import torch

    from vsr_pipeline.engine import Engine

    rng = np.random.default_rng(0)
    h, w = (int(v) for v in args.basicvsr_size.split("x"))
    cases = [("basicvsr", weights, (h, w), False), ("espcn", None, (272, 640), True)]
    rows = []
    for model, model_weights, (height, width), chunked in cases:
        lr = rng.integers(0, 256, (args.frames, height, width, 3), dtype=np.uint8)
        for precision in args.precisions:
            for compile_ in ([False, True] if args.compile else [False]):
                if args.device.startswith("cuda"):
                    torch.cuda.reset_peak_memory_stats()
                up = Engine(model, model_weights, 4, args.device, args.threads, args.batch,
                            precision=precision, compile=compile_)
                seconds = time_calls(up, lr, args.repeats, chunked, args.batch)
                median = statistics.median(seconds)
                row = {"model": model, "lr": f"{width}x{height}", "frames": args.frames,
                       "precision": precision, "compile": compile_, "batch": args.batch if chunked else None,
                       "seconds": [round(s, 4) for s in seconds], "fps": round(args.frames / median, 2),
                       "ms_per_frame": round(1000 * median / args.frames, 3),
                       "device": up.device_name()}
                if up.device.type == "cuda":
                    row["peak_mem_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
                print(json.dumps(row), flush=True)
                rows.append(row)
                del up
    return rows


def quality(args: argparse.Namespace, weights: str | None) -> list[dict[str, Any]]:
    import numpy as np

    from vsr_pipeline.degrade import crop_to_multiple, degrade_bi
    from vsr_pipeline.engine import Engine
    from vsr_pipeline.metrics import psnr_y

    gt = np.ascontiguousarray(crop_to_multiple(read_frames(args.carry / "bikes", args.quality_frames), 4))
    lr = degrade_bi(gt, 4)
    n = len(lr)
    rows = []
    for precision in ["fp32", *[p for p in args.precisions if p != "fp32"]]:
        up = Engine("basicvsr", weights, 4, args.device, args.threads, args.batch, precision=precision)
        sr = up.process(slice(0, n), slice(0, n), lr)
        psnr = float(np.mean([psnr_y(s, g, crop_border=4) for s, g in zip(sr, gt, strict=True)]))
        rows.append({"precision": precision, "frames": n, "psnr_y": round(psnr, 4),
                     "delta_db": round(psnr - rows[0]["psnr_y"], 4) if rows else 0.0})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--extract", type=Path, help="write frames and weights to this folder, then stop")
    ap.add_argument("--carry", type=Path, default=ROOT / ".gpu_carry", help="folder made by --extract")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precisions", nargs="+", default=["fp32", "fp16", "bf16"])
    ap.add_argument("--frames", type=int, default=100, help="frames per timed call (default 100)")
    ap.add_argument("--basicvsr-size", default="180x320", help="BasicVSR's LR size HxW (default 180x320)")
    ap.add_argument("--batch", type=int, default=8, help="frames per forward for ESPCN (default 8)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    ap.add_argument("--quality-frames", type=int, default=30)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_table.json")
    args = ap.parse_args()
    if args.extract is not None:
        extract(args.extract, max(args.quality_frames, 30))
        return

    import torch

    weights_path = args.carry / WEIGHTS_FILE
    weights = str(weights_path) if weights_path.exists() else None  # None: the installed package's file
    result: dict[str, Any] = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "args": {k: str(v) for k, v in vars(args).items()},
        "speed": speed(args, weights),
        "quality": quality(args, weights),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
