"""How much temporal padding a recurrent model needs so chunked output matches whole-sequence output.

    python benchmarks/quality_chunk_padding.py [--model basicvsr --weights vimeo-bi] [--chunk 10]
        [--paddings 0 2 5 10 20] [--sequences calendar city] [--dataset ../shared/data/benchmarks/vid4]

For each padding P, every sequence is split into chunks of `--chunk` core frames read with P
frames of context each side (vsr_pipeline.plan, the pipeline's own planner) and upscaled with
the pipeline's own model runner. Reported per padding: the mean Y-PSNR change against ground
truth (chunked minus whole), the worst per-frame change, and the Y-PSNR between chunked and
whole output (higher = closer). Short chunks put a boundary every `--chunk` frames, the worst case.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from models.registry import get_spec, load_model
from vsr_pipeline.degrade import crop_to_multiple, degrade_bi
from vsr_pipeline.engine import run_model
from vsr_pipeline.media import list_images, read_images
from vsr_pipeline.metrics import psnr_y
from vsr_pipeline.plan import plan_chunks

ROOT = Path(__file__).resolve().parent.parent


def chunked(model: torch.nn.Module, temporal: str, lr: np.ndarray, chunk: int, padding: int) -> np.ndarray:
    parts = []
    for c in plan_chunks(len(lr), chunk, padding):
        hr = run_model(model, temporal, lr[c.read_start : c.read_stop], torch.device("cpu"))
        parts.append(hr[c.keep])
    return np.concatenate(parts)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="basicvsr")
    p.add_argument("--weights", default="vimeo-bi")
    p.add_argument("--chunk", type=int, default=10)
    p.add_argument("--paddings", type=int, nargs="+", default=[0, 2, 5, 10, 20])
    p.add_argument("--sequences", nargs="+", default=["calendar", "city"])
    p.add_argument("--dataset", type=Path, default=ROOT.parent / "shared" / "data" / "benchmarks" / "vid4")
    p.add_argument("--crop", type=int, nargs=2, metavar=("H", "W"), help="centre crop of the GT (CPU time)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    spec = get_spec(args.model)
    model = load_model(args.model, args.weights, 4)
    rows: dict[int, dict[str, list[float]]] = {
        q: {"delta": [], "worst": [], "vs_whole": []} for q in args.paddings
    }
    started = time.perf_counter()
    for name in args.sequences:
        gt = crop_to_multiple(read_images(list_images(args.dataset / name)), 4)
        if args.crop:
            h, w = args.crop
            top, left = (gt.shape[1] - h) // 2 // 4 * 4, (gt.shape[2] - w) // 2 // 4 * 4
            gt = gt[:, top : top + h, left : left + w]
        lr = degrade_bi(gt, 4)
        whole = run_model(model, spec.temporal, lr, torch.device("cpu"))
        whole_psnr = np.array([psnr_y(a, b) for a, b in zip(whole, gt, strict=True)])
        for q in args.paddings:
            out = chunked(model, spec.temporal, lr, args.chunk, q)
            per_frame = np.array([psnr_y(a, b) for a, b in zip(out, gt, strict=True)]) - whole_psnr
            rows[q]["delta"].append(float(per_frame.mean()))
            rows[q]["worst"].append(float(per_frame.min()))
            close = [psnr_y(a, b) for a, b in zip(out, whole, strict=True)]
            rows[q]["vs_whole"].append(float(np.mean([c for c in close if np.isfinite(c)] or [np.inf])))
            print(f"{name} padding {q}: mean dPSNR {per_frame.mean():+.4f} dB", file=sys.stderr)
    report = {
        "model": args.model,
        "weights": args.weights,
        "chunk": args.chunk,
        "sequences": args.sequences,
        "seconds": round(time.perf_counter() - started, 1),
        "paddings": {
            str(q): {
                "mean_delta_psnr_db": round(float(np.mean(r["delta"])), 4),
                "worst_frame_delta_db": round(float(np.min(r["worst"])), 4),
                "psnr_vs_whole_db": round(float(np.mean(r["vs_whole"])), 2),
            }
            for q, r in rows.items()
        },
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{'padding':>8} {'mean dPSNR':>11} {'worst frame':>12} {'PSNR vs whole':>14}")
        for q, r in report["paddings"].items():
            print(
                f"{q:>8} {r['mean_delta_psnr_db']:>+11.4f} {r['worst_frame_delta_db']:>+12.4f} "
                f"{r['psnr_vs_whole_db']:>14.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
