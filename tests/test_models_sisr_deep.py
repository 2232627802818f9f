"""The deeper single-image models (SRDenseNet, SRResNet, EDSR, MDSR, RDN, RRDBNet), the SRGAN/ESRGAN
discriminators and the relativistic average GAN losses: shapes on odd sizes, parameter counts against the
papers (and against layer-by-layer arithmetic written here), checkpoint key layouts, MDSR's shared state
dict."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from models.registry import build_model, count_params
from models.sisr.edsr import DIV2K_RGB_MEAN, EDSR, MDSR
from models.sisr.rdn import RDN
from models.sisr.rrdbnet import (
    RRDBNet,
    VGGStyleDiscriminator,
    relativistic_average_logits,
    relativistic_discriminator_loss,
    relativistic_generator_loss,
)
from models.sisr.srdensenet import SRDenseNet
from models.sisr.srresnet import SRGANDiscriminator, SRResNet

#: reduced widths/depths so every forward pass takes milliseconds
SMALL: dict[str, dict[str, object]] = {
    "srdensenet": {"num_block": 2, "num_layer": 2, "growth": 4, "bottleneck": 16},
    "srresnet": {"num_feat": 16, "num_block": 2},
    "edsr": {"num_feat": 16, "num_block": 2},
    "edsr-baseline": {"num_feat": 16, "num_block": 2},
    "mdsr": {"num_feat": 16, "num_block": 2},
    "rdn": {"num_feat": 16, "num_block": 2, "num_layer": 2, "growth": 8},
    "rrdbnet": {"num_feat": 16, "num_block": 1, "num_grow_ch": 8},
}
CLASSES = {"srdensenet": SRDenseNet, "srresnet": SRResNet, "edsr": EDSR, "edsr-baseline": EDSR, "mdsr": MDSR,
           "rdn": RDN, "rrdbnet": RRDBNet}
CASES = [(name, s) for name in SMALL for s in ((2, 4) if name == "rrdbnet" else (2, 3, 4))]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize(("name", "scale"), CASES)
def test_shapes_on_odd_input(name: str, scale: int) -> None:
    model = build_model(name, scale, **SMALL[name]).eval()
    assert isinstance(model, CLASSES[name])
    x = torch.rand(2, 3, 7, 9)
    with torch.no_grad():
        y = model(x)
    assert y.shape == (2, 3, 7 * scale, 9 * scale) and y.dtype == torch.float32
    assert torch.isfinite(y).all()
    # the two images of the batch are processed independently (eval mode)
    with torch.no_grad():
        assert torch.allclose(model(x[1:]), y[1:], atol=1e-5)


@pytest.mark.parametrize("num_in_ch", [9, 64])
@pytest.mark.parametrize(("name", "scale"), [(n, 4) for n in SMALL] + [("rrdbnet", 2), ("mdsr", 3)])
def test_fusion_body_channels(name: str, scale: int, num_in_ch: int) -> None:
    """Stacked frames (9 channels) or features (64) in, RGB out: the model as a video model's fusion body."""
    model = build_model(name, scale, num_in_ch=num_in_ch, **SMALL[name]).eval()
    with torch.no_grad():
        y = model(torch.rand(2, num_in_ch, 5, 7))
    assert y.shape == (2, 3, 5 * scale, 7 * scale)
    with pytest.raises(ValueError, match=f"expects \\(N, {num_in_ch}, H, W\\)"):
        model(torch.rand(2, 3, 5, 7))


# --- parameter counts: layer-by-layer arithmetic, independent of the model code -----------------------------

def _conv(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k + cout


def _subpixel(scale: int, f: int) -> int:
    return _conv(f, 9 * f, 3) if scale == 3 else (scale // 2) * _conv(f, 4 * f, 3)


def _edsr(f: int, blocks: int, scale: int) -> int:
    trunk = blocks * 2 * _conv(f, f, 3) + _conv(f, f, 3)
    return _conv(3, f, 3) + trunk + _subpixel(scale, f) + _conv(f, 3, 3)


def _mdsr(f: int = 64, blocks: int = 80) -> int:
    per_scale = sum(2 * 2 * _conv(f, f, 5) + _subpixel(s, f) for s in (2, 3, 4))
    return _conv(3, f, 3) + per_scale + blocks * 2 * _conv(f, f, 3) + _conv(f, f, 3) + _conv(f, 3, 3)


def _srresnet(scale: int, f: int = 64, blocks: int = 16) -> int:
    bn, prelu = 2 * f, 1
    block = 2 * _conv(f, f, 3) + 2 * bn + prelu
    stages = 1 if scale in (2, 3) else 2
    return (_conv(3, f, 9) + prelu + blocks * block + _conv(f, f, 3) + bn + _subpixel(scale, f)
            + stages * prelu + _conv(f, 3, 9))


def _rdn(scale: int, g0: int = 64, d: int = 16, c: int = 8, g: int = 64) -> int:
    rdb = sum(_conv(g0 + i * g, g, 3) for i in range(c)) + _conv(g0 + c * g, g0, 1)
    return (_conv(3, g0, 3) + _conv(g0, g0, 3) + d * rdb + _conv(d * g0, g0, 1) + _conv(g0, g0, 3)
            + _subpixel(scale, g0) + _conv(g0, 3, 3))


def _rrdbnet(f: int = 64, blocks: int = 23, gc: int = 32) -> int:
    rdb = sum(_conv(f + i * gc, gc, 3) for i in range(4)) + _conv(f + 4 * gc, f, 3)
    return _conv(3, f, 3) + blocks * 3 * rdb + 4 * _conv(f, f, 3) + _conv(f, 3, 3)  # body, up1, up2, hr


def _srdensenet(scale: int, cin: int = 3) -> int:
    k, layers, blocks, bottleneck = 16, 8, 8, 256
    width = k * layers
    dense = sum(_conv(width * (b + 1), k, 3) + sum(_conv(i * k, k, 3) for i in range(1, layers))
                for b in range(blocks))
    deconvs = 2 if scale == 4 else 1
    return (_conv(cin, width, 3) + dense + _conv(width * (blocks + 1), bottleneck, 1)
            + deconvs * _conv(bottleneck, bottleneck, 3) + _conv(bottleneck, cin, 3))


@pytest.mark.parametrize(("name", "scale", "paper", "tolerance"), [
    ("edsr", 4, 43e6, 0.02),            # EDSR paper, Table 1: 43M
    ("edsr-baseline", 4, 1.5e6, 0.02),  # EDSR paper, Table 1: baseline 1.5M
    ("mdsr", 4, 8.0e6, 0.02),           # EDSR paper, Table 1: MDSR 8.0M
    ("rdn", 4, 22e6, 0.02),             # RDN (D=16, C=8, G=64): 22M as compared in RCAN / ESRGAN-era tables
    ("rrdbnet", 4, 16.7e6, 0.02),       # ESRGAN generator, 23 RRDBs: 16.7M
    # EDSR paper, Table 1 lists SRResNet at "1.5M", two significant digits: the exact layout of Ledig et al.
    # (9x9 head and tail, BN, PReLU) has 1.549M, 3.3% above, still within half a unit of the last digit.
    ("srresnet", 4, 1.5e6, 0.05 / 1.5),
])
def test_paper_parameter_counts(name: str, scale: int, paper: float, tolerance: float) -> None:
    n = count_params(build_model(name, scale))
    assert abs(n - paper) <= tolerance * paper, (name, n)
    expected = {"edsr": _edsr(256, 32, 4), "edsr-baseline": _edsr(64, 16, 4), "mdsr": _mdsr(),
                "rdn": _rdn(4), "rrdbnet": _rrdbnet(), "srresnet": _srresnet(4)}[name]
    assert n == expected


def test_srdensenet_parameter_count() -> None:
    """The paper gives no count we could verify; check the layout against the arithmetic of the layers."""
    assert count_params(SRDenseNet(4)) == _srdensenet(4) == 2_666_499
    assert count_params(SRDenseNet(4, num_in_ch=1, num_out_ch=1)) == _srdensenet(4, cin=1)
    assert count_params(SRDenseNet(2)) == _srdensenet(2)


def test_other_scales_counts() -> None:
    """Scale-dependent parts only: the upsamplers (small configurations, exact arithmetic)."""
    assert count_params(EDSR(3)) == _edsr(64, 16, 3) and count_params(EDSR(2)) == _edsr(64, 16, 2)
    assert count_params(SRResNet(3)) == _srresnet(3) and count_params(SRResNet(2)) == _srresnet(2)
    assert count_params(RDN(2, num_block=2, num_layer=2)) == _rdn(2, d=2, c=2)
    assert count_params(RDN(3, num_block=2, num_layer=2)) == _rdn(3, d=2, c=2)
    x2, x4 = RRDBNet(2, num_block=1), RRDBNet(4, num_block=1)
    assert count_params(x2) - count_params(x4) == 3 * 3 * 64 * 9  # conv_first sees 4x the channels


# --- checkpoint layouts -------------------------------------------------------------------------------------

def test_edsr_keys_are_basicsr_and_mean_is_not_saved() -> None:
    keys = set(EDSR(4, num_block=2).state_dict())
    modules = ("conv_first", "body.0.conv1", "body.0.conv2", "body.1.conv1", "body.1.conv2",
               "conv_after_body", "upsample.0", "upsample.2", "conv_last")
    expected = {f"{m}.{p}" for m in modules for p in ("weight", "bias")}
    assert keys == expected


def test_edsr_output_mean_and_range() -> None:
    """With the last convolution zeroed the output is exactly the DIV2K mean (added back after /255);
    with 64 output channels nothing is added."""
    model = EDSR(2, num_feat=16, num_block=1).eval()
    torch.nn.init.zeros_(model.conv_last.weight)
    torch.nn.init.zeros_(model.conv_last.bias)
    with torch.no_grad():
        y = model(torch.rand(2, 3, 5, 5))
    assert torch.allclose(y, torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1).expand_as(y))
    model64 = EDSR(2, num_out_ch=64, num_feat=16, num_block=1).eval()
    torch.nn.init.zeros_(model64.conv_last.bias)
    torch.nn.init.zeros_(model64.conv_last.weight)
    with torch.no_grad():
        assert model64(torch.rand(1, 3, 5, 5)).abs().max() == 0


def test_rrdbnet_keys_are_basicsr_and_x2_matches_x4_layout() -> None:
    x4, x2 = RRDBNet(4, num_block=2).state_dict(), RRDBNet(2, num_block=2).state_dict()
    rdb = {f"body.{i}.rdb{r}.conv{c}.{p}" for i in range(2) for r in (1, 2, 3) for c in range(1, 6)
           for p in ("weight", "bias")}
    tail = {f"{m}.{p}" for m in ("conv_first", "conv_body", "conv_up1", "conv_up2", "conv_hr", "conv_last")
            for p in ("weight", "bias")}
    assert set(x4) == set(x2) == rdb | tail
    assert x4["conv_first.weight"].shape == (64, 3, 3, 3) and x2["conv_first.weight"].shape == (64, 12, 3, 3)


@pytest.mark.parametrize("scale", [2, 4])
def test_rrdbnet_matches_kornia_basicsr_port(scale: int) -> None:
    """kornia ships BasicSR's RRDBNet with its key names (so Real-ESRGAN checkpoints load): our state dict
    loads into it strictly and both give the same output (even input; kornia's x2 rejects odd sizes)."""
    kornia_rrdb = pytest.importorskip("kornia.models.rrdbnet")
    ours = RRDBNet(scale, num_feat=16, num_block=2, num_grow_ch=8).eval()
    ref = kornia_rrdb.RRDBNet(3, 3, scale=scale, num_feat=16, num_block=2, num_grow_ch=8).eval()
    ref.load_state_dict(ours.state_dict(), strict=True)
    x = torch.rand(2, 3, 8, 10)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref(x), atol=1e-6)


def test_rrdbnet_x2_odd_size_is_the_padded_result_cropped() -> None:
    model = RRDBNet(2, **SMALL["rrdbnet"]).eval()  # type: ignore[arg-type]
    x = torch.rand(1, 3, 7, 9)
    with torch.no_grad():
        y = model(x)
        y_pad = model(F.pad(x, (0, 1, 0, 1), mode="replicate"))
    assert torch.equal(y, y_pad[..., :14, :18])


def test_mdsr_every_scale_from_one_state_dict() -> None:
    small = SMALL["mdsr"]
    source = MDSR(scale=2, **small).eval()  # type: ignore[arg-type]
    state = source.state_dict()
    assert {k.split(".")[1] for k in state if k.startswith(("pre_process.", "upsample."))} == {"0", "1", "2"}
    x = torch.rand(2, 3, 5, 7)
    outs = {}
    for scale in (2, 3, 4):
        model = build_model("mdsr", scale, **small)
        model.load_state_dict(state, strict=True)
        with torch.no_grad():
            outs[scale] = model.eval()(x)
            assert torch.equal(outs[scale], source(x, scale=scale))
        assert outs[scale].shape == (2, 3, 5 * scale, 7 * scale)
    # the branches differ: x2 output downsampled is not what x4 gives
    assert not torch.allclose(F.avg_pool2d(outs[4], 2), outs[2], atol=1e-3)
    with pytest.raises(ValueError, match="not 8"):
        source(x, scale=8)


# --- discriminators -----------------------------------------------------------------------------------------

def test_srgan_discriminator() -> None:
    """Paper: 96x96 HR crops; the same layout on 128x128 (ESRGAN's crop size) with its dense layer resized."""
    for size in (96, 128):
        disc = SRGANDiscriminator(input_size=size, num_feat=16)
        out = disc(torch.rand(2, 3, size, size))
        assert out.shape == (2, 1)
        assert disc.classifier[0].in_features == 16 * 8 * (size // 16) ** 2
    assert count_params(SRGANDiscriminator()) == 23_563_649  # 64 filters, 96x96
    with pytest.raises(ValueError, match="expects \\(N, 3, 96, 96\\)"):
        SRGANDiscriminator()(torch.rand(2, 3, 128, 128))


def test_vgg_style_discriminator() -> None:
    disc = VGGStyleDiscriminator(num_feat=16)
    assert disc(torch.rand(2, 3, 128, 128)).shape == (2, 1)
    assert VGGStyleDiscriminator(num_feat=8, input_size=256)(torch.rand(2, 3, 256, 256)).shape == (2, 1)
    keys = set(VGGStyleDiscriminator(num_feat=8).state_dict())
    assert {"conv0_0.bias", "conv4_1.weight", "bn4_1.running_var", "linear1.weight", "linear2.bias"} <= keys
    assert "conv1_0.bias" not in keys and "conv5_0.weight" not in keys
    with pytest.raises(ValueError, match="128x128 or 256x256"):
        VGGStyleDiscriminator(input_size=96)


# --- relativistic average GAN -------------------------------------------------------------------------------

def test_relativistic_losses_by_hand() -> None:
    real, fake = torch.tensor([1.0, 3.0]), torch.tensor([0.0, 2.0])
    rel_real, rel_fake = relativistic_average_logits(real, fake)
    assert torch.equal(rel_real, torch.tensor([0.0, 2.0]))
    assert torch.equal(rel_fake, torch.tensor([-2.0, 0.0]))
    # D: mean(-log sigmoid([0, 2])) + mean(-log(1 - sigmoid([-2, 0]))) = log 2 + log(1 + e^-2)
    d = relativistic_discriminator_loss(real, fake)
    assert math.isclose(d.item(), math.log(2) + math.log1p(math.exp(-2)), rel_tol=1e-6)
    # G: roles swapped: log 2 + log(1 + e^2)
    g = relativistic_generator_loss(real, fake)
    assert math.isclose(g.item(), math.log(2) + math.log1p(math.exp(2)), rel_tol=1e-6)


def test_relativistic_losses_symmetric_point_and_shift_invariance() -> None:
    n = 4
    real = torch.full((n, 1), 0.7, requires_grad=True)
    fake = torch.full((n, 1), 0.7, requires_grad=True)
    d = relativistic_discriminator_loss(real, fake)
    assert math.isclose(d.item(), 2 * math.log(2), rel_tol=1e-6)
    assert math.isclose(relativistic_generator_loss(real, fake).item(), 2 * math.log(2), rel_tol=1e-6)
    d.backward()
    # d/d real_i = -(1/2)/n - (1/2)/n = -1/n; d/d fake_j = +1/n; they cancel (shift invariance)
    assert torch.allclose(real.grad, torch.full((n, 1), -1 / n))
    assert torch.allclose(fake.grad, torch.full((n, 1), 1 / n))
    # adding one constant to every logit changes nothing
    r, f = torch.randn(6, 1), torch.randn(6, 1)
    for loss in (relativistic_discriminator_loss, relativistic_generator_loss):
        assert torch.allclose(loss(r + 5.0, f + 5.0), loss(r, f), atol=1e-6)
        rr, ff = r.clone().requires_grad_(), f.clone().requires_grad_()
        loss(rr, ff).backward()
        assert abs(rr.grad.sum().item() + ff.grad.sum().item()) < 1e-6


def test_relativistic_loss_trains_a_discriminator_step() -> None:
    """One SGD step on the discriminator's loss separates real from fake logits (the sign is right)."""
    disc = VGGStyleDiscriminator(num_feat=8)
    real, fake = torch.rand(4, 3, 128, 128), torch.rand(4, 3, 128, 128) * 0.2
    opt = torch.optim.SGD(disc.parameters(), lr=0.05)
    before = relativistic_discriminator_loss(disc(real), disc(fake))
    for _ in range(3):
        opt.zero_grad()
        relativistic_discriminator_loss(disc(real), disc(fake)).backward()
        opt.step()
    after = relativistic_discriminator_loss(disc(real), disc(fake))
    assert after < before
