"""``vsr train --workers 2``: two Ray Train CPU workers (DDP over gloo) take a few steps of a tiny model and
end with identical weights, different from the initial ones."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

pytest.importorskip("ray.train.torch", reason="ray[train] is not installed", exc_type=ImportError)

from models.registry import build_model
from vsr_pipeline.train import config as tc
from vsr_pipeline.train.distributed import train_distributed


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.usefixtures("ray_of_its_own")
def test_two_cpu_workers_keep_identical_replicas(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        img = cv2.GaussianBlur((rng.random((64, 64, 3)) * 255).astype(np.uint8), (0, 0), 1.0)
        cv2.imwrite(str(photos / f"p{i}.png"), img)
    cfg = tc.from_dict({
        "name": "ddp", "model": "espcn", "scale": 2, "out_dir": str(tmp_path / "run"), "threads": 1,
        "data": {"photos": [str(photos)], "val_photos": ["p1"], "levels": [64], "patch": 8, "val_crops": 2,
                 "val_patch": 8},
        "optim": {"lr": 1e-2, "steps": 4, "batch": 4},
        "val_every": 4, "ckpt_every": 4, "log_every": 1,
    })
    summary = train_distributed(cfg, workers=2, progress=False)
    digests = sorted((tmp_path / "run" / "replicas").glob("rank*.sha256"))
    assert [p.name for p in digests] == ["rank0.sha256", "rank1.sha256"]
    assert digests[0].read_text() == digests[1].read_text()
    assert summary["replicas_identical"] is True
    trained = load_file(tmp_path / "run" / "last.safetensors")
    torch.manual_seed(0)
    initial = build_model("espcn", 2).state_dict()
    assert trained.keys() == initial.keys()
    assert not all(torch.equal(trained[k], initial[k]) for k in initial)  # the steps did change the weights
    assert (tmp_path / "run" / "checkpoints" / "step_0000004" / "optimizer.pt").is_file()
