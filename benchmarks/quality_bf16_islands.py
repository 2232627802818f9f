"""Which float32 islands make BasicVSR's bf16 autocast safe? An ablation on real frames.

    python benchmarks/quality_bf16_islands.py [--frames 12] [--threads 1] [--modes fp32cl bf16 ...]
                                              [--json PATH]

BasicVSR (``models/video/basicvsr.py``) keeps, under autocast, SPyNet and each propagation trunk's input
convolution in float32, so its recurrent state stays float32. This script switches those islands off again
(by replacing the two methods for the run) to measure what each buys, against fp32 channels-last:

- ``bf16-all``: everything autocast (the state becomes bf16 after the trunk's first convolution);
- ``bf16-res32``: the trunk's input convolution in bf16 but its output widened to float32 (fp32 stream);
- ``bf16-in32``: the trunk's input convolution in float32 (fp32 stream), SPyNet in bf16;
- ``bf16``: what the model does now (``bf16-in32`` plus SPyNet in float32).

Ground truth: the first ``--frames`` frames of bikes.mp4, a 360x640 crop of bigbuckbunny.mp4 and
tree.avi (``../shared/data/videos``, never the benchmark sets); LR by MATLAB bicubic x4; Y-PSNR with a
4-pixel border; seconds per frame of each variant (one run each, ``os.getloadavg()`` recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from speed_precision import clips

from models.motion.spynet import SpyNet
from models.video import basicvsr as bv
from vsr_pipeline.degrade import crop_to_multiple, degrade_bi
from vsr_pipeline.engine import load_upscaler_model, run_model
from vsr_pipeline.media import FrameReader
from vsr_pipeline.metrics import psnr_y

ROOT = Path(__file__).resolve().parent.parent
CPU = torch.device("cpu")
MODES = ("fp32cl", "bf16-all", "bf16-res32", "bf16-in32", "bf16")
_TRUNK_NOW = bv.ConvResidualBlocks.forward
_FLOWS_NOW = bv.BasicVSR._pair_flows


def _trunk_bf16(self: bv.ConvResidualBlocks, x: torch.Tensor) -> torch.Tensor:
    return self.main(x)


def _trunk_res32(self: bv.ConvResidualBlocks, x: torch.Tensor) -> torch.Tensor:
    conv_in, act, blocks = self.main
    return blocks(act(conv_in(x)).float())


def _flows_bf16(self: bv.BasicVSR, ref: torch.Tensor, nxt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flows = SpyNet.forward(self.spynet, torch.cat([ref, nxt]), torch.cat([nxt, ref]))
    return flows[: ref.shape[0]], flows[ref.shape[0] :]


def _set_mode(mode: str) -> None:
    trunks = {"bf16-all": _trunk_bf16, "bf16-res32": _trunk_res32}
    bv.ConvResidualBlocks.forward = trunks.get(mode, _TRUNK_NOW)  # type: ignore[method-assign]
    bv.BasicVSR._pair_flows = _FLOWS_NOW if mode in ("fp32cl", "bf16") else _flows_bf16  # type: ignore[method-assign]


def forward_for(model: torch.nn.Module, mode: str) -> Callable[[torch.Tensor], torch.Tensor]:
    def fwd(x: torch.Tensor) -> torch.Tensor:
        _set_mode(mode)
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode != "fp32cl"):
            return model(x)

    return fwd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "bf16_islands.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    modes = ["fp32cl", *(m for m in args.modes if m != "fp32cl")]
    model = load_upscaler_model("basicvsr", None, 4).to(memory_format=torch.channels_last)
    gts = clips(args.frames, False)
    with FrameReader(ROOT.parent / "shared" / "data" / "videos" / "tree.avi") as reader:
        gts["tree"] = np.ascontiguousarray(crop_to_multiple(reader.read(args.frames)[0], 4))
    result: dict = {"frames": args.frames, "threads": args.threads, "loadavg_start": os.getloadavg()}
    try:
        for clip, gt in gts.items():
            lr = degrade_bi(gt, 4)
            row: dict = {"lr_size": list(lr.shape[1:3])}
            for mode in modes:
                t0 = time.perf_counter()
                out = run_model(forward_for(model, mode), "recurrent", lr, CPU)
                row[mode] = {"psnr": round(psnr_y(out, gt, 4), 4),
                             "s_per_frame": round((time.perf_counter() - t0) / len(lr), 3)}
            for mode in modes:
                row[mode]["delta_db"] = round(row[mode]["psnr"] - row["fp32cl"]["psnr"], 4)
            result[clip] = row
            print(clip, json.dumps(row), flush=True)
    finally:
        _set_mode("bf16")
    result["loadavg_end"] = os.getloadavg()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
