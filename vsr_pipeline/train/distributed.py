"""Data-parallel training through Ray Train (``vsr train --workers N``).

Each Ray Train worker builds the same :class:`~vsr_pipeline.train.trainer.Trainer` (same seed, hence the
same initial weights), ``ray.train.torch.prepare_model`` wraps the model in DistributedDataParallel (gloo on
the CPU, NCCL on GPUs: Ray Train picks the backend), every step each rank draws its own share of the global
batch (``batch_rng(seed, rank, step)``) and DDP averages the gradients, so all replicas take the same Adam
step. Rank 0 alone validates, logs, checkpoints and exports; every rank writes the SHA-256 of its final
weights to ``<run>/replicas/rank<R>.sha256`` so a run can prove its replicas stayed identical.
"""

from __future__ import annotations

import logging
from typing import Any

from vsr_pipeline.train.config import TrainConfig, from_dict, to_dict

log = logging.getLogger("vsr.train")


def _worker(loop_config: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch
    import torch

    from vsr_pipeline.train.trainer import Trainer, weights_digest

    cfg = from_dict(loop_config["cfg"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    use_gpu = device.type == "cuda"
    if not use_gpu:
        device = torch.device("cpu")

    def wrap(model: torch.nn.Module) -> torch.nn.Module:
        return ray.train.torch.prepare_model(model, move_to_device=use_gpu)

    trainer = Trainer(cfg, rank=rank, world=world, wrap=wrap, device=device)
    summary = trainer.fit(
        resume=loop_config["resume"], progress=loop_config["progress"], max_steps=loop_config["max_steps"]
    )
    out = cfg.run_dir / "replicas"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{rank}.sha256").write_text(weights_digest(trainer.net) + "\n")
    ray.train.report({k: v for k, v in summary.items() if isinstance(v, int | float)})


def train_distributed(
    cfg: TrainConfig, workers: int, resume: bool = False, progress: bool = True, max_steps: int | None = None
) -> dict[str, Any]:
    """Run ``cfg`` on ``workers`` Ray Train workers (GPUs when CUDA has enough); returns rank 0's summary."""
    try:
        import ray
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer
    except ImportError as exc:
        from vsr_pipeline.train.config import TrainConfigError

        raise TrainConfigError(f"--workers needs Ray Train: pip install 'ray[train]' ({exc})") from None
    import torch

    use_gpu = torch.cuda.is_available() and torch.cuda.device_count() >= workers
    if not ray.is_initialized():
        ray.init(num_cpus=workers + 1, include_dashboard=False, log_to_driver=False, configure_logging=False)
    else:  # the training workers need the CPU slots a finished upscale job's warm actors hold
        from vsr_pipeline.upscaler_pool import release_warm_upscalers

        release_warm_upscalers()
    run_dir = cfg.run_dir.resolve()
    cfg_dict = to_dict(cfg)
    cfg_dict["out_dir"] = str(run_dir)
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"cfg": cfg_dict, "resume": resume, "progress": progress, "max_steps": max_steps},
        scaling_config=ScalingConfig(
            num_workers=workers,
            use_gpu=use_gpu,
            resources_per_worker={"CPU": 1, **({"GPU": 1} if use_gpu else {})},
        ),
        run_config=RunConfig(name=f"{cfg.name}", storage_path=str(run_dir / "ray")),
    )
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    digests = sorted({p.read_text().strip() for p in (run_dir / "replicas").glob("rank*.sha256")})
    summary = {
        "name": cfg.name,
        "run_dir": str(run_dir),
        "workers": workers,
        "replicas_identical": len(digests) == 1,
        **(result.metrics or {}),
    }
    summary.setdefault("step", 0)
    summary.setdefault("best_psnr", float("nan"))
    summary.setdefault("best_step", -1)
    summary.setdefault("elapsed_s", 0.0)
    return summary
