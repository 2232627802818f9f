"""Does a denoising or deblocking filter on compressed LR, before the model, help? FFmpeg's filters
(``deblock``, ``nlmeans``, ``atadenoise``, ``dctdnoiz``, ``bm3d``) on the LR of docs/evaluation.md section
(h) (our own real clips, ``bi+h264:28``), then BasicVSR with our ``compressed`` weights and the official
``reds4``; Y-PSNR / SSIM (BT.601, 4-pixel border) against the ground truth, mean of the two clips.

    PYTHONPATH=. python benchmarks/quality_prefilter.py --json benchmarks/results/prefilter.json
"""

from __future__ import annotations

import argparse
import json
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from benchmarks.quality_real_degradations import CLIPS, make_dataset
from vsr_pipeline.degradation import parse_degradation
from vsr_pipeline.engine import load_upscaler_model, run_model, use_spec
from vsr_pipeline.media import list_images, read_images
from vsr_pipeline.metrics import psnr_y, ssim_y

FILTERS = ["none", "deblock", "deblock=filter=weak", "nlmeans=s=1", "nlmeans=s=3", "atadenoise",
           "dctdnoiz=sigma=4", "bm3d=sigma=4"]


def prefilter(frames: np.ndarray, spec: str) -> np.ndarray:
    """``frames`` (T, h, w, 3) uint8 RGB through the FFmpeg filter chain ``spec`` in 4:4:4 YUV, in order."""
    if spec == "none":
        return frames
    graph = av.filter.Graph()
    src = graph.add_buffer(width=frames.shape[2], height=frames.shape[1], format="rgb24",
                           time_base=Fraction(1, 25))
    nodes = [graph.add("format", "yuv444p")]
    for part in spec.split(","):
        name, _, args = part.partition("=")
        nodes.append(graph.add(name, args) if args else graph.add(name))
    nodes.append(graph.add("format", "rgb24"))
    sink = graph.add("buffersink")
    graph.link_nodes(src, *nodes, sink).configure()
    out: list[np.ndarray] = []

    def drain() -> None:
        while True:
            try:
                out.append(sink.pull().to_ndarray(format="rgb24"))
            except (av.BlockingIOError, av.EOFError):
                return

    for i, rgb in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = i
        src.push(frame)
        drain()
    src.push(None)
    drain()
    assert len(out) == len(frames), (spec, len(out), len(frames))
    return np.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chain", default="bi+h264:28")
    parser.add_argument("--filters", nargs="+", default=FILTERS)
    parser.add_argument("--work", default="/tmp/vsr_prefilter")
    parser.add_argument("--json")
    args = parser.parse_args()
    dataset = make_dataset(Path(args.work) / "gt")
    truth = {name: read_images(list_images(dataset / name)) for name, *_ in CLIPS}
    lr = {name: parse_degradation(args.chain).apply(gt, 4) for name, gt in truth.items()}
    models = {w: load_upscaler_model("basicvsr", w, 4) for w in ("compressed", "reds4")}
    temporal = use_spec("basicvsr").temporal
    rows = []
    for spec in args.filters:
        started = time.time()
        row: dict[str, object] = {"filter": spec}
        for weights, model in models.items():
            psnr, ssim = [], []
            for name, gt in truth.items():
                with torch.inference_mode():
                    sr = run_model(model, temporal, prefilter(lr[name], spec), torch.device("cpu"))
                psnr.append(float(np.mean([psnr_y(a, b, 4) for a, b in zip(sr, gt, strict=True)])))
                ssim.append(float(np.mean([ssim_y(a, b, 4) for a, b in zip(sr, gt, strict=True)])))
            row[weights] = {"psnr_y": round(float(np.mean(psnr)), 3),
                            "ssim_y": round(float(np.mean(ssim)), 4),
                            "psnr_y_per_clip": [round(p, 3) for p in psnr]}
        row["seconds"] = round(time.time() - started, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"chain": args.chain, "clips": [c[0] for c in CLIPS],
                                               "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
