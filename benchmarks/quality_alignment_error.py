"""Alignment error on real consecutive frames, before and after warping (issue 3, evidence 2).

    python benchmarks/quality_alignment_error.py [--quick] [--windows-per-clip 4] [--threads 1]
                                                 [--json benchmarks/results/alignment_error.json]

Windows of radius 2 (frames c-2 .. c+2) from ``bikes.mp4``, ``bigbuckbunny.mp4`` and ``tree.avi``
(``../shared/data/videos``), fitted to 180x320 as in ``quality_flow_accuracy.py``; ``--windows-per-clip``
centres evenly spread over each clip. For each neighbour n of the centre c and each estimator:
``flow = estimator.flow(c, n)``, ``warped = flow_warp(n, flow, padding_mode="border")``, and the mean squared
difference to the centre, in 8-bit levels squared, before (``n`` vs ``c``) and after (``warped`` vs ``c``).
An 8-pixel border is left out of every mean (where the source leaves the frame no flow can align).
Real motion includes occlusion, lighting and compression noise, so "after" never reaches zero.
Estimators as in ``quality_flow_accuracy.py`` (the untrained VESPCN MC gives zero flow: after == before).
Run it as a script (``quality_flow_accuracy`` is imported from this folder, which Python puts on
``sys.path`` for a script).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import cv2
import torch
from quality_flow_accuracy import CLIPS, ROOT, VIDEOS, build_estimators, clip_length, read_clip, to_tensor

from models.motion import flow_warp

RADIUS = 2
MARGIN = 8


def msd(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean squared difference in 8-bit levels², border of MARGIN pixels left out."""
    d = (a - b)[..., MARGIN:-MARGIN, MARGIN:-MARGIN] * 255
    return d.square().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 window per clip")
    parser.add_argument("--windows-per-clip", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "alignment_error.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    per_clip = 1 if args.quick else args.windows_per_clip

    clips = [VIDEOS / c for c in CLIPS if (VIDEOS / c).is_file()]
    if not clips:
        raise SystemExit(f"no clips under {VIDEOS} (shared data absent): nothing to measure")
    estimators, notes = build_estimators()
    rows: list[dict] = []
    windows = []
    for path in clips:
        n = clip_length(path)
        centres = [RADIUS + round(k * (n - 1 - 2 * RADIUS) / max(per_clip - 1, 1)) for k in range(per_clip)]
        if per_clip == 1:
            centres = [n // 2]
        wanted = sorted({c + d for c in centres for d in range(-RADIUS, RADIUS + 1)})
        frames = read_clip(path, wanted)
        for c in centres:
            windows.append({"clip": path.name, "centre": c})
            centre = to_tensor(frames[c])
            for d in [o for o in range(-RADIUS, RADIUS + 1) if o]:
                nb = to_tensor(frames[c + d])
                row = {"clip": path.name, "centre": c, "offset": d, "before": msd(nb, centre)}
                for name, est in estimators.items():
                    with torch.inference_mode():
                        flow = est.flow(centre, nb)
                        row[name] = msd(flow_warp(nb, flow, padding_mode="border"), centre)
                rows.append(row)
        print(f"{path.name}: {len(centres)} windows done", flush=True)

    def summary(key: str, select: list[dict]) -> float:
        return statistics.fmean(r[key] for r in select)

    keys = ["before", *estimators]
    results = {k: {"msd_all": summary(k, rows),
                   "msd_offset_1": summary(k, [r for r in rows if abs(r["offset"]) == 1]),
                   "msd_offset_2": summary(k, [r for r in rows if abs(r["offset"]) == 2]),
                   "msd_by_clip": {c.name: summary(k, [r for r in rows if r["clip"] == c.name])
                                   for c in clips}}
               for k in keys}
    for k in estimators:
        results[k]["after_over_before"] = results[k]["msd_all"] / results["before"]["msd_all"]
    report = {
        "benchmark": "alignment_error",
        "quick": args.quick,
        "size_hw": [180, 320],
        "radius": RADIUS,
        "margin_px": MARGIN,
        "unit": "mean squared difference to the centre frame, 8-bit levels squared (RGB)",
        "windows": windows,
        "threads": {"torch": args.threads, "opencv": args.threads},
        "results": results,
        "pairs": rows,
        "notes": notes,
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "opencv": cv2.__version__},
    }
    print(f"{'':22s} {'all':>8s} {'|d|=1':>8s} {'|d|=2':>8s} {'ratio':>6s}")
    for k, r in results.items():
        ratio = r.get("after_over_before", 1.0)
        print(f"{k:22s} {r['msd_all']:8.1f} {r['msd_offset_1']:8.1f} {r['msd_offset_2']:8.1f} {ratio:6.3f}")
    for name, note in notes.items():
        print(f"note: {name}: {note}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
