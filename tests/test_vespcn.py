"""VESPCN: shapes (scales 2/3/4, odd sizes, default body and registered backbones), the motion-compensated
early fusion, the registry entry, and the joint loss against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.motion import flow_warp
from models.registry import build_model, count_params, get_spec
from models.video.vespcn import VESPCN, VESPCNAux, VESPCNLoss, huber_smoothness, vespcn_loss

BACKBONES = ["espcn", "srcnn"]


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize(("h", "w"), [(13, 17), (16, 20)])
def test_default_body_shapes(scale: int, h: int, w: int) -> None:
    torch.manual_seed(0)
    model = VESPCN(scale=scale).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 3, h, w))
    assert out.shape == (2, 3, scale * h, scale * w) and out.dtype == torch.float32


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_backbone_shapes(backbone: str, scale: int) -> None:
    torch.manual_seed(0)
    model = build_model("vespcn", scale, backbone=backbone).eval()
    assert isinstance(model, VESPCN) and model.centre_skip
    with torch.no_grad():
        out = model(torch.rand(1, 3, 3, 11, 15))
    assert out.shape == (1, 3, 11 * scale, 15 * scale)


def test_registry_entry_and_parameter_counts() -> None:
    spec = get_spec("vespcn")
    assert (spec.kind, spec.temporal, spec.radius, spec.accepts_backbone) == ("video", "window", 1, True)
    model = build_model("vespcn", 4)
    # the registry's vespcn has the centre skip its shipped weights were trained with (models/zoo/vespcn)
    assert isinstance(model, VESPCN) and model.num_frame == 2 * spec.radius + 1 and model.centre_skip
    # MC (coarse 35,408 + fine 23,984) + 9-layer body: Conv(9->24), 7 x Conv(24->24), Conv(24->3*s^2), 3x3
    for scale, body in [(2, 41_028), (3, 44_283), (4, 48_840)]:
        expected = 9 * 24 * 9 + 24 + 7 * (24 * 24 * 9 + 24) + 24 * 3 * scale**2 * 9 + 3 * scale**2
        assert body == expected
        assert count_params(VESPCN(scale=scale)) == 59_392 + body
    with pytest.raises(ValueError, match="single-image"):
        VESPCN(scale=4, backbone="basicvsr")


def test_input_checks_and_other_window_sizes() -> None:
    model = VESPCN(scale=2)
    with pytest.raises(ValueError, match=r"T=3"):
        model(torch.rand(1, 5, 3, 8, 8))
    with pytest.raises(ValueError, match="odd"):
        VESPCN(scale=2, num_frame=4)
    with torch.no_grad():
        assert VESPCN(scale=2, num_frame=5)(torch.rand(1, 5, 3, 9, 10)).shape == (1, 3, 18, 20)
        assert VESPCN(scale=2, num_frame=1)(torch.rand(1, 1, 3, 9, 10)).shape == (1, 3, 18, 20)


class _Capture(nn.Module):
    """Fusion stand-in that records its input and returns zeros of the output size."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale, self.seen = scale, torch.empty(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x
        n, _, h, w = x.shape
        return x.new_zeros(n, 3, h * self.scale, w * self.scale)


def test_fusion_sees_compensated_neighbours_in_time_order() -> None:
    """Force the MC to a constant flow (1.5, -0.5): the fusion input must be [warp(x0), x1, warp(x2)]."""
    torch.manual_seed(1)
    model = VESPCN(scale=2, max_flow=4.0)
    with torch.no_grad():
        model.mc.coarse[-3].bias[:16] = math.atanh(1.5 / 4)
        model.mc.coarse[-3].bias[16:] = math.atanh(-0.5 / 4)
    model.fusion = _Capture(2)
    x = torch.rand(2, 3, 3, 12, 14)
    with torch.no_grad():
        _, aux = model(x, return_aux=True)
    flow = torch.tensor([1.5, -0.5]).view(1, 2, 1, 1).expand(2, 2, 12, 14)
    expected = torch.cat([flow_warp(x[:, 0], flow, padding_mode="border"), x[:, 1],
                          flow_warp(x[:, 2], flow, padding_mode="border")], dim=1)
    assert torch.allclose(model.fusion.seen, expected, atol=1e-5)
    assert aux.flows.shape == (2, 2, 2, 12, 14) and torch.allclose(aux.flows[:, 1], flow, atol=1e-5)
    assert aux.warped.shape == (2, 2, 3, 12, 14) and torch.equal(aux.centre, x[:, 1])


def test_backbone_centre_skip_is_bicubic_centre() -> None:
    torch.manual_seed(2)
    model = VESPCN(scale=3, backbone="espcn").eval()
    x = torch.rand(1, 3, 3, 10, 12)
    with torch.no_grad():
        with_skip = model(x)
        model.centre_skip = False
        without = model(x)
    bicubic = F.interpolate(x[:, 1], scale_factor=3, mode="bicubic", align_corners=False)
    assert torch.allclose(with_skip - without, bicubic, atol=1e-5)


# ---------------------------------------------------------------- joint loss


def test_huber_smoothness_by_hand() -> None:
    fx = [[0.0, 1.0, 3.0], [0.0, 2.0, 5.0]]
    fy = [[1.0, 1.0, 1.0], [2.0, 0.0, 1.0]]
    flow = torch.tensor([fx, fy])  # (2, 2, 3)
    eps, values = 0.01, []
    for i in range(1):  # forward differences exist on the (H-1) x (W-1) = 1 x 2 top-left pixels
        for j in range(2):
            s = sum((f[i][j + 1] - f[i][j]) ** 2 + (f[i + 1][j] - f[i][j]) ** 2 for f in (fx, fy))
            values.append(math.sqrt(eps + s))
    assert math.isclose(huber_smoothness(flow, eps).item(), sum(values) / len(values), rel_tol=1e-6)
    assert math.isclose(huber_smoothness(torch.zeros(2, 4, 4)).item(), 0.1, rel_tol=1e-6)  # sqrt(eps)


def test_joint_loss_terms_by_hand() -> None:
    torch.manual_seed(3)
    sr, hr = torch.rand(1, 3, 4, 6), torch.rand(1, 3, 4, 6)
    centre = torch.rand(1, 3, 2, 3)
    warped = torch.rand(1, 2, 3, 2, 3)
    flows = torch.randn(1, 2, 2, 2, 3)
    aux = VESPCNAux(centre, warped, flows)
    total, terms = vespcn_loss(sr, hr, aux, warp_weight=0.01, smooth_weight=0.001)
    recon = ((sr - hr) ** 2).sum().item() / sr.numel()
    warp = sum(((warped[0, k] - centre[0]) ** 2).sum().item() / centre.numel() for k in range(2))
    smooth = 0.0
    for k in range(2):
        f = flows[0, k]
        dx, dy = f[:, :1, 1:] - f[:, :1, :-1], f[:, 1:, :-1] - f[:, :1, :-1]
        smooth += torch.sqrt(0.01 + (dx**2 + dy**2).sum(0)).mean().item()
    assert math.isclose(terms["reconstruction"].item(), recon, rel_tol=1e-5)
    assert math.isclose(terms["warp"].item(), warp, rel_tol=1e-5)
    assert math.isclose(terms["smoothness"].item(), smooth, rel_tol=1e-5)
    assert math.isclose(total.item(), recon + 0.01 * warp + 0.001 * smooth, rel_tol=1e-5)
    module_total, _ = VESPCNLoss()(sr, hr, aux)
    assert torch.equal(module_total, total)


def test_joint_loss_trains_every_parameter() -> None:
    torch.manual_seed(4)
    model = VESPCN(scale=2, num_feat=8, num_layers=3)
    with torch.no_grad():  # leave the identity start so gradients reach every MC layer
        for head in (model.mc.coarse[-3], model.mc.fine[-3]):
            head.weight.normal_(0, 0.01)
    x, hr = torch.rand(2, 3, 3, 12, 16), torch.rand(2, 3, 24, 32)
    sr, aux = model(x, return_aux=True)
    total, terms = VESPCNLoss()(sr, hr, aux)
    total.backward()
    assert all(t.requires_grad for t in terms.values())
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
