"""Every registered single-image model gives the same frames through the pipeline as its module called
directly (random weights saved to safetensors, a tiny odd-sized clip, lossless PNG output).

Every model goes through the Upscaler worker (the plain class the Ray actor wraps: weights resolution,
loading, batching, quantisation); one model of each upsampling kind also goes through the whole Ray job.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.registry import ModelSpec, build_model, list_specs
from models.weights import save_safetensors
from tests.conftest import textured_frames
from vsr_pipeline import UpscaleOptions, upscale
from vsr_pipeline.engine import Engine
from vsr_pipeline.media import ImageFolderWriter, list_images, read_images

SISR = [s for s in list_specs() if s.kind == "sisr" and s.parametric]
#: one model per upsampling kind (pre, post, progressive) through the whole Ray job
THROUGH_RAY = ["srcnn", "espcn", "lapsrn"]


def _scale(scales: tuple[int, ...]) -> int:
    return 2 if 2 in scales else min(scales)


def _direct(model: torch.nn.Module, frames: np.ndarray) -> np.ndarray:
    """The module on each frame alone, quantised as BasicSR's tensor2img does."""
    outs = []
    with torch.inference_mode():
        for f in frames:
            x = torch.from_numpy(np.ascontiguousarray(f)).permute(2, 0, 1)[None].float() / 255.0
            y = model(x)[0].clamp(0, 1).mul(255).round().to(torch.uint8)
            outs.append(y.permute(1, 2, 0).numpy())
    return np.stack(outs)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    frames = textured_frames(3, 19, 13, seed=3)
    folder = tmp_path_factory.mktemp("zoo") / "lr"
    with ImageFolderWriter(folder) as w:
        w.write(frames, list(range(len(frames))))
    return folder, frames


def test_every_single_image_model_is_covered() -> None:
    assert len(SISR) >= 15, [s.name for s in SISR]


def _random_weights(name: str, scale: int, folder: Path) -> tuple[torch.nn.Module, Path]:
    torch.manual_seed(0)
    model = build_model(name, scale).eval()
    weights = folder / f"{name}.safetensors"
    save_safetensors(model.state_dict(), weights)
    return model, weights


def _assert_same(got: np.ndarray, want: np.ndarray, name: str) -> None:
    assert got.shape == want.shape, (name, got.shape, want.shape)
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16))
    # Same weights, same arithmetic; batch composition may move a value across a rounding boundary.
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (name, diff.max(), (diff > 0).mean())


@pytest.mark.parametrize("spec", SISR, ids=[s.name for s in SISR])
def test_upscaler_equals_module(spec: ModelSpec, clip: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    _, frames = clip
    scale = _scale(spec.scales)
    model, weights = _random_weights(spec.name, scale, tmp_path)
    worker = Engine(spec.name, str(weights), scale, "cpu")
    got = worker.process(slice(0, 3), slice(0, 3), frames[:2], frames[2:])
    assert got.shape == (3, 13 * scale, 19 * scale, 3)
    _assert_same(got, _direct(model, frames), spec.name)


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize("name", THROUGH_RAY)
def test_ray_pipeline_equals_module(name: str, clip: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    folder, frames = clip
    scale = 2
    model, weights = _random_weights(name, scale, tmp_path)
    out = tmp_path / "sr"
    opts = UpscaleOptions(model=name, weights=str(weights), scale=scale, chunk=2, progress=False)
    upscale(folder, out, opts)
    _assert_same(read_images(list_images(out)), _direct(model, frames), name)
