"""The training loop: Adam with a schedule, checkpoints and bit-identical resume, validation PSNR, a metrics
log (JSON lines), a progress bar and a loss/PSNR plot.

Run folder (``cfg.run_dir``)::

    config.yaml                 the config as run
    metrics.jsonl               {"step", "kind": "train"|"val", ...} one object a line
    checkpoints/step_NNNNNNN/   model.safetensors, optimizer.pt (Adam, schedule [, discriminator]), state.json
    best.safetensors            weights with the best validation PSNR so far (what a model card ships)
    last.safetensors            weights at the end
    curves.png                  training loss and validation PSNR against the step

Determinism: batch ``k`` is drawn from ``batch_rng(seed, rank, k)`` and everything else lives in the
checkpoint, so stopping after a checkpoint and resuming gives the same weights as never stopping
(same thread count; CPU kernels are deterministic at a fixed thread count).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from models.registry import build_model
from models.weights import read_state_dict
from vsr_pipeline.metrics import psnr_y
from vsr_pipeline.train.config import TrainConfig, TrainConfigError, dump, resolve_path
from vsr_pipeline.train.datasets import PatchSampler, batch_rng, load_pools, to_tensors, validation_pairs
from vsr_pipeline.train.losses import GeneratorLoss, PatchDiscriminator, gan_loss

log = logging.getLogger("vsr.train")


def lr_factor(cfg: TrainConfig, step: int) -> float:
    """Multiplier of ``optim.lr`` at ``step`` (linear warmup, then cosine to ``min_lr``, step or flat)"""
    o = cfg.optim
    if o.warmup > 0 and step < o.warmup:
        return (step + 1) / o.warmup
    if o.schedule == "cosine":
        t = min(1.0, (step - o.warmup) / max(1, o.steps - o.warmup))
        floor = o.min_lr / o.lr
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))
    if o.schedule == "step":
        return o.gamma ** (step // o.step_size)
    return 1.0


def init_from(model: nn.Module, path: str, model_name: str = "") -> list[str]:
    """Copy the tensors of checkpoint ``path`` whose name and shape match (fine-tuning from another scale or
    model); returns the names copied. ``path`` may also be a registered weights name of ``model_name``
    (e.g. BasicVSR's ``reds4``)."""
    if model_name and not resolve_path(path).is_file():
        from models.registry import get_spec, resolve_weights

        if path in get_spec(model_name).weights:
            found = resolve_weights(model_name, path, getattr(model, "scale", None))
            assert found is not None
            path = str(found)
    src = read_state_dict(resolve_path(path))
    dst = model.state_dict()
    copied = [k for k, v in src.items() if k in dst and dst[k].shape == v.shape]
    model.load_state_dict({**dst, **{k: src[k] for k in copied}})
    return copied


def weights_digest(model: nn.Module) -> str:
    """SHA-256 of every parameter and buffer, in name order (identical replicas give identical digests)."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


class Trainer:
    """One run of ``cfg`` on data-parallel rank ``rank`` of ``world`` (``wrap`` makes the DDP module)."""

    def __init__(
        self,
        cfg: TrainConfig,
        rank: int = 0,
        world: int = 1,
        wrap: Callable[[nn.Module], nn.Module] | None = None,
        device: torch.device | None = None,
    ) -> None:
        self.cfg, self.rank, self.world = cfg, rank, world
        self.device = device or torch.device("cpu")
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.model, cfg.scale, **cfg.arch)
        if cfg.init:
            copied = init_from(model, cfg.init, cfg.model)
            log.info("initialised %d tensors from %s", len(copied), cfg.init)
        frozen = [n for n, p in model.named_parameters() if cfg.frozen and n.startswith(tuple(cfg.frozen))]
        for name, param in model.named_parameters():
            if name in frozen:
                param.requires_grad_(False)
        if cfg.frozen and not frozen:
            raise TrainConfigError(f"frozen: no parameter of {cfg.model} starts with {cfg.frozen}")
        self.net = model.to(self.device)
        self.model = wrap(self.net) if wrap is not None else self.net
        self.with_aux = "return_aux" in inspect.signature(self.net.forward).parameters and (
            cfg.loss.motion > 0 or cfg.loss.smoothness > 0
        )
        o = cfg.optim
        self.opt = torch.optim.Adam(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=o.lr,
            betas=tuple(o.betas),  # type: ignore[arg-type]
            weight_decay=o.weight_decay,
        )
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: lr_factor(cfg, s))
        self.loss = GeneratorLoss(cfg.loss).to(self.device)
        self.disc: nn.Module | None = None
        if cfg.loss.adversarial > 0:
            self.disc = PatchDiscriminator().to(self.device)
            if wrap is not None:
                self.disc = wrap(self.disc)
            self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=o.lr, betas=tuple(o.betas))  # type: ignore[arg-type]
        self.step, self.best_psnr, self.best_step, self.elapsed = 0, -math.inf, -1, 0.0
        self.run_dir = cfg.run_dir
        self.sampler: PatchSampler | None = None
        self.val: list[tuple[np.ndarray, np.ndarray]] | None = None

    # ----- data -----------------------------------------------------------------------------------------
    def _ensure_data(self) -> None:
        if self.sampler is None:
            self.sampler = PatchSampler(
                load_pools(self.cfg.data, "train"), self.cfg.data, self.cfg.degradation, self.cfg.scale
            )
        if self.val is None and self.rank == 0 and self.cfg.val_every > 0:
            self.val = validation_pairs(self.cfg.data, self.cfg.degradation, self.cfg.scale)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The (LR, HR) batch of ``step`` on this rank (the global batch split over ranks)."""
        self._ensure_data()
        assert self.sampler is not None
        per_rank = max(1, self.cfg.optim.batch // self.world)
        lr, hr = self.sampler.sample(batch_rng(self.cfg.seed, self.rank, step), per_rank)
        return lr.to(self.device), hr.to(self.device)

    # ----- one step -------------------------------------------------------------------------------------
    def train_step(self, lr: torch.Tensor, hr: torch.Tensor) -> dict[str, float]:
        """One optimiser step on a batch; returns the loss terms."""
        self.model.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.autocast == "bf16"):
            out = self.model(lr, return_aux=True) if self.with_aux else self.model(lr)
        sr, aux = out if self.with_aux else (out, None)
        sr = sr.float()
        if sr.dim() == 5:  # every frame of a recurrent model: frames count as batch items
            sr, hr = sr.flatten(0, 1), hr.flatten(0, 1)
        if self.disc is not None:  # discriminator step first, on the detached output
            d_loss = gan_loss(self.disc(hr), True) + gan_loss(self.disc(sr.detach()), False)
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
        total, terms = self.loss(sr, hr, aux, self.disc)
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        if self.cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(
                [p for p in self.model.parameters() if p.requires_grad], self.cfg.optim.grad_clip
            )
        self.opt.step()
        self.sched.step()
        self.step += 1
        terms["lr"] = self.opt.param_groups[0]["lr"]
        return terms

    # ----- validation -----------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, chunk: int = 8) -> float:
        """Mean Y-PSNR (border = scale) over the held-out pairs (every frame of each, for all-frame
        targets)."""
        self._ensure_data()
        assert self.val is not None
        self.net.eval()
        scores = []
        for i in range(0, len(self.val), chunk):
            part = self.val[i : i + chunk]
            lr, _ = to_tensors(part, self.cfg.data.frames)
            sr = self.net(lr.to(self.device)).clamp(0, 1).mul(255).round().byte()
            if sr.dim() == 5:
                sr_np = sr.permute(0, 1, 3, 4, 2).cpu().numpy()
                scores += [psnr_y(sr_np[j, k], part[j][1][k], crop_border=self.cfg.scale)
                           for j in range(len(part)) for k in range(sr_np.shape[1])]
            else:
                sr_np = sr.permute(0, 2, 3, 1).cpu().numpy()
                scores += [psnr_y(sr_np[j], part[j][1], crop_border=self.cfg.scale) for j in range(len(part))]
        return float(np.mean(scores))

    def _fit_batches(self) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
        """Batch ``i`` of rank 0's steps far beyond the run (the same on every rank, so replicas stay
        equal): what the warm starts fit on."""
        self._ensure_data()
        assert self.sampler is not None
        sampler, cfg = self.sampler, self.cfg

        def batches(i: int) -> tuple[torch.Tensor, torch.Tensor]:
            return sampler.sample(batch_rng(cfg.seed, 0, 10**9 + i), cfg.optim.batch)

        return batches

    def linear_warm_start(self, n_batches: int = 24) -> None:
        """Start ESPCN/FSRCNN as the least-squares linear interpolator of the training data
        (``warm_start.py``), fitted on rank 0's batches of steps far beyond the run (the same on every rank,
        so replicas stay equal)."""
        from vsr_pipeline.train import warm_start as ws

        batches, cfg = self._fit_batches(), self.cfg
        kind = type(self.net).__name__
        if kind == "ESPCN":
            weight, bias = ws.fit_linear_interpolator(batches, cfg.scale, n_batches)
            ws.espcn_linear_init(self.net, weight.to(self.device), bias.to(self.device))
        elif kind == "FSRCNN":
            deconv = self.net.deconv  # type: ignore[union-attr]
            weight, bias = ws.fit_deconv_interpolator(batches, cfg.scale, n_batches, deconv.kernel_size[0],
                                                      deconv.padding[0])
            ws.fsrcnn_linear_init(self.net, weight.to(self.device), bias.to(self.device))
        else:
            raise TrainConfigError(f"warm_start 'linear' supports ESPCN and FSRCNN, not {kind}")
        log.info("warm start: %s set to the least-squares linear interpolator", kind)

    def refit_output_start(self, n_batches: int = 24) -> None:
        """ESPCN: keep the feature layers (from ``init``, e.g. another scale's weights) and fit the output
        convolution by least squares on rank 0's batches of steps far beyond the run (``warm_start.py``)."""
        from vsr_pipeline.train import warm_start as ws

        if type(self.net).__name__ != "ESPCN":
            raise TrainConfigError(f"warm_start 'refit_output' supports ESPCN, not {type(self.net).__name__}")
        ws.refit_espcn_output(self.net, self._fit_batches(), n_batches)
        log.info("warm start: ESPCN output convolution fitted to the initial features")

    # ----- checkpoints ----------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "best_psnr": self.best_psnr,
            "best_step": self.best_step,
            "elapsed_s": self.elapsed,
            "world": self.world,
        }

    def save_checkpoint(self) -> Path:
        """Write ``checkpoints/step_NNNNNNN`` atomically (rank 0) and prune old ones."""
        root = self.run_dir / "checkpoints"
        final = root / f"step_{self.step:07d}"
        tmp = root / f".tmp_{self.step:07d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()},
            tmp / "model.safetensors",
        )
        extra: dict[str, Any] = {"optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict()}
        if self.disc is not None:
            extra["disc"] = _unwrap(self.disc).state_dict()
            extra["opt_d"] = self.opt_d.state_dict()
        torch.save(extra, tmp / "optimizer.pt")
        (tmp / "state.json").write_text(json.dumps(self._state(), indent=1))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        kept = sorted(root.glob("step_*"))
        for old in kept[: max(0, len(kept) - self.cfg.keep_checkpoints)]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def load_checkpoint(self, path: Path) -> None:
        """Restore weights, optimiser, schedule and counters from a checkpoint folder."""
        self.net.load_state_dict(load_file(path / "model.safetensors"))
        extra = torch.load(path / "optimizer.pt", weights_only=True)
        self.opt.load_state_dict(extra["optimizer"])
        self.sched.load_state_dict(extra["scheduler"])
        if self.disc is not None:
            _unwrap(self.disc).load_state_dict(extra["disc"])
            self.opt_d.load_state_dict(extra["opt_d"])
        state = json.loads((path / "state.json").read_text())
        self.step, self.best_psnr = int(state["step"]), float(state["best_psnr"])
        self.best_step, self.elapsed = int(state["best_step"]), float(state["elapsed_s"])

    def latest_checkpoint(self) -> Path | None:
        found = sorted((self.run_dir / "checkpoints").glob("step_*"))
        return found[-1] if found else None

    def _export(self, name: str) -> None:
        meta = {
            "model": self.cfg.model,
            "scale": str(self.cfg.scale),
            "step": str(self.step),
            "config": self.cfg.name,
        }
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in self.net.state_dict().items()},
            self.run_dir / name,
            metadata=meta,
        )

    def _log(self, record: dict[str, Any]) -> None:
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    # ----- the loop -------------------------------------------------------------------------------------
    def fit(
        self, resume: bool = False, progress: bool = True, max_steps: int | None = None
    ) -> dict[str, Any]:
        """Train to ``optim.steps`` (or ``max_steps`` more steps); returns a summary."""
        cfg, lead = self.cfg, self.rank == 0
        if lead:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(dump(cfg))
        if resume:
            ckpt = self.latest_checkpoint()
            if ckpt is not None:
                self.load_checkpoint(ckpt)
                log.info("resumed from %s (step %d)", ckpt, self.step)
            else:
                log.info("--resume: no checkpoint in %s, starting afresh", self.run_dir)
        if self.step == 0 and cfg.warm_start == "linear":
            self.linear_warm_start()
        elif self.step == 0 and cfg.warm_start == "refit_output":
            self.refit_output_start()
        end = cfg.optim.steps if max_steps is None else min(cfg.optim.steps, self.step + max_steps)
        self._ensure_data()
        bar = tqdm(
            total=cfg.optim.steps,
            initial=self.step,
            disable=not (progress and lead),
            file=sys.stderr,
            mininterval=2.0,
            desc=cfg.name,
            unit="step",
            dynamic_ncols=True,
        )
        t0, avg = time.perf_counter() - self.elapsed, None
        while self.step < end:
            terms = self.train_step(*self.batch(self.step))
            self.elapsed = time.perf_counter() - t0
            avg = terms["total"] if avg is None else 0.98 * avg + 0.02 * terms["total"]
            bar.update(1)
            if lead and (self.step % cfg.log_every == 0 or self.step == end):
                self._log({"step": self.step, "kind": "train", **terms, "elapsed_s": round(self.elapsed, 2)})
                bar.set_postfix(loss=f"{avg:.4g}", best=f"{self.best_psnr:.2f}")
            if lead and cfg.val_every > 0 and (self.step % cfg.val_every == 0 or self.step == end):
                psnr = self.validate()
                self._log(
                    {"step": self.step, "kind": "val", "psnr": psnr, "elapsed_s": round(self.elapsed, 2)}
                )
                if psnr > self.best_psnr:
                    self.best_psnr, self.best_step = psnr, self.step
                    self._export("best.safetensors")
                log.info(
                    "step %d: val Y-PSNR %.3f dB (best %.3f at %d), %.0f s",
                    self.step,
                    psnr,
                    self.best_psnr,
                    self.best_step,
                    self.elapsed,
                )
            if lead and cfg.ckpt_every > 0 and (self.step % cfg.ckpt_every == 0 or self.step == end):
                self.save_checkpoint()
        bar.close()
        summary = {
            "name": cfg.name,
            "step": self.step,
            "best_psnr": self.best_psnr,
            "best_step": self.best_step,
            "elapsed_s": round(self.elapsed, 1),
            "run_dir": str(self.run_dir),
        }
        if lead:
            self._export("last.safetensors")
            try:
                plot_metrics(self.run_dir / "metrics.jsonl", self.run_dir / "curves.png", cfg.name)
                summary["plot"] = str(self.run_dir / "curves.png")
            except ImportError:
                log.warning("matplotlib is not installed: no curves.png (pip install matplotlib)")
        return summary


def read_metrics(path: Path) -> tuple[dict[int, float], dict[int, float]]:
    """(train total loss by step, val PSNR by step); a later line for the same step wins (resumed runs)."""
    train: dict[int, float] = {}
    val: dict[int, float] = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        if rec["kind"] == "train":
            train[rec["step"]] = rec["total"]
        elif rec["kind"] == "val":
            val[rec["step"]] = rec["psnr"]
    return train, val


def plot_metrics(metrics: Path, out: Path, title: str = "") -> None:
    """Loss (log scale) and validation PSNR against the step, side by side, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, val = read_metrics(metrics)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    if train:
        steps = sorted(train)
        a.plot(steps, [train[s] for s in steps], lw=1)
        a.set_yscale("log")
    a.set(xlabel="step", ylabel="training loss", title=title)
    if val:
        steps = sorted(val)
        b.plot(steps, [val[s] for s in steps], marker=".", lw=1)
    b.set(xlabel="step", ylabel="validation Y-PSNR (dB)", title="held-out crops")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
