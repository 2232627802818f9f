"""What upscaling only a region (``--crop``) costs in quality near the region's edges, where the model sees
no picture beyond them.

    python benchmarks/quality_crop_border.py [--model basicvsr] [--weights W] [--frames 20] [--context 16]
                                             [--crf N] [--json PATH]

Ground truth: frames 100-119 of bikes.mp4 (640x272, real footage; not a benchmark set), MATLAB bicubic x4
down to 160x68 LR (a lossless FFV1 file; with ``--crf N``, x264 at that crf: compressed footage). The
model runs through the pipeline on the whole LR frames and,
separately, with ``--crop 64:40:48:14`` (a 256x160 HR region in the middle), the model seeing
``--context`` LR pixels around it (``vsr_pipeline.media.crop.CONTEXT``, set here; 0: the region alone).
Reported against the ground truth's region (Y-PSNR, BT.601, no border crop, so the edges count): the
whole-frame output cut to the region, the region's own output, and both split into the band within
``--band`` HR pixels of the region's edge and the interior.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
REGION = (64, 40, 48, 14)  # LR W, H, X, Y


def main() -> None:
    import av

    from vsr_pipeline import UpscaleOptions, upscale
    from vsr_pipeline.degrade import degrade_bi
    from vsr_pipeline.media import FrameReader
    from vsr_pipeline.metrics import rgb_to_y

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="basicvsr")
    ap.add_argument("--weights", help="registered weights name (e.g. compressed); default the model's")
    ap.add_argument("--crf", type=int, help="LR through libx264 at this crf (default: lossless FFV1)")
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--band", type=int, default=16, help="HR pixels from the region's edge")
    ap.add_argument("--context", type=int, default=16, help="LR pixels the model sees around the region")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    from vsr_pipeline.media import crop as crop_module

    crop_module.CONTEXT = args.context
    with FrameReader(ROOT.parent / "shared" / "data" / "videos" / "bikes.mp4") as reader:
        reader.seek(100)
        hr = reader.read(args.frames)[0]
    lr = degrade_bi(np.ascontiguousarray(hr), 4)
    w, h, x, y = REGION
    truth = hr[:, 4 * y : 4 * (y + h), 4 * x : 4 * (x + w)]
    band = np.ones(truth.shape[1:3], bool)
    band[args.band : -args.band, args.band : -args.band] = False

    def psnr(out: np.ndarray, mask: np.ndarray | None = None) -> float:
        a, b = rgb_to_y(out.astype(np.float64)), rgb_to_y(truth.astype(np.float64))
        err = (a - b) ** 2
        mse = err[:, mask].mean() if mask is not None else err.mean()
        return round(float(10 * np.log10(255.0**2 / mse)), 3)

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "lr.mkv"
        with av.open(str(src), "w") as out:
            if args.crf is None:
                stream = out.add_stream("ffv1", rate=25)
                stream.width, stream.height, stream.pix_fmt = lr.shape[2], lr.shape[1], "bgr0"
            else:
                stream = out.add_stream("libx264", rate=25, options={"crf": str(args.crf)})
                stream.width, stream.height, stream.pix_fmt = lr.shape[2], lr.shape[1], "yuv420p"
            for f in lr:
                out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
            out.mux(stream.encode(None))
        results: dict[str, Any] = {}
        for kind, crop in (("whole", None), ("region", REGION)):
            dst = Path(tmp) / kind
            opts = UpscaleOptions(model=args.model, weights=args.weights, crop=crop, progress=False,
                                  precision="fp32")
            upscale(src, dst, opts)
            with FrameReader(dst) as r:
                got = r.read(args.frames)[0]
            if crop is None:
                got = got[:, 4 * y : 4 * (y + h), 4 * x : 4 * (x + w)]
            results[kind] = {"psnr_y": psnr(got), "edge_band": psnr(got, band), "interior": psnr(got, ~band)}
            results[kind + "_frames"] = got
        diff = np.abs(results.pop("whole_frames").astype(int) - results.pop("region_frames").astype(int))
        profile = [round(float(diff[:, :, c].mean()), 3) for c in range(0, 4 * w, 8)]
    report = {"model": args.model, "frames": args.frames, "region_lr": list(REGION), "band_px": args.band,
              "context_lr": args.context, "weights": args.weights, "lr_crf": args.crf,
              **results, "mean_abs_diff_by_column": profile}
    print(json.dumps(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
