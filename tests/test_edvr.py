"""EDVR: BasicSR checkpoint layout and parameter counts, shapes at every scale and odd sizes, the batched
alignment, the centre-frame skip, pluggable single-image backbones, gradients through the deformable convs."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from models.ops.deform_conv import DCNv2Pack, torchvision_deform_conv2d
from models.registry import UnknownModelError, build_model, count_params, get_spec
from models.video.edvr import EDVR
from models.weights import load_weights

TINY = {"num_feat": 8, "deformable_groups": 2, "num_extract_block": 1, "num_reconstruct_block": 1}


def basicsr_edvr_x4_layout(c: int, dg: int, n_extract: int, n_reconstruct: int,
                           t: int = 5) -> dict[str, tuple[int, ...]]:
    """Key -> shape of BasicSR's EDVR x4 (with TSA, no predeblur), written from basicsr/archs/edvr_arch.py
    and arch_util.DCNv2Pack independently of our module."""
    layout: dict[str, tuple[int, ...]] = {}

    def conv(name: str, cin: int, cout: int, k: int = 3) -> None:
        layout[f"{name}.weight"] = (cout, cin, k, k)
        layout[f"{name}.bias"] = (cout,)

    def blocks(prefix: str, n: int) -> None:
        for i in range(n):
            conv(f"{prefix}.{i}.conv1", c, c)
            conv(f"{prefix}.{i}.conv2", c, c)

    conv("conv_first", 3, c)
    blocks("feature_extraction", n_extract)
    for name in ("conv_l2_1", "conv_l2_2", "conv_l3_1", "conv_l3_2"):
        conv(name, c, c)
    for level in ("l1", "l2", "l3"):
        conv(f"pcd_align.offset_conv1.{level}", 2 * c, c)
        conv(f"pcd_align.offset_conv2.{level}", c if level == "l3" else 2 * c, c)
        if level != "l3":
            conv(f"pcd_align.offset_conv3.{level}", c, c)
            conv(f"pcd_align.feat_conv.{level}", 2 * c, c)
        conv(f"pcd_align.dcn_pack.{level}", c, c)
        conv(f"pcd_align.dcn_pack.{level}.conv_offset", c, 3 * dg * 9)
    conv("pcd_align.cas_offset_conv1", 2 * c, c)
    conv("pcd_align.cas_offset_conv2", c, c)
    conv("pcd_align.cas_dcnpack", c, c)
    conv("pcd_align.cas_dcnpack.conv_offset", c, 3 * dg * 9)
    conv("fusion.temporal_attn1", c, c)
    conv("fusion.temporal_attn2", c, c)
    conv("fusion.feat_fusion", t * c, c, 1)
    conv("fusion.spatial_attn1", t * c, c, 1)
    conv("fusion.spatial_attn2", 2 * c, c, 1)
    conv("fusion.spatial_attn3", c, c)
    conv("fusion.spatial_attn4", c, c, 1)
    conv("fusion.spatial_attn5", c, c)
    conv("fusion.spatial_attn_l1", c, c, 1)
    conv("fusion.spatial_attn_l2", 2 * c, c)
    conv("fusion.spatial_attn_l3", c, c)
    conv("fusion.spatial_attn_add1", c, c, 1)
    conv("fusion.spatial_attn_add2", c, c, 1)
    blocks("reconstruction", n_reconstruct)
    conv("upconv1", c, 4 * c)
    conv("upconv2", c, 4 * 64)
    conv("conv_hr", 64, 64)
    conv("conv_last", 64, 3)
    return layout


def _meta(name: str, scale: int = 4, **overrides: object) -> torch.nn.Module:
    with torch.device("meta"):
        return build_model(name, scale, **overrides)


def _shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


# ---------------------------------------------------------------- checkpoint layout and size


@pytest.mark.parametrize(("name", "c", "n_rec"), [("edvr-m", 64, 10), ("edvr-l", 128, 40)])
def test_state_dict_is_basicsr_layout(name: str, c: int, n_rec: int) -> None:
    assert _shapes(_meta(name)) == basicsr_edvr_x4_layout(c, 8, 5, n_rec)


def test_state_dict_has_the_documented_basicsr_keys() -> None:
    """The key families REFERENCES.md lists for BasicSR's EDVR checkpoints."""
    keys = set(_meta("edvr-m").state_dict())
    wanted = ["conv_first.weight", "feature_extraction.4.conv2.bias", "conv_l2_1.weight", "conv_l3_2.bias",
              "pcd_align.cas_offset_conv1.weight", "pcd_align.cas_dcnpack.conv_offset.bias",
              "fusion.temporal_attn1.weight", "fusion.feat_fusion.weight", "fusion.spatial_attn_add2.bias",
              "reconstruction.9.conv1.weight", "upconv1.weight", "upconv2.bias", "conv_hr.weight",
              "conv_last.bias"]
    wanted += [f"pcd_align.{m}.l{i}.weight" for m in ("offset_conv1", "offset_conv2", "dcn_pack")
               for i in (1, 2, 3)]
    wanted += [f"pcd_align.{m}.l{i}.weight" for m in ("offset_conv3", "feat_conv") for i in (1, 2)]
    wanted += [f"fusion.spatial_attn{i}.weight" for i in range(1, 6)]
    wanted += [f"fusion.spatial_attn_l{i}.weight" for i in range(1, 4)]
    assert not set(wanted) - keys


def test_parameter_counts() -> None:
    """EDVR-M and EDVR-L (x4); the paper gives 20.6M for EDVR-L (BasicSR does not state EDVR-M's)."""
    edvr_m, edvr_l = count_params(_meta("edvr-m")), count_params(_meta("edvr-l"))
    assert edvr_m == sum(math.prod(s) for s in basicsr_edvr_x4_layout(64, 8, 5, 10).values()) == 3_300_131
    assert edvr_l == sum(math.prod(s) for s in basicsr_edvr_x4_layout(128, 8, 5, 40).values()) == 20_633_827
    assert abs(edvr_l - 20.6e6) / 20.6e6 < 0.005
    # x2 and x3 differ only in the upsampler: upconv1 makes 64*s*s channels, no upconv2
    for scale, count in ((2, 3_152_419), (3, 3_337_059)):
        model = _meta("edvr-m", scale)
        assert "upconv2.weight" not in model.state_dict()
        assert model.upconv1.out_channels == 64 * scale * scale
        assert count_params(model) == count


def test_basicsr_checkpoint_loads_strict(tmp_path: Path) -> None:
    """A synthetic checkpoint in BasicSR's layout ({'params': state_dict}, torch.save) loads with strict=True
    into EDVR-M, and the model then runs."""
    gen = torch.Generator().manual_seed(0)
    state = {k: torch.randn(s, generator=gen) * 0.01 for k, s in basicsr_edvr_x4_layout(64, 8, 5, 10).items()}
    path = tmp_path / "EDVR_M_x4_SR_REDS.pth"
    torch.save({"params": state}, path)
    model = build_model("edvr-m", 4)
    load_weights(model, path, strict=True)
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in state.items())
    with torch.no_grad():
        out = model.eval()(torch.rand(1, 5, 3, 8, 8))
    assert out.shape == (1, 3, 32, 32) and torch.isfinite(out).all()


# ---------------------------------------------------------------- forward


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize(("h", "w"), [(13, 18), (8, 12), (3, 5)])
def test_output_shape_any_size(scale: int, h: int, w: int) -> None:
    torch.manual_seed(0)
    model = EDVR(scale, **TINY).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 5, 3, h, w))
    assert out.shape == (2, 3, scale * h, scale * w)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_centre_frame_skip_is_plain_bilinear(scale: int) -> None:
    """With the residual branch silenced the output is the centre frame upsampled bilinearly: the skip uses
    the right frame and replicate padding + cropping leave it exactly as on the unpadded frame."""
    torch.manual_seed(0)
    model = EDVR(scale, num_frame=3, center_frame_idx=2, **TINY).eval()
    model.conv_last.register_forward_hook(lambda _m, _i, out: torch.zeros_like(out))
    x = torch.rand(2, 3, 3, 11, 14)
    with torch.no_grad():
        out = model(x)
    want = F.interpolate(x[:, 2], scale_factor=scale, mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, want, atol=1e-6, rtol=0)


def test_alignment_reference_is_the_centre_frame() -> None:
    """All frames go through PCD in one batch; each sample's reference must be its own centre frame."""
    torch.manual_seed(0)
    model = EDVR(4, **TINY).eval()
    seen: dict[str, list[torch.Tensor]] = {}
    model.pcd_align.register_forward_hook(lambda _m, args, _o: seen.update(nbr=args[0], ref=args[1]))
    with torch.no_grad():
        model(torch.rand(3, 5, 3, 8, 12))
    for nbr, ref in zip(seen["nbr"], seen["ref"], strict=True):
        nbr, ref = nbr.view(3, 5, *nbr.shape[1:]), ref.view(3, 5, *ref.shape[1:])
        assert torch.equal(ref, nbr[:, 2:3].expand_as(nbr))


def test_batch_items_are_independent() -> None:
    torch.manual_seed(0)
    model = EDVR(4, **TINY).eval()
    x = torch.rand(3, 5, 3, 9, 10)
    with torch.no_grad():
        together = model(x)
        apart = torch.cat([model(x[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(together, apart, atol=1e-5, rtol=0)


def test_without_tsa_uses_a_1x1_fusion() -> None:
    model = EDVR(2, with_tsa=False, **TINY)
    assert isinstance(model.fusion, torch.nn.Conv2d) and model.fusion.in_channels == 5 * 8
    with torch.no_grad():
        assert model(torch.rand(1, 5, 3, 6, 7)).shape == (1, 3, 12, 14)


def test_bad_input_is_refused() -> None:
    model = EDVR(4, **TINY)
    with pytest.raises(ValueError, match=r"\(N, 5, 3, H, W\)"):
        model(torch.rand(1, 3, 3, 8, 8))
    with pytest.raises(ValueError, match="scales 2, 3 and 4"):
        EDVR(8, **TINY)


def test_gradients_reach_the_offset_convolutions() -> None:
    """Trainable end to end on the pure path: the zero-initialised offset/mask convolutions get gradients."""
    torch.manual_seed(0)
    model = EDVR(2, **TINY)
    for m in model.modules():  # nudge offsets off zero so sampling is fractional, as after training
        if isinstance(m, DCNv2Pack):
            torch.nn.init.normal_(m.conv_offset.weight, std=0.05)
    model(torch.rand(1, 5, 3, 8, 8)).square().mean().backward()
    for m in model.modules():
        if isinstance(m, DCNv2Pack):
            assert m.conv_offset.weight.grad is not None and m.conv_offset.weight.grad.abs().sum() > 0


def test_torchvision_backend_gives_the_same_model_output() -> None:
    if torchvision_deform_conv2d() is None:
        pytest.skip("torchvision cannot be imported here; only the pure-PyTorch deformable convolution runs")
    torch.manual_seed(0)
    model = EDVR(4, **TINY).eval()
    for m in model.modules():
        if isinstance(m, DCNv2Pack):
            torch.nn.init.normal_(m.conv_offset.weight, std=0.05)
    x = torch.rand(2, 5, 3, 12, 16)
    outs = []
    for backend in ("pure", "torchvision"):
        for m in model.modules():
            if isinstance(m, DCNv2Pack):
                m.backend = backend
        with torch.no_grad():
            outs.append(model(x))
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=0)


# ---------------------------------------------------------------- pluggable single-image backbones


@pytest.mark.parametrize("backbone", ["espcn", "edsr-baseline"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_single_image_backbone(backbone: str, scale: int) -> None:
    try:
        get_spec(backbone)
    except UnknownModelError:
        pytest.skip(f"{backbone} is not registered")
    torch.manual_seed(0)
    model = build_model("edvr-m", scale, backbone=backbone, **TINY).eval()
    keys = set(model.state_dict())
    assert any(k.startswith("backbone.") for k in keys)
    assert not any(k.startswith(("reconstruction.", "upconv1.", "conv_last.")) for k in keys)
    x = torch.rand(2, 5, 3, 7, 10)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 3, 7 * scale, 10 * scale)
    # the centre-frame bilinear skip stays: silence the backbone and only it remains
    model.backbone.register_forward_hook(lambda _m, _i, o: torch.zeros_like(o))
    with torch.no_grad():
        out = model(x)
    want = F.interpolate(x[:, 2], scale_factor=scale, mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, want, atol=1e-6, rtol=0)


def test_video_backbone_is_refused() -> None:
    with pytest.raises(ValueError, match="single-image"):
        EDVR(4, backbone="basicvsr", **TINY)
