"""Bicubic baseline on Vid4 (BI and BD x4) and Set5/Set14 (BI): validates degrade + metrics.

The "Bicubic" row of the published tables is the LR upscaled by MATLAB ``imresize(lr, s, 'bicubic')``
and scored on Y (docs/evaluation.md). Published: Vid4 BI 23.78/0.6347, BD 21.80/0.5246;
Set5 x4 28.42/0.8104, Set14 x4 26.00/0.7027.

    python benchmarks/quality_bicubic_baseline.py                         # Vid4 BI + BD, x4
    python benchmarks/quality_bicubic_baseline.py --sets vid4-bd --bd-method duf
    python benchmarks/quality_bicubic_baseline.py --sets set5 set14 --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from vsr_pipeline.degrade import crop_to_multiple, degrade_bd, degrade_bi, imresize, to_uint8
from vsr_pipeline.metrics import SequenceScore

ROOT = Path(__file__).resolve().parents[1]

DATA = ROOT.parent / "shared" / "data" / "benchmarks"
VID4 = ("calendar", "city", "foliage", "walk")
PUBLISHED = {
    "vid4-bi": (23.78, 0.6347),
    "vid4-bd": (21.80, 0.5246),
    "set5": (28.42, 0.8104),
    "set14": (26.00, 0.7027),
}


def read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)  # grayscale files come back as 3 equal channels
    if img is None:
        raise FileNotFoundError(path)
    return np.ascontiguousarray(img[..., ::-1])


def upscale(lr: np.ndarray, scale: int, method: str, out_hw: tuple[int, int]) -> np.ndarray:
    if method == "matlab":
        return to_uint8(imresize(lr.astype(np.float64), output_shape=out_hw))
    if method == "cv2":
        return cv2.resize(lr, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_CUBIC)
    raise ValueError(method)


def run_vid4(degradation: str, args: argparse.Namespace) -> SequenceScore:
    score = SequenceScore()
    for seq in VID4:
        files = sorted((DATA / "vid4" / seq).glob("*.png"))
        if not files:
            raise FileNotFoundError(f"no frames in {DATA / 'vid4' / seq}")
        for f in files:
            gt = crop_to_multiple(read_rgb(f), args.scale)
            if degradation == "bi":
                lr = degrade_bi(gt, args.scale)
            else:
                lr = degrade_bd(gt, args.scale, sigma=args.sigma, method=args.bd_method)
            sr = upscale(lr, args.scale, args.upsample, gt.shape[:2])
            score.add_frames(seq, [gt], [sr], args.crop_border, args.round_y)
    return score


def run_images(name: str, args: argparse.Namespace) -> SequenceScore:
    score = SequenceScore()
    border = args.scale if args.image_crop_border is None else args.image_crop_border
    for f in sorted((DATA / name).glob("*.png")):
        gt = crop_to_multiple(read_rgb(f), args.scale)
        sr = upscale(degrade_bi(gt, args.scale), args.scale, args.upsample, gt.shape[:2])
        score.add_frames(f.stem, [gt], [sr], border, args.round_y)
    return score


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="+", default=["vid4-bi", "vid4-bd"], choices=sorted(PUBLISHED))
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--sigma", type=float, default=1.6, help="BD Gaussian sigma")
    p.add_argument("--bd-method", choices=["matlab", "duf"], default="matlab")
    p.add_argument("--upsample", choices=["matlab", "cv2"], default="matlab")
    p.add_argument("--crop-border", type=int, default=0, help="Vid4 border (published: 0)")
    p.add_argument("--image-crop-border", type=int, default=None, help="Set5/14 border (default: scale)")
    p.add_argument("--round-y", action="store_true", help="round Y to integers (MATLAB uint8 rgb2ycbcr)")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args(argv)
    if not DATA.is_dir():
        print(f"benchmark data not found at {DATA}", file=sys.stderr)
        return 2

    results: dict[str, dict] = {}
    print(f"{'set':<9} {'sequence':<10} {'frames':>6} {'PSNR-Y':>8} {'SSIM-Y':>8}")
    for name in args.sets:
        t0 = time.perf_counter()
        score = run_vid4(name[5:], args) if name.startswith("vid4") else run_images(name, args)
        for seq, s in score.per_sequence().items():
            print(f"{name:<9} {seq:<10} {s['frames']:>6} {s['psnr']:>8.4f} {s['ssim']:>8.5f}")
        mean, frame_mean = score.mean(), score.frame_mean()
        pub = PUBLISHED[name] if args.scale == 4 else None
        print(
            f"{name:<9} {'MEAN':<10} {'':>6} {mean['psnr']:>8.4f} {mean['ssim']:>8.5f}"
            + (f"   published {pub[0]:.2f}/{pub[1]:.4f}" if pub else "")
            + f"   (all-frame mean {frame_mean['psnr']:.4f}/{frame_mean['ssim']:.5f})"
        )
        results[name] = {
            "per_sequence": score.per_sequence(),
            "mean": mean,
            "frame_mean": frame_mean,
            "published": {"psnr": pub[0], "ssim": pub[1]} if pub else None,
            "seconds": round(time.perf_counter() - t0, 2),
        }
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    payload = {"settings": settings, "results": results}
    print(json.dumps(payload, indent=1))
    if args.json:
        args.json.write_text(json.dumps(payload, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
