"""Entry point of ``vsr train``: one process, or ``workers`` data-parallel Ray Train workers."""

from __future__ import annotations

import os
from typing import Any

from vsr_pipeline.train import config as train_config


def run_training(
    path: str | os.PathLike[str],
    workers: int = 1,
    resume: bool = False,
    progress: bool = True,
    max_steps: int | None = None,
    out_dir: str | None = None,
) -> dict[str, Any]:
    """Train the run ``path`` describes; returns the summary (best validation PSNR, steps, wall time...)."""
    cfg = train_config.load(path)
    if out_dir:
        cfg.out_dir = out_dir
    if workers > 1:
        from vsr_pipeline.train.distributed import train_distributed

        return train_distributed(cfg, workers, resume=resume, progress=progress, max_steps=max_steps)
    from vsr_pipeline.train.trainer import Trainer

    return Trainer(cfg).fit(resume=resume, progress=progress, max_steps=max_steps)
