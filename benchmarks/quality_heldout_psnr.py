"""Held-out validation PSNR of weight files, on the validation crops of a training config.

    python benchmarks/quality_heldout_psnr.py configs/train/espcn_x3_from_x4.yaml WEIGHTS [WEIGHTS ...]
    python benchmarks/quality_heldout_psnr.py configs/train/espcn_x3_from_x4.yaml --start   # the run's step 0

The crops a run validates on depend on its config (``val_photos``, ``val_crops``, ``val_patch``, seed), so
runs with different settings cannot be compared by their logged PSNR; this scores any weights (and MATLAB
bicubic) on one config's crops. Training photographs only: no benchmark set is read. One JSON line each.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np

from vsr_pipeline.degrade import imresize, to_uint8
from vsr_pipeline.metrics import psnr_y
from vsr_pipeline.train import config as tc
from vsr_pipeline.train.trainer import Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("weights", nargs="*")
    ap.add_argument("--start", action="store_true", help="also score the config's starting point: its init "
                    "weights after its warm start, before any step")
    args = ap.parse_args()
    cfg = tc.load(args.config)
    if args.start:
        trainer = Trainer(cfg)
        if cfg.warm_start == "linear":
            trainer.linear_warm_start()
        elif cfg.warm_start == "refit_output":
            trainer.refit_output_start()
        print(json.dumps({"weights": f"start of {cfg.name}", "heldout_psnr": round(trainer.validate(), 4)}))
    for weights in args.weights:
        trainer = Trainer(dataclasses.replace(cfg, init=weights, warm_start=""))
        print(json.dumps({"weights": weights, "heldout_psnr": round(trainer.validate(), 4)}), flush=True)
    trainer = Trainer(cfg)
    trainer._ensure_data()
    assert trainer.val is not None
    bicubic = [  # lr: (frames, h, w, 3) uint8; the centre frame is the one the HR crop belongs to
        psnr_y(to_uint8(imresize(lr[len(lr) // 2].astype(np.float64), cfg.scale)), hr, crop_border=cfg.scale)
        for lr, hr in trainer.val
    ]
    print(json.dumps({"weights": "bicubic", "heldout_psnr": round(float(np.mean(bicubic)), 4)}))


if __name__ == "__main__":
    main()
