"""What ``--crop`` saves: a job on a region of the frame against the same job on the whole frame.

    python benchmarks/speed_crop.py [--models espcn basicvsr] [--frames 40 8] [--crop 160:96] [--runs 3]
                                    [--json PATH]

The clip: the first frames of bikes.mp4 at its own 640x272 (x264 crf 12). For each model, one job on the
whole frame and one with ``--crop`` (default 160x96, centred: 8.8 % of the pixels) are run once unmeasured
(start-up, ``--precision/--batch auto`` probes, cached), then ``--runs`` times each, alternating, in one
Ray session (as a service would run them); reported: the median job seconds and seconds inside the
model's forward calls (``model_seconds``) of each, and the ratios whole / crop.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def make_clip(path: Path, frames: int) -> Path:
    import av

    with av.open(str(ROOT.parent / "shared" / "data" / "videos" / "bikes.mp4")) as src, \
            av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": "12"})
        stream.width, stream.height, stream.pix_fmt = 640, 272, "yuv420p"
        for i, frame in enumerate(src.decode(video=0)):
            if i == frames:
                break
            out.mux(stream.encode(frame.reformat(format="yuv420p")))
        out.mux(stream.encode(None))
    return path


def main() -> None:
    import ray
    import torch

    from vsr_pipeline import UpscaleOptions, release_warm_upscalers, upscale
    from vsr_pipeline.media.crop import parse_crop

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["espcn", "basicvsr"])
    ap.add_argument("--frames", nargs="+", type=int, default=[40, 8], help="per model")
    ap.add_argument("--crop", default="160:96")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    crop = parse_crop(args.crop)
    rows: list[dict[str, Any]] = []
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for model, frames in zip(args.models, args.frames, strict=True):
                clip = make_clip(Path(tmp) / f"{model}.mp4", frames)
                kinds = {"whole": None, "region": crop}
                got: dict[str, list[Any]] = {k: [] for k in kinds}
                for run in range(args.runs + 1):
                    for kind, region in kinds.items():
                        out = Path(tmp) / f"{model}_{kind}_{run}.mkv"
                        result = upscale(clip, out, UpscaleOptions(model=model, crop=region, progress=False,
                                                                   resume="never"))
                        if run:  # the first of each kind is a warm-up
                            got[kind].append(result)
                row: dict[str, Any] = {"model": model, "frames": frames, "crop": list(crop)}
                for kind, results in got.items():
                    r = results[0]
                    row[kind] = {
                        "size": f"{r.width_in}x{r.height_in}", "precision": r.precision, "batch": r.batch,
                        "threads": r.threads,
                        "seconds": [x.seconds for x in results],
                        "model_seconds": [x.model_seconds for x in results],
                        "median_s": statistics.median(x.seconds for x in results),
                        "median_model_s": statistics.median(float(x.model_seconds or 0) for x in results),
                    }
                row["ratio_job"] = round(row["whole"]["median_s"] / row["region"]["median_s"], 2)
                whole, region = row["whole"]["median_model_s"], row["region"]["median_model_s"]
                row["ratio_model"] = round(whole / region, 2)
                row["pixel_ratio"] = round(640 * 272 / (crop[0] * crop[1]), 2)
                print(json.dumps(row), flush=True)
                rows.append(row)
                release_warm_upscalers()
    finally:
        ray.shutdown()
    report = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__},
        "runs": args.runs, "rows": rows,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
