"""Tiling with overlap and blending: coverage, blend weights, tiled == untiled, out-of-memory back-off."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.sisr.espcn import ESPCN
from models.video.basicvsr import BasicVSR
from tests.conftest import textured_frames
from tests.test_windows import random_weights
from vsr_pipeline.engine import Engine, make_forward, run_model, to_frames, to_tensor
from vsr_pipeline.metrics import psnr_y
from vsr_pipeline.tiling import back_off, is_out_of_memory, tile_starts, tiled_forward

CPU = torch.device("cpu")


@pytest.mark.parametrize(("size", "tile", "overlap"), [(40, 16, 4), (48, 16, 8), (17, 16, 2), (16, 16, 4),
                                                        (100, 30, 15), (5, 16, 4)])
def test_tiles_cover_the_frame_with_at_least_the_overlap(size: int, tile: int, overlap: int) -> None:
    starts = tile_starts(size, tile, overlap)
    covered = np.zeros(size, bool)
    for s in starts:
        covered[s : s + tile] = True
    assert covered.all() and starts[0] == 0 and min(size, starts[-1] + tile) == size
    assert all(b - a <= tile - overlap for a, b in itertools.pairwise(starts))


def test_overlap_larger_than_half_a_tile_is_refused() -> None:
    with pytest.raises(ValueError, match="overlap"):
        tile_starts(100, 16, 9)


def _nearest_x2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


def test_blend_weights_sum_to_one_so_a_local_model_is_reproduced() -> None:
    """A pointwise model: every tile agrees with the others wherever they overlap, so any blend whose weights
    are normalised gives back the untiled output exactly (up to float rounding)."""
    x = torch.rand(2, 3, 37, 50)
    tiled = tiled_forward(_nearest_x2, x, tile=16, overlap=5)
    assert tiled.shape == (2, 3, 74, 100)
    torch.testing.assert_close(tiled, _nearest_x2(x), rtol=0, atol=1e-6)


def test_tiled_equals_untiled_when_the_overlap_covers_the_receptive_field() -> None:
    """ESPCN (5x5, 3x3, 3x3 convs): receptive-field radius 4 LR pixels; with an overlap of 16 the quarter of
    each overlap next to a cut (4 px, where a tile lacks context) gets ~0 weight, so every blended pixel comes
    from tiles that saw its full context: equal to untiled up to float rounding."""
    torch.manual_seed(0)
    model = ESPCN(scale=2).eval()
    x = to_tensor(textured_frames(2, 80, 72), CPU)
    with torch.inference_mode():
        whole = model(x)
        tiled = tiled_forward(model, x, tile=32, overlap=16)
    torch.testing.assert_close(tiled, whole, rtol=0, atol=1e-3)
    assert np.abs(to_frames(tiled.clone()).astype(int) - to_frames(whole.clone())).max() <= 1


def test_no_visible_seams_with_a_global_model() -> None:
    """BasicVSR's flow and recurrence see the whole frame, so tiles differ; blending keeps the tiled result
    close to the untiled one everywhere, and no worse along the cut lines than elsewhere (no seam)."""
    torch.manual_seed(1)
    model = BasicVSR(num_feat=8, num_block=1).eval()
    frames = textured_frames(3, 64, 48, seed=3)
    x = to_tensor(frames, CPU).unsqueeze(0)
    with torch.inference_mode():
        whole = to_frames(model(x)[0])
        tiled = to_frames(tiled_forward(model, x, tile=32, overlap=8)[0])
    assert psnr_y(tiled, whole, 0) > 40
    # rows/columns of HR pixels at the tile boundaries vs the rest: error no larger than 2x the average
    err = np.abs(tiled.astype(np.float64) - whole.astype(np.float64)).mean(axis=(0, 3))
    cut_cols = [4 * c for c in range(32, 40)]  # the x overlap (tiles start at 0 and 32 of 64 LR columns)
    assert err[:, cut_cols].mean() <= 2 * err.mean() + 0.5


def test_out_of_memory_errors_are_recognised() -> None:
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
    assert not is_out_of_memory(ValueError("out of memory"))


def test_back_off_order_tiles_then_smaller_tiles_then_smaller_batch() -> None:
    steps, setting = [], (None, 4)
    while (nxt := back_off(*setting, frame_size=(200, 300))) is not None:
        steps.append(nxt)
        setting = nxt
    assert steps == [(150, 4), (75, 4), (37, 4), (37, 2), (37, 1)]
    assert back_off(None, 2, frame_size=(40, 60)) == (None, 1)  # too small to tile: smaller batch at once


class _OomAbove:
    """Wraps a model and raises CUDA's out-of-memory error for inputs wider than ``limit`` pixels."""

    def __init__(self, model: torch.nn.Module, limit: int) -> None:
        self.model, self.limit, self.calls = model, limit, 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if x.shape[-1] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory (test)")
        return self.model(x)


def test_upscaler_backs_off_to_tiles_instead_of_crashing(tmp_path: Path) -> None:
    up = Engine("espcn", random_weights(tmp_path / "e.safetensors", "espcn", 2), 2, "cpu", batch=2)
    frames = textured_frames(3, 128, 40, seed=5)
    expected = run_model(up.model, "none", frames, CPU, batch=2)
    up.compiled = _OomAbove(up.model, limit=50)
    up.forward = make_forward(up.compiled, up.precision)
    out = up.process(slice(0, 3), slice(0, 3), frames)
    assert out.shape == expected.shape
    assert (up.tile, up.batch) == (32, 2)
    assert [b["tile"] for b in up.backoffs] == [64, 32]
    assert psnr_y(out, expected, 0) > 45
    again = up.process(slice(0, 3), slice(0, 3), frames)  # the smaller setting is kept
    assert np.array_equal(again, out) and len(up.backoffs) == 2


def test_upscaler_gives_up_when_nothing_smaller_is_left(tmp_path: Path) -> None:
    up = Engine("espcn", random_weights(tmp_path / "e.safetensors", "espcn", 2), 2, "cpu", batch=1)
    up.compiled = _OomAbove(up.model, limit=0)
    up.forward = make_forward(up.compiled, up.precision)
    with pytest.raises(torch.OutOfMemoryError):
        up.process(slice(0, 1), slice(0, 1), textured_frames(1, 64, 40))
