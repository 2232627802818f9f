"""Classic single-image SR models (SRCNN, FSRCNN, ESPCN, VDSR, DRCN, RED, DRRN, LapSRN): shapes at every
registered scale, parameter counts against the papers (derived by hand from the layer layouts), pre-upsampling
skips against an independent bicubic, DRCN's recursive supervision, LapSRN's pyramid, fusion-body use."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.registry import build_model, count_params, get_spec
from models.sisr.drcn import DRCN, recursive_supervision_loss
from models.sisr.drrn import DRRN
from models.sisr.fsrcnn import FSRCNN
from models.sisr.lapsrn import LapSRN
from models.sisr.red import RED

CLASSIC = ("srcnn", "fsrcnn", "espcn", "vdsr", "drcn", "red", "drrn", "lapsrn")
PRE_UPSAMPLING = ("srcnn", "vdsr", "drcn", "red", "drrn")
#: the module that produces the image (zeroing it leaves only the global skip, if any)
LAST_LAYER = {"srcnn": "conv_last", "vdsr": "conv_last", "drcn": "conv_last", "red": "deconv_last",
              "drrn": "conv_last"}


def _cases() -> list[tuple[str, int]]:
    return [(name, s) for name in CLASSIC for s in get_spec(name).scales]


def _conv_weights(model: nn.Module) -> int:
    """Convolution / deconvolution weights only: how the papers count (no biases, PReLU slopes, ensemble)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d))


def _bicubic(x: torch.Tensor, s: int) -> torch.Tensor:
    return F.interpolate(x, scale_factor=s, mode="bicubic", align_corners=False)


def _zero_last(model: nn.Module, name: str) -> None:
    layer = getattr(model, LAST_LAYER[name])
    with torch.no_grad():
        layer.weight.zero_()
        layer.bias.zero_()


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)


@pytest.mark.parametrize(("name", "scale"), _cases())
def test_registered_config_shapes_on_odd_input(name: str, scale: int) -> None:
    model = build_model(name, scale).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 3, 3, 5))
    assert out.shape == (2, 3, 3 * scale, 5 * scale)
    assert torch.isfinite(out).all()


# name -> (scale, paper figure, conv weights, biases + other parameters), the Y-channel models of the papers
PAPER = {
    # 9-5-5, 64/32 filters: the TPAMI paper's 57,184
    "srcnn": (3, 57_184, 9 * 9 * 64 + 5 * 5 * 64 * 32 + 5 * 5 * 32, 64 + 32 + 1),
    # FSRCNN(56, 12, 4): 12,464; + 173 biases + 172 channel-wise PReLU slopes
    "fsrcnn": (3, 12_464, 5 * 5 * 56 + 56 * 12 + 4 * 3 * 3 * 12 * 12 + 12 * 56 + 9 * 9 * 56,
               (56 + 12 + 4 * 12 + 56 + 1) + (56 + 12 + 4 * 12 + 56)),
    # ESPCN x3: 1 -> 64 (5x5) -> 32 (3x3) -> 9 (3x3); "~25K" in the tables (24,752 at x4, tested below)
    "espcn": (3, 22_729, 5 * 5 * 64 + 3 * 3 * 64 * 32 + 3 * 3 * 32 * 9, 64 + 32 + 9),
    # 20 layers of 64 3x3 filters: 665K
    "vdsr": (4, 665_000, 3 * 3 * 64 + 18 * 3 * 3 * 64 * 64 + 3 * 3 * 64, 19 * 64 + 1),
    # embedding 2, inference 1 (shared), reconstruction 2 layers of 256: 1.77M; + 16 ensemble weights
    "drcn": (4, 1_770_000, 3 * 3 * 256 + 3 * 3 * 3 * 256 * 256 + 3 * 3 * 256, 4 * 256 + 1 + 16),
    # RED30: 15 conv + 15 deconv of 128 3x3 filters: ~4.1M
    "red": (4, 4_100_000, 3 * 3 * 128 + 28 * 3 * 3 * 128 * 128 + 3 * 3 * 128, 29 * 128 + 1),
    # B1U25: entry conv, one shared pair, output conv, 128 filters: 297K
    "drrn": (4, 297_000, 3 * 3 * 128 + 2 * 3 * 3 * 128 * 128 + 3 * 3 * 128, 3 * 128 + 1),
    # 4x: input conv, per level 10 convs + 3x3 feature deconv + residual conv + 4x4 image deconv: 812K
    "lapsrn": (4, 812_000, 3 * 3 * 64 + 2 * (10 * 3 * 3 * 64 * 64 + 3 * 3 * 64 * 64 + 3 * 3 * 64 + 4 * 4),
               64 + 2 * (10 * 64 + 64 + 1)),
}


@pytest.mark.parametrize("name", CLASSIC)
def test_paper_configuration_parameter_count(name: str) -> None:
    scale, paper, weights, others = PAPER[name]
    model = build_model(name, scale, num_in_ch=1, num_out_ch=1)
    assert _conv_weights(model) == weights
    assert count_params(model) == weights + others
    assert abs(weights - paper) / paper <= 0.02
    if name == "fsrcnn":  # the paper counts weights only; biases and PReLU slopes add 2.8%
        assert count_params(model) == 12_809
    else:
        assert abs(count_params(model) - paper) / paper <= 0.02


def test_espcn_paper_count_at_x4() -> None:
    model = build_model("espcn", 4, num_in_ch=1, num_out_ch=1)
    assert count_params(model) == 5 * 5 * 64 + 64 + 3 * 3 * 64 * 32 + 32 + 3 * 3 * 32 * 16 + 16 == 24_752
    assert abs(count_params(model) - 25_000) / 25_000 <= 0.02


def test_espcn_rgb_counts_unchanged() -> None:
    assert [count_params(build_model("espcn", s)) for s in (2, 3, 4)] == [26_796, 31_131, 37_200]


@pytest.mark.parametrize("name", ["vdsr", "drcn", "red", "drrn"])
def test_zero_body_returns_the_bicubic_upscale(name: str) -> None:
    """The global skip adds the bicubic image (PyTorch's, align_corners=False) and nothing else."""
    model = build_model(name, 3, num_feat=16).eval()  # the skip does not depend on the width
    _zero_last(model, name)
    x = torch.rand(2, 3, 5, 7)
    with torch.no_grad():
        out = model(x)
    if name == "drcn":  # sum of 16 weights of 1/16: equal up to float rounding
        torch.testing.assert_close(out, _bicubic(x, 3), rtol=0, atol=1e-6)
    else:
        assert torch.equal(out, _bicubic(x, 3))


def test_srcnn_has_no_global_skip() -> None:
    model = build_model("srcnn", 3).eval()
    _zero_last(model, "srcnn")
    with torch.no_grad():
        assert torch.equal(model(torch.rand(2, 3, 5, 7)), torch.zeros(2, 3, 15, 21))


@pytest.mark.parametrize("name", PRE_UPSAMPLING)
def test_pre_upsampling_sees_only_the_bicubic_image(name: str) -> None:
    """The first convolution receives exactly the bicubic upscale of the LR input."""
    model = build_model(name, 2).eval()
    x = torch.rand(1, 3, 4, 6)
    calls: list[torch.Tensor] = []
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    handle = first.register_forward_hook(lambda _m, inp, _out: calls.append(inp[0]))
    with torch.no_grad():
        model(x)
    handle.remove()
    assert torch.equal(calls[0], _bicubic(x, 2))


@pytest.mark.parametrize("name", CLASSIC)
def test_fusion_body_nine_channels_in(name: str) -> None:
    scale = get_spec(name).scales[0]
    model = build_model(name, scale, num_in_ch=9, num_out_ch=3).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 9, 3, 5))
    assert out.shape == (2, 3, 3 * scale, 5 * scale)
    with pytest.raises(ValueError, match=r"expects \(N, 9, H, W\)"):
        model(torch.rand(2, 3, 3, 5))


@pytest.mark.parametrize("name", PRE_UPSAMPLING)
def test_no_global_skip_when_channels_differ(name: str) -> None:
    model = build_model(name, 2, num_in_ch=9, num_out_ch=3).eval()
    _zero_last(model, name)
    with torch.no_grad():
        assert torch.equal(model(torch.rand(2, 9, 3, 5)), torch.zeros(2, 3, 6, 10))


def _count_calls(model: nn.Module, module: nn.Module, x: torch.Tensor) -> int:
    calls = [0]

    def hook(*_: object) -> None:
        calls[0] += 1

    handle = module.register_forward_hook(hook)
    with torch.no_grad():
        model(x)
    handle.remove()
    return calls[0]


def test_drcn_recursion_shares_one_convolution() -> None:
    model = DRCN(scale=2, num_in_ch=1, num_out_ch=1, num_feat=8).eval()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5  # embedding 2, inference 1, reconstruction 2
    x = torch.rand(2, 1, 3, 5)
    assert _count_calls(model, model.recursive, x) == 16
    assert _count_calls(model, model.conv_last, x) == 16  # one reconstruction per recursion


def test_drcn_recursive_supervision_outputs() -> None:
    model = DRCN(scale=3, num_in_ch=3, num_out_ch=3, num_feat=8).train()
    x, target = torch.rand(2, 3, 5, 7), torch.rand(2, 3, 15, 21)
    out, preds = model.forward_recursive(x)
    assert len(preds) == 16 and all(p.shape == (2, 3, 15, 21) for p in preds)
    weights = model.ensemble_weights
    assert weights.shape == (16,) and weights.requires_grad
    torch.testing.assert_close(weights.sum(), torch.tensor(1.0))
    torch.testing.assert_close(out, sum(w * p for w, p in zip(weights, preds, strict=True)))
    torch.testing.assert_close(model(x), out)
    loss = recursive_supervision_loss(out, preds, target, alpha=1.0)
    torch.testing.assert_close(loss, torch.stack([((p - target) ** 2).mean() for p in preds]).mean())
    loss = recursive_supervision_loss(out, preds, target, alpha=0.5)
    loss.backward()
    assert model.ensemble.grad is not None and model.ensemble.grad.abs().sum() > 0
    assert model.recursive.weight.grad is not None


def test_drrn_b1u25_has_52_layers_and_shared_units() -> None:
    model = DRRN(scale=2, num_in_ch=1, num_out_ch=1, num_feat=8).eval()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 4  # entry, the shared pair, output
    x = torch.rand(1, 1, 3, 5)
    applied = sum(_count_calls(model, c, x) for c in convs)
    assert applied == (1 + 2 * 25) * 1 + 1 == 52


def test_red30_layers_and_symmetric_skips() -> None:
    model = RED(scale=2, num_in_ch=1, num_out_ch=1, num_feat=8)
    assert len(model.convs) == 15
    assert len([m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]) == 15
    # deconvolution j gets the output of convolution 15 - j, every second layer (depths i and 30 - i)
    assert model.skip_pairs == {1: 14, 3: 12, 5: 10, 7: 8, 9: 6, 11: 4, 13: 2}


def test_red_skip_carries_encoder_features() -> None:
    """With every decoder weight zeroed but the last, the output depends on the encoder only via the skips."""
    model = RED(scale=2, num_in_ch=1, num_out_ch=1, num_feat=4, num_layers=4, skip_step=1).eval()
    assert model.skip_pairs == {1: 1}
    with torch.no_grad():
        model.deconvs[0].weight.zero_()
        model.deconvs[0].bias.zero_()
    x = torch.rand(1, 1, 3, 5)
    up = _bicubic(x, 2)
    with torch.no_grad():
        e1 = F.relu(model.convs[0](up))
        expected = model.deconv_last(F.relu(e1)) + up
        torch.testing.assert_close(model(x), expected)


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_lapsrn_pyramid(scale: int) -> None:
    model = LapSRN(scale=scale, num_in_ch=3, num_out_ch=3, num_feat=8, depth=2).eval()
    x = torch.rand(2, 3, 5, 7)
    with torch.no_grad():
        levels = model.forward_pyramid(x)
        out = model(x)
    assert [lv.shape for lv in levels] == [(2, 3, 5 * 2**k, 7 * 2**k) for k in range(1, scale.bit_length())]
    assert torch.equal(out, levels[-1])


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_lapsrn_image_branch_starts_bilinear(scale: int) -> None:
    """Residuals zeroed: every level is the bilinear x2 of the previous one, away from the border."""
    model = LapSRN(scale=scale, num_in_ch=3, num_out_ch=3, num_feat=8, depth=1).eval()
    with torch.no_grad():
        for conv in model.residuals:
            conv.weight.zero_()
            conv.bias.zero_()
        levels = model.forward_pyramid(x := torch.rand(1, 3, 6, 7))
    ref = x
    for k, level in enumerate(levels, start=1):
        ref = F.interpolate(ref, scale_factor=2, mode="bilinear", align_corners=False)
        c = 2**k
        torch.testing.assert_close(level[..., c:-c, c:-c], ref[..., c:-c, c:-c], rtol=0, atol=1e-6)


def test_lapsrn_without_image_skip_when_channels_differ() -> None:
    model = LapSRN(scale=4, num_in_ch=9, num_out_ch=3, num_feat=8, depth=1).eval()
    assert len(model.img_up) == 1  # no image to upsample at the first level
    with torch.no_grad():
        for conv in model.residuals:
            conv.weight.zero_()
            conv.bias.zero_()
        levels = model.forward_pyramid(torch.rand(2, 9, 3, 5))
    assert all(torch.equal(lv, torch.zeros_like(lv)) for lv in levels)


def test_lapsrn_rejects_scale_3() -> None:
    with pytest.raises(ValueError, match="scales 2, 4 and 8"):
        LapSRN(scale=3)


def test_fsrcnn_deconvolution_output_size_any_scale() -> None:
    for scale in (2, 3, 4, 5, 8):
        model = FSRCNN(scale=scale, num_in_ch=1, num_out_ch=1, d=8, s=4, m=1)
        with torch.no_grad():
            assert model(torch.rand(1, 1, 3, 5)).shape == (1, 1, 3 * scale, 5 * scale)


def test_fsrcnn_deconvolution_centres_each_lr_pixel_in_its_block() -> None:
    """x3: the deconvolution's centre tap puts LR pixel (i, j) on HR pixel (3i + 1, 3j + 1), the middle of
    the 3x3 block that LR pixel covers (half-pixel centres, as the bicubic and the degradation use)."""
    model = FSRCNN(scale=3, num_in_ch=1, num_out_ch=1, d=4, s=2, m=1)
    with torch.no_grad():
        model.deconv.weight.zero_()
        model.deconv.weight[0, 0, 4, 4] = 1.0
        model.deconv.bias.zero_()
        feat = torch.zeros(1, 4, 3, 5)
        feat[0, 0, 1, 2] = 1.0
        out = model.deconv(feat)
    assert out.shape == (1, 1, 9, 15)
    assert out[0, 0, 4, 7] == 1.0 and out.sum() == 1.0
