"""Upscaler worker: holds a model on a device and turns LR frame windows into HR core frames.

``Upscaler`` is a plain class (tests call it directly); the pipeline wraps it with
``ray.remote`` so it lives in an actor that keeps the model loaded between chunks.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from models.registry import ModelSpec, build_model, get_spec, register, resolve_weights
from models.weights import load_weights
from vsr_pipeline.windows import window_table


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA device is available")
    return torch.device(device)


def to_tensor(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (..., H, W, 3) -> float32 (..., 3, H, W) in [0, 1] on ``device``; float16 input is taken as
    already in [0, 1] (pre-aligned windows)."""
    if not frames.flags.writeable or not frames.flags.c_contiguous:  # Ray hands out read-only views
        frames = np.array(frames, order="C")
    t = torch.from_numpy(frames).to(device).movedim(-1, -3)
    if frames.dtype == np.uint8:
        return t.float().div_(255.0)
    return t.float()


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """float (T, 3, H, W) in [0, 1] -> uint8 (T, H, W, 3), rounded as BasicSR's tensor2img does."""
    out = frames.clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
    return np.ascontiguousarray(out.permute(0, 2, 3, 1).cpu().numpy())


def forward_full(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch: int) -> torch.Tensor:
    """``model(x)`` with ``x`` padded to exactly ``batch`` items (the last one repeated, its outputs dropped).

    Every forward pass then has the same shape and memory layout, whatever the chunking: convolution
    kernels pick their algorithm by shape and layout (on the CPU a batch of 1 takes another path than a
    batch of 2+, and channels-last another than contiguous, a few 1e-7 apart, enough to flip a rounded
    output value), so this is what makes chunked output equal whole-video output bit for bit. Cost: at
    most ``batch - 1`` extra items per chunk.
    """
    return model(pad_batch(x, batch))[: len(x)]


def pad_batch(x: torch.Tensor, batch: int) -> torch.Tensor:
    """``x`` with its last item repeated until it holds ``batch`` items, always contiguous (a padded batch
    and a full one must also share their memory layout, or kernels differ again)."""
    if len(x) >= batch:
        return x.contiguous()
    return torch.cat([x, x[-1:].expand(batch - len(x), *x.shape[1:])]).contiguous()


@torch.inference_mode()
def run_model(
    model: torch.nn.Module,
    temporal: str,
    frames: np.ndarray,
    device: torch.device,
    batch: int = 4,
    radius: int = 0,
    keep: slice | None = None,
) -> np.ndarray:
    """Run ``model`` over LR frames uint8 (T, H, W, 3); returns HR uint8 (T, sH, sW, 3).

    Recurrent video models see the whole window as one sequence; single-image models run
    per frame in mini-batches of ``batch``; window models (``radius`` frames each side) get
    ``batch`` windows of ``2 * radius + 1`` frames per forward, edge frames replicated at the
    ends of ``frames`` (``vsr_pipeline.windows``). Mini-batches are always ``batch`` items
    (``forward_full``). With ``keep``, only those output frames are computed and returned
    (the others of the chunk are context).
    """
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (T, H, W, 3), got {frames.shape}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if temporal == "recurrent":
        hr = to_uint8(model(to_tensor(frames, device).unsqueeze(0))[0])
        return hr if keep is None else hr[keep]
    if temporal == "none":
        if keep is not None:
            frames = frames[keep]
        parts = [
            to_uint8(forward_full(model, to_tensor(frames[i : i + batch], device), batch))
            for i in range(0, len(frames), batch)
        ]
        return np.concatenate(parts)
    if temporal == "window":
        table = torch.from_numpy(window_table(len(frames), radius, keep)).to(device)
        lr = to_tensor(frames, device)  # (L, 3, H, W): each frame converted once, gathered per window
        parts = [
            to_uint8(forward_full(model, lr[table[i : i + batch]], batch))
            for i in range(0, len(table), batch)
        ]
        return np.concatenate(parts)
    raise ValueError(f"temporal mode {temporal!r} is not supported by this pipeline")


@torch.inference_mode()
def run_windows(
    model: torch.nn.Module, windows: np.ndarray, device: torch.device, batch: int = 4
) -> np.ndarray:
    """Run a window model over ready-made windows (T, 2r+1, H, W, 3), uint8 or float16 in [0, 1] (the
    aligner's output); returns HR uint8 (T, sH, sW, 3)."""
    if windows.ndim != 5 or windows.shape[-1] != 3:
        raise ValueError(f"expected windows of shape (T, 2r+1, H, W, 3), got {windows.shape}")
    parts = [
        to_uint8(forward_full(model, to_tensor(windows[i : i + batch], device), batch))
        for i in range(0, len(windows), batch)
    ]
    return np.concatenate(parts)


def use_spec(model: str | ModelSpec) -> ModelSpec:
    """The spec of ``model``. A spec handed over by the driver is registered in this process if it lacks it,
    so models a Python caller registers at run time work inside Ray actors too (same name, different spec:
    ``ModelError``)."""
    if isinstance(model, ModelSpec):
        register(model)
        return model
    return get_spec(model)


def load_upscaler_model(
    model: str, weights: str | None, scale: int, backbone: str | None = None
) -> torch.nn.Module:
    """Build ``model`` (with ``backbone`` for video models that accept one), load its weights strictly
    (after building, so the backbone's parameters are part of the checkpoint), eval mode, CPU."""
    overrides = {} if backbone is None else {"backbone": backbone}
    net = build_model(model, scale, **overrides)
    path = resolve_weights(model, weights)
    if path is not None:
        load_weights(net, path, strict=True)
    return net.eval()


class Upscaler:
    """Holds one model; ``process`` upscales a chunk's window and returns its core frames."""

    def __init__(
        self,
        model: str | ModelSpec,
        weights: str | None,
        scale: int,
        device: str = "auto",
        threads: int = 0,
        batch: int = 4,
        backbone: str | ModelSpec | None = None,
    ):
        if threads > 0:
            torch.set_num_threads(threads)
        self.device = resolve_device(device)
        self.spec = use_spec(model)
        self.batch = batch
        body = None if backbone is None else use_spec(backbone).name
        self.model = load_upscaler_model(self.spec.name, weights, scale, body).to(self.device)

    def process(self, window: slice, keep: slice, *batches: np.ndarray) -> np.ndarray:
        """Upscale one chunk: ``batches`` are consecutive decode batches, ``window`` the chunk's
        frames within their concatenation, ``keep`` its core frames within the window."""
        frames = batches[0] if len(batches) == 1 else np.concatenate(batches)
        return run_model(
            self.model, self.spec.temporal, frames[window], self.device, self.batch, self.spec.radius, keep
        )

    def process_windows(self, windows: np.ndarray) -> np.ndarray:
        """Upscale one chunk of pre-aligned windows (T, 2r+1, H, W, 3) from the ``Aligner``."""
        if self.spec.temporal != "window":
            raise ValueError(f"model {self.spec.name} is not a window model; it takes no aligned windows")
        if windows.ndim != 5 or windows.shape[1] != 2 * self.spec.radius + 1:
            raise ValueError(
                f"model {self.spec.name} takes windows of {2 * self.spec.radius + 1} frames, "
                f"got shape {windows.shape}"
            )
        return run_windows(self.model, windows, self.device, self.batch)

    def device_name(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"cpu ({torch.get_num_threads()} threads)"
