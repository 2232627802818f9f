"""Upscaler worker: holds a model on a device and turns LR frame windows into HR core frames.

``Upscaler`` is a plain class (tests call it directly); the pipeline wraps it with
``ray.remote`` so it lives in an actor that keeps the model loaded between chunks.
"""

from __future__ import annotations

import numpy as np
import torch

from models.registry import get_spec, load_model


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA device is available")
    return torch.device(device)


def to_tensor(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float32 (T, 3, H, W) in [0, 1] on ``device``."""
    if not frames.flags.writeable or not frames.flags.c_contiguous:  # Ray hands out read-only views
        frames = np.array(frames, order="C")
    t = torch.from_numpy(frames).to(device)
    return t.permute(0, 3, 1, 2).float().div_(255.0)


def to_uint8(frames: torch.Tensor) -> np.ndarray:
    """float (T, 3, H, W) in [0, 1] -> uint8 (T, H, W, 3), rounded as BasicSR's tensor2img does."""
    out = frames.clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)
    return np.ascontiguousarray(out.permute(0, 2, 3, 1).cpu().numpy())


@torch.inference_mode()
def run_model(
    model: torch.nn.Module, temporal: str, frames: np.ndarray, device: torch.device, batch: int = 4
) -> np.ndarray:
    """Run ``model`` over LR frames uint8 (T, H, W, 3); returns HR uint8 (T, sH, sW, 3).

    Recurrent video models see the whole window as one sequence; single-image models run
    per frame in mini-batches of ``batch``.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (T, H, W, 3), got {frames.shape}")
    if temporal == "recurrent":
        return to_uint8(model(to_tensor(frames, device).unsqueeze(0))[0])
    if temporal == "none":
        parts = [
            to_uint8(model(to_tensor(frames[i : i + batch], device))) for i in range(0, len(frames), batch)
        ]
        return np.concatenate(parts)
    raise ValueError(f"temporal mode {temporal!r} is not supported by this pipeline yet")


class Upscaler:
    """Holds one model; ``process`` upscales a chunk's window and returns its core frames."""

    def __init__(self, model: str, weights: str | None, scale: int, device: str = "auto", threads: int = 0):
        if threads > 0:
            torch.set_num_threads(threads)
        self.device = resolve_device(device)
        self.spec = get_spec(model)
        self.model = load_model(model, weights, scale).to(self.device)

    def process(self, window: slice, keep: slice, *batches: np.ndarray) -> np.ndarray:
        """Upscale one chunk: ``batches`` are consecutive decode batches, ``window`` the chunk's
        frames within their concatenation, ``keep`` its core frames within the window."""
        frames = batches[0] if len(batches) == 1 else np.concatenate(batches)
        hr = run_model(self.model, self.spec.temporal, frames[window], self.device)
        return hr[keep]

    def device_name(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"cpu ({torch.get_num_threads()} threads)"
