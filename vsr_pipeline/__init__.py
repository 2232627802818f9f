"""vsr-pipeline: video super-resolution as a pipeline (PyAV decode, Ray actors, BasicVSR and single-image
models, PyAV encode). The public Python API::

    from vsr_pipeline import UpscaleOptions, upscale

    result = upscale("clip.mp4", "clip_x4.mp4", UpscaleOptions(model="basicvsr", crf=16))
    print(result.frames_out, result.fps)

- ``upscale(input, output, opts)`` -> ``UpscaleResult``: one video file or frame folder (resumable).
- ``batch(inputs, outdir, opts)`` -> summary dict: many videos, one shared pool of upscalers.
- ``stream_upscale(source, output, opts)`` -> dict: stdin (``"-"``) or a URL, written as it grows.
- ``evaluate(dataset, opts, degradation, crop_border)`` -> dict: Y-PSNR/SSIM, NIQE and tdiff against ground
  truth, beside bicubic; ``degradation`` is a chain such as ``"bi"`` or ``"bi+h264:28"``.
- ``degrade_video(input, output, scale, degradation)`` -> dict: LR material (MATLAB bicubic, blur +
  decimate, then codec and noise stages).
- ``list_models()`` -> dict: every registered model, its scales and installed weights.
- ``release_warm_upscalers()``: where the caller keeps Ray running, a job that ends well leaves its upscaler
  actors warm, and its decoder and encoder idle, for the next (``vsr_pipeline.warm_actors``); this kills them
  now, freeing their slots.
- ``UpscaleOptions`` (one job), ``ModelSettings``, ``EncodeSettings``, ``BatchOptions``: typed settings whose
  defaults are the CLI's. ``Engine``: the inference engine alone (numpy frames in and out, no Ray).
- Errors: ``VsrError`` and its subclasses carry the CLI's exit code (``exit_code``).

No exported name is also a submodule's (importing ``vsr_pipeline.degrade`` would replace a function of that
name on the package). Names are imported on first use, so ``import vsr_pipeline`` stays cheap (no torch,
no Ray).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.2.1"

_EXPORTS = {
    "upscale": "vsr_pipeline.job",
    "UpscaleResult": "vsr_pipeline.job",
    "UpscaleOptions": "vsr_pipeline.options",
    "ModelSettings": "vsr_pipeline.options",
    "EncodeSettings": "vsr_pipeline.media",
    "BatchOptions": "vsr_pipeline.batch_runner",
    "stream_upscale": "vsr_pipeline.streaming",
    "evaluate": "vsr_pipeline.evaluation",
    "list_models": "vsr_pipeline.model_commands",
    "release_warm_upscalers": "vsr_pipeline.upscaler_pool",
    "Engine": "vsr_pipeline.engine",
    "VsrError": "vsr_pipeline.errors",
    "UsageError": "vsr_pipeline.errors",
    "InterruptedJob": "vsr_pipeline.errors",
    "ChunkFailedError": "vsr_pipeline.errors",
    "ResourceError": "vsr_pipeline.errors",
    "MediaError": "vsr_pipeline.media",
}

__all__ = [
    "BatchOptions", "ChunkFailedError", "EncodeSettings", "Engine", "InterruptedJob", "MediaError",
    "ModelSettings", "ResourceError", "UpscaleOptions", "UpscaleResult", "UsageError", "VsrError", "batch",
    "degrade_video", "evaluate", "list_models", "release_warm_upscalers", "stream_upscale", "upscale",
]

if TYPE_CHECKING:
    from vsr_pipeline.batch_runner import BatchOptions
    from vsr_pipeline.engine import Engine
    from vsr_pipeline.errors import ChunkFailedError, InterruptedJob, ResourceError, UsageError, VsrError
    from vsr_pipeline.evaluation import evaluate
    from vsr_pipeline.job import UpscaleResult, upscale
    from vsr_pipeline.media import EncodeSettings, MediaError
    from vsr_pipeline.model_commands import list_models
    from vsr_pipeline.options import ModelSettings, UpscaleOptions
    from vsr_pipeline.streaming import stream_upscale
    from vsr_pipeline.upscaler_pool import release_warm_upscalers


def batch(inputs: list[str], outdir: str, opts: UpscaleOptions | None = None, **batch_options: Any
          ) -> dict[str, Any]:
    """Upscale every input into ``outdir`` with one shared pool of upscalers (``vsr batch``); returns the
    summary (also written to ``outdir`` with a Markdown report). ``batch_options``: ``BatchOptions`` fields
    (``format``, ``upscalers``, ``threads``, ``jobs``)."""
    from pathlib import Path

    from vsr_pipeline.batch_runner import BatchOptions, run_batch
    from vsr_pipeline.options import UpscaleOptions

    return run_batch(list(inputs), BatchOptions(opts or UpscaleOptions(), Path(outdir), **batch_options))


def degrade_video(input_path: str, output: str, scale: int = 4, degradation: str = "bi",
                  overwrite: bool = False) -> dict[str, Any]:
    """Low-resolution material from ``input_path`` (``vsr degrade``): ``bi`` MATLAB-style antialiased
    bicubic, ``bd`` Gaussian blur (sigma 1.6) then every ``scale``-th pixel, then the chain's stages
    (``"bi+h264:28"``, ``"bd+mpeg4:8+noise:2"``; ``vsr_pipeline.degradation``)."""
    from vsr_pipeline.evaluation import degrade_file

    return degrade_file(input_path, output, scale, degradation, None, overwrite)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vsr_pipeline' has no attribute {name!r}")
