"""Is CPU bf16 safe, and how fast is each precision/layout? Y-PSNR change and speed, on real clips.

    python benchmarks/speed_precision.py [--models basicvsr espcn] [--weights espcn=PATH] [--frames 10]
                                         [--repeats 3] [--threads 2] [--quick] [--json PATH]

Ground truth: the first ``--frames`` frames of real clips from ``../shared/data/videos`` (bikes.mp4 whole
frame, bigbuckbunny.mp4 centre crop), never the benchmark sets; LR: MATLAB bicubic x4 (``degrade_bi``, what
the BI weights were trained on). Each model runs fp32 (default layout, what the pipeline's fp32 is), fp32
channels-last, bf16 autocast NCHW and bf16 autocast channels-last (the pipeline's bf16), through the
engine's own ``run_model`` (``vsr_pipeline.engine``); the variants are interleaved in every repeat and the
median time per output frame is reported, with ``os.getloadavg()``. ``delta_db`` = Y-PSNR(variant) -
Y-PSNR(fp32) against the ground truth (crop 4), per clip; a model may be listed in
``vsr_pipeline.precision.CPU_BF16_SAFE`` only when every clip's |delta| of the bf16 channels-last variant is
below 0.02 dB.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from models.registry import get_spec
from vsr_pipeline.degrade import crop_to_multiple, degrade_bi
from vsr_pipeline.engine import load_upscaler_model, make_forward, run_model
from vsr_pipeline.media import FrameReader
from vsr_pipeline.metrics import psnr_y
from vsr_pipeline.precision import BF16_TOLERANCE_DB, Precision

ROOT = Path(__file__).resolve().parent.parent
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
CPU = torch.device("cpu")


def clips(frames: int, quick: bool) -> dict[str, np.ndarray]:
    """HR ground truth per clip, (T, H, W, 3) uint8, sized to multiples of 4."""
    out = {}
    with FrameReader(VIDEOS / "bikes.mp4") as r:
        hr = r.read(frames)[0]
        out["bikes"] = hr[:, :136, :320] if quick else hr
    if not quick:
        with FrameReader(VIDEOS / "bigbuckbunny.mp4") as r:
            hr = r.read(frames)[0]
        out["bigbuckbunny_crop"] = hr[:, 180:540, 320:960]  # 360x640 centre
    return {k: np.ascontiguousarray(crop_to_multiple(v, 4)) for k, v in out.items()}


class Variant:
    def __init__(self, name: str, precision: str, channels_last: bool, module: torch.nn.Module) -> None:
        self.name = name
        p = Precision(precision, CPU)  # its autocast; the layout is forced here (fp32 CL and bf16 NCHW too)
        model = module.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)

        def fwd(x: torch.Tensor) -> torch.Tensor:
            if channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with p.autocast():
                return model(x)

        self.forward = fwd if (precision != "fp32" or channels_last) else make_forward(model)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["basicvsr"])
    ap.add_argument("--weights", nargs="*", default=[], help="MODEL=PATH for models without default weights")
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="one small crop of one clip, 4 frames, 1 repeat")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "perf_precision.json"))
    args = ap.parse_args()
    if args.quick:
        args.frames, args.repeats = 4, 1
    torch.set_num_threads(args.threads)
    weights = dict(w.split("=", 1) for w in args.weights)
    gts = clips(args.frames, args.quick)
    lrs = {k: degrade_bi(v, 4) for k, v in gts.items()}
    results: dict = {"threads": args.threads, "frames": args.frames, "repeats": args.repeats,
                     "quick": args.quick, "loadavg_start": os.getloadavg(), "models": {}}
    for name in args.models:
        spec = get_spec(name)
        w = weights.get(name)
        variants = [
            Variant("fp32", "fp32", False, load_upscaler_model(name, w, 4)),
            Variant("fp32_cl", "fp32", True, load_upscaler_model(name, w, 4)),
            Variant("bf16_nchw", "bf16", False, load_upscaler_model(name, w, 4)),
            Variant("bf16_cl", "bf16", True, load_upscaler_model(name, w, 4)),
        ]
        per_clip: dict = {}
        for clip, lr in lrs.items():
            outs: dict[str, np.ndarray] = {}
            times: dict[str, list[float]] = {v.name: [] for v in variants}
            for v in variants:  # warm-up
                run_model(v.forward, spec.temporal, lr[:2], CPU, batch=4, radius=spec.radius)
            for _ in range(args.repeats):
                for v in variants:
                    t0 = time.perf_counter()
                    outs[v.name] = run_model(v.forward, spec.temporal, lr, CPU, batch=4, radius=spec.radius)
                    times[v.name].append(time.perf_counter() - t0)
            ref = psnr_y(outs["fp32"], gts[clip], 4)
            per_clip[clip] = {
                "lr_size": list(lr.shape[1:3]),
                "psnr_fp32": round(ref, 4),
                "bicubic_note": "LR by MATLAB bicubic x4",
                **{
                    v.name: {
                        "s_per_frame": round(statistics.median(times[v.name]) / len(lr), 4),
                        "speedup_vs_fp32": round(statistics.median(times["fp32"]) / statistics.median(
                            times[v.name]), 3),
                        "delta_db": round(psnr_y(outs[v.name], gts[clip], 4) - ref, 4),
                        "max_level_diff": int(np.abs(outs[v.name].astype(int) - outs["fp32"]).max()),
                    }
                    for v in variants
                },
            }
            print(name, clip, json.dumps(per_clip[clip]))
        worst = max(abs(c["bf16_cl"]["delta_db"]) for c in per_clip.values())
        results["models"][name] = {
            "weights": w or spec.default_weights,
            "clips": per_clip,
            "worst_bf16_delta_db": worst,
            "bf16_safe": worst < BF16_TOLERANCE_DB,
        }
    results["loadavg_end"] = os.getloadavg()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps({k: {"worst_bf16_delta_db": v["worst_bf16_delta_db"], "bf16_safe": v["bf16_safe"]}
                      for k, v in results["models"].items()}))


if __name__ == "__main__":
    main()
