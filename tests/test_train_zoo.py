"""The weights we trained and ship (models/zoo): loaded by default, and better than bicubic on real frames
that no training run saw as ground truth outside its held-out set (a crop of tree.avi, held out for the
video models; the single-image models never trained on any clip)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models.registry import get_spec, load_model, resolve_weights
from vsr_pipeline.degrade import degrade_bi, imresize, to_uint8
from vsr_pipeline.metrics import psnr_y

CLIP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos" / "tree.avi"
SHIPPED = [("espcn", 2), ("espcn", 3), ("espcn", 4), ("fsrcnn", 4), ("vespcn", 4), ("edvr-s", 4)]


def _shipped(name: str, scale: int) -> bool:
    spec = get_spec(name)
    if spec.default_weights is None:
        return False
    try:
        resolve_weights(name, None, scale)
    except Exception:
        return False
    return True


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    if not CLIP.is_file():
        pytest.skip(f"{CLIP} is not here (shared data of this workspace)")
    from vsr_pipeline.media.reader import FrameReader

    with FrameReader(CLIP) as reader:
        clip, _ = reader.read(12)
    return clip[8:11, 48:192, 72:216]  # 3 frames, 144x144: leaves and branches


@pytest.mark.parametrize(("name", "scale"), SHIPPED, ids=lambda v: str(v))
def test_shipped_weights_load_by_default_and_beat_bicubic(name: str, scale: int, frames: np.ndarray) -> None:
    if not _shipped(name, scale):
        pytest.skip(f"no shipped x{scale} weights for {name}")
    torch.set_num_threads(1)
    model = load_model(name, None, scale)  # the default weights: what `vsr upscale --model NAME` uses
    hr = frames[:, : frames.shape[1] // scale * scale, : frames.shape[2] // scale * scale]
    lr = degrade_bi(hr, scale)
    x = torch.from_numpy(lr).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        out = model(x[None]) if get_spec(name).temporal == "window" else model(x[1:2])
    sr = out[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()
    bicubic = to_uint8(imresize(lr[1], scale))
    ours, base = psnr_y(sr, hr[1], crop_border=scale), psnr_y(bicubic, hr[1], crop_border=scale)
    assert ours > base + 0.05, f"{name} x{scale}: {ours:.2f} dB vs bicubic {base:.2f} dB"


def test_per_scale_weights_need_the_scale() -> None:
    from models.registry import WeightsNotFoundError

    if not _shipped("espcn", 4):
        pytest.skip("no shipped ESPCN weights")
    assert resolve_weights("espcn", None, 4).name == "espcn_x4.safetensors"  # type: ignore[union-attr]
    assert resolve_weights("espcn", "photos-bi", 4).name == "espcn_x4.safetensors"  # type: ignore[union-attr]
    with pytest.raises(WeightsNotFoundError, match="per scale"):
        resolve_weights("espcn", None)
