"""Modulated deformable convolution (DCNv2): the pure-PyTorch path against F.conv2d, shifted convolutions,
an independent loop-and-bilinear reference, finite-difference gradients, and torchvision where it imports."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.ops.deform_conv import (
    DCNv2Pack,
    ModulatedDeformConv2d,
    modulated_deform_conv2d,
    torchvision_deform_conv2d,
)


def _out(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def naive_dcn(x: torch.Tensor, offset: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
              bias: torch.Tensor, stride: tuple[int, int], padding: tuple[int, int],
              dilation: tuple[int, int]) -> np.ndarray:
    """Reference written from the DCNv2 definition: loops over output pixels, taps and channels, explicit
    bilinear interpolation with zeros outside the image, float64."""
    xs, off, msk, wt, b = (t.detach().double().numpy() for t in (x, offset, mask, weight, bias))
    n, c, h, w = xs.shape
    cout, cin_g, kh, kw = wt.shape
    conv_groups = c // cin_g
    taps = kh * kw
    dgroups = off.shape[1] // (2 * taps)
    hout = _out(h, kh, stride[0], padding[0], dilation[0])
    wout = _out(w, kw, stride[1], padding[1], dilation[1])

    def bilinear(img: np.ndarray, y: float, xx: float) -> float:
        if y <= -1 or y >= h or xx <= -1 or xx >= w:
            return 0.0
        y0, x0 = math.floor(y), math.floor(xx)
        ly, lx = y - y0, xx - x0
        v = 0.0
        for yy, wy in ((y0, 1 - ly), (y0 + 1, ly)):
            for xc, wx in ((x0, 1 - lx), (x0 + 1, lx)):
                if 0 <= yy < h and 0 <= xc < w:
                    v += wy * wx * img[yy, xc]
        return v

    out = np.zeros((n, cout, hout, wout))
    out += b[None, :, None, None]
    per_group = cout // conv_groups
    for bi in range(n):
        for oy in range(hout):
            for ox in range(wout):
                for ci in range(c):
                    g = ci // (c // dgroups)
                    cg = ci // cin_g
                    for i in range(kh):
                        for j in range(kw):
                            k = i * kw + j
                            dy = off[bi, 2 * (g * taps + k), oy, ox]
                            dx = off[bi, 2 * (g * taps + k) + 1, oy, ox]
                            y = oy * stride[0] - padding[0] + i * dilation[0] + dy
                            xx = ox * stride[1] - padding[1] + j * dilation[1] + dx
                            val = bilinear(xs[bi, ci], y, xx) * msk[bi, g * taps + k, oy, ox]
                            outs = slice(cg * per_group, (cg + 1) * per_group)
                            out[bi, outs, oy, ox] += wt[outs, ci % cin_g, i, j] * val
    return out


def _random_case(seed: int, c: int, cout: int, h: int, w: int, k: tuple[int, int], stride: tuple[int, int],
                 padding: tuple[int, int], dilation: tuple[int, int], dgroups: int, groups: int = 1,
                 n: int = 1, spread: float = 2.5,
                 dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    hout, wout = (_out(h, k[0], stride[0], padding[0], dilation[0]),
                  _out(w, k[1], stride[1], padding[1], dilation[1]))
    taps = k[0] * k[1]
    x = torch.randn(n, c, h, w, generator=g, dtype=dtype)
    offset = (torch.rand(n, 2 * dgroups * taps, hout, wout, generator=g, dtype=dtype) * 2 - 1) * spread
    mask = torch.rand(n, dgroups * taps, hout, wout, generator=g, dtype=dtype)
    # unit-variance outputs, as with trained weights (an absolute tolerance means little on large outputs)
    weight = torch.randn(cout, c // groups, *k, generator=g, dtype=dtype) / math.sqrt(c // groups * taps)
    bias = torch.randn(cout, generator=g, dtype=dtype)
    return x, offset, mask, weight, bias


# ---------------------------------------------------------------- pure path, exact properties


def _shifted(x: torch.Tensor, dy: int, dx: int, halo: int = 1) -> torch.Tensor:
    """``x(y + dy, x + dx)`` (zero outside ``x``) for ``y`` in ``[-halo, H + halo)``, same for ``x``: the
    input a padding-free convolution needs to equal a padded one over the shifted image."""
    h, w = x.shape[-2:]
    m = halo + max(abs(dy), abs(dx))
    big = F.pad(x, (m, m, m, m))
    return big[..., m + dy - halo : m + dy + h + halo, m + dx - halo : m + dx + w + halo]


@pytest.mark.parametrize(("stride", "padding", "dilation", "dgroups"),
                         [(1, 1, 1, 1), (1, 1, 1, 4), (2, 1, 1, 2), (1, 2, 2, 8), (2, 0, 1, 1)])
def test_zero_offsets_unit_mask_equal_conv2d(stride: int, padding: int, dilation: int, dgroups: int) -> None:
    x, offset, mask, weight, bias = _random_case(0, 16, 12, 17, 21, (3, 3), (stride,) * 2, (padding,) * 2,
                                                 (dilation,) * 2, dgroups, n=2)
    offset.zero_()
    mask.fill_(1.0)
    got = modulated_deform_conv2d(x, offset, mask, weight, bias, stride, padding, dilation, dgroups,
                                  backend="pure")
    want = F.conv2d(x, weight, bias, stride, padding, dilation)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    # the mask scales each tap: a constant 0.25 quarters the convolution (bias aside)
    got = modulated_deform_conv2d(x, offset, mask * 0.25, weight, None, stride, padding, dilation,
                                  backend="pure")
    torch.testing.assert_close(got, 0.25 * F.conv2d(x, weight, None, stride, padding, dilation),
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize(("dy", "dx"), [(1, 0), (0, -2), (-3, 2), (2, 5)])
def test_integer_offsets_equal_shifted_conv(dy: int, dx: int) -> None:
    """The same offset (dy, dx) at every tap samples the image shifted by it: conv of x(y + dy, x + dx)."""
    x, offset, mask, weight, bias = _random_case(1, 8, 6, 15, 19, (3, 3), (1, 1), (1, 1), (1, 1), 2, n=2)
    offset = offset.view(2, 2 * 9, 2, 15, 19)
    offset[:, :, 0], offset[:, :, 1] = float(dy), float(dx)
    offset = offset.view(2, 2 * 2 * 9, 15, 19)
    mask.fill_(1.0)
    got = modulated_deform_conv2d(x, offset, mask, weight, bias, 1, 1, 1, backend="pure")
    torch.testing.assert_close(got, F.conv2d(_shifted(x, dy, dx), weight, bias), atol=1e-5, rtol=0)


def test_per_group_offsets_move_only_their_channels() -> None:
    """Group 1 shifted right by one pixel, group 0 not: each channel group follows its own offsets."""
    x, offset, mask, weight, bias = _random_case(2, 4, 3, 9, 11, (3, 3), (1, 1), (1, 1), (1, 1), 2)
    offset.zero_()
    offset.view(1, 2, 9, 2, 9, 11)[:, 1, :, 1] = 1.0  # group 1, every tap, dx = +1
    mask.fill_(1.0)
    got = modulated_deform_conv2d(x, offset, mask, weight, bias, 1, 1, 1, backend="pure")
    moved = torch.cat((_shifted(x[:, :2], 0, 0), _shifted(x[:, 2:], 0, 1)), dim=1)
    torch.testing.assert_close(got, F.conv2d(moved, weight, bias), atol=1e-5, rtol=0)


# ---------------------------------------------------------------- pure path vs the naive reference


@pytest.mark.parametrize(
    ("c", "cout", "hw", "k", "stride", "padding", "dilation", "dgroups", "groups"),
    [
        (4, 3, (5, 6), (3, 3), (1, 1), (1, 1), (1, 1), 1, 1),
        (8, 4, (6, 5), (3, 3), (1, 1), (1, 1), (1, 1), 4, 1),
        (4, 4, (7, 8), (3, 3), (2, 2), (1, 1), (1, 1), 2, 1),
        (6, 2, (7, 7), (3, 3), (1, 1), (2, 2), (2, 2), 3, 1),
        (4, 6, (6, 7), (2, 3), (2, 1), (0, 1), (1, 2), 2, 2),
        (2, 2, (4, 5), (1, 1), (1, 1), (0, 0), (1, 1), 2, 1),
    ],
)
def test_pure_matches_naive_reference(c: int, cout: int, hw: tuple[int, int], k: tuple[int, int],
                                      stride: tuple[int, int], padding: tuple[int, int],
                                      dilation: tuple[int, int], dgroups: int, groups: int) -> None:
    x, offset, mask, weight, bias = _random_case(3, c, cout, *hw, k, stride, padding, dilation, dgroups,
                                                 groups, n=2)
    got = modulated_deform_conv2d(x, offset, mask, weight, bias, stride, padding, dilation, dgroups,
                                  backend="pure")
    want = naive_dcn(x, offset, mask, weight, bias, stride, padding, dilation)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.double().numpy(), want, atol=1e-5, rtol=0)


def test_samples_straddling_the_border() -> None:
    """Offsets that put samples in (-1, 0), on -1, at W - 0.5 and beyond: only in-image corners count."""
    x, offset, mask, weight, bias = _random_case(4, 2, 2, 4, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1)
    values = torch.tensor([-0.5, -1.0, -1.25, 3.5, 4.0, 0.75, -4.5, 1.5, -0.999])
    offset = values[torch.randperm(offset.numel(), generator=torch.Generator().manual_seed(0)) % 9]
    offset = offset.view(1, 18, 4, 4)
    got = modulated_deform_conv2d(x, offset, mask, weight, bias, 1, 1, 1, backend="pure")
    want = naive_dcn(x, offset, mask, weight, bias, (1, 1), (1, 1), (1, 1))
    np.testing.assert_allclose(got.double().numpy(), want, atol=1e-5, rtol=0)


def test_row_bands_give_the_same_result() -> None:
    """A tiny column budget forces one output row per band (stride 2 checks the band's row origin)."""
    x, offset, mask, weight, bias = _random_case(5, 8, 5, 13, 10, (3, 3), (2, 2), (1, 1), (1, 1), 2, n=2)
    whole = modulated_deform_conv2d(x, offset, mask, weight, bias, 2, 1, 1, backend="pure")
    bands = modulated_deform_conv2d(x, offset, mask, weight, bias, 2, 1, 1, backend="pure", max_cols_bytes=1)
    torch.testing.assert_close(bands, whole, atol=1e-6, rtol=0)


def test_pure_gradients_match_finite_differences() -> None:
    x, offset, mask, weight, bias = _random_case(6, 4, 3, 4, 5, (3, 3), (1, 1), (1, 1), (1, 1), 2,
                                                 dtype=torch.float64)
    # keep samples away from integer positions, where bilinear interpolation is not differentiable
    offset = torch.floor(offset) + 0.2 + 0.6 * torch.rand_like(offset)
    inputs = tuple(t.requires_grad_() for t in (x, offset, mask, weight, bias))

    def f(*args: torch.Tensor) -> torch.Tensor:
        return modulated_deform_conv2d(*args[:3], args[3], args[4], 1, 1, 1, backend="pure")

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, fast_mode=True)


def test_bfloat16_inputs_sample_at_float32_positions() -> None:
    """bf16 offsets and features (e.g. under autocast) must not become bf16 pixel coordinates, which are off
    by up to 1/256 of their value; the result matches float32 on the same bf16-rounded inputs."""
    x, offset, mask, weight, bias = _random_case(10, 16, 8, 40, 40, (3, 3), (1, 1), (1, 1), (1, 1), 2)
    offset = offset + 20.3  # samples far from the origin, where bf16 steps are 0.125 px
    args16 = [t.bfloat16() for t in (x, offset, mask, weight, bias)]
    got = modulated_deform_conv2d(*args16, 1, 1, 1, backend="pure")
    want = modulated_deform_conv2d(*(t.float() for t in args16), 1, 1, 1, backend="pure")
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want, atol=2e-2, rtol=1e-2)


def test_shape_errors_are_clear() -> None:
    x, offset, mask, weight, bias = _random_case(7, 4, 3, 6, 6, (3, 3), (1, 1), (1, 1), (1, 1), 2)
    with pytest.raises(ValueError, match="deformable_groups=4"):
        modulated_deform_conv2d(x, offset, mask, weight, bias, 1, 1, 1, deformable_groups=4, backend="pure")
    with pytest.raises(ValueError, match="mask must be"):
        modulated_deform_conv2d(x, offset, mask[:, :9], weight, bias, 1, 1, 1, backend="pure")
    with pytest.raises(ValueError, match="offset must be"):
        modulated_deform_conv2d(x, offset[..., :5], mask, weight, bias, 1, 1, 1, backend="pure")


# ---------------------------------------------------------------- modules


def test_dcnv2pack_layout_and_keys() -> None:
    """conv_offset's three chunks are (offset, offset, mask logits); zero init means plain conv * 0.5."""
    torch.manual_seed(0)
    dcn = DCNv2Pack(8, 6, 3, padding=1, deformable_groups=2, backend="pure")
    assert set(dcn.state_dict()) == {"weight", "bias", "conv_offset.weight", "conv_offset.bias"}
    assert dcn.conv_offset.out_channels == 3 * 2 * 9
    with torch.no_grad():
        dcn.bias.normal_()
    x, feat = torch.randn(2, 8, 7, 9), torch.randn(2, 8, 7, 9)
    want = 0.5 * F.conv2d(x, dcn.weight, None, 1, 1) + dcn.bias.view(1, -1, 1, 1)
    torch.testing.assert_close(dcn(x, feat), want, atol=1e-5, rtol=0)
    # bias-only conv_offset: every tap of every group shifted by (dy, dx) = (-1, 2), mask = sigmoid(30) ~ 1
    with torch.no_grad():
        b = dcn.conv_offset.bias.view(3, 2 * 9)  # chunks o1 | o2 | mask; o1, o2 = offset channels 0..35
        off = torch.tensor([-1.0, 2.0]).repeat(18)
        b[0], b[1], b[2] = off[:18], off[18:], 30.0
    want = F.conv2d(_shifted(x, -1, 2), dcn.weight, dcn.bias)
    torch.testing.assert_close(dcn(x, feat), want, atol=1e-5, rtol=0)


def test_modulated_deform_conv_module_matches_function() -> None:
    layer = ModulatedDeformConv2d(4, 5, 3, stride=2, padding=1, deformable_groups=2, backend="pure")
    x, offset, mask, *_ = _random_case(8, 4, 5, 9, 8, (3, 3), (2, 2), (1, 1), (1, 1), 2)
    want = modulated_deform_conv2d(x, offset, mask, layer.weight, layer.bias, 2, 1, 1, 2, backend="pure")
    torch.testing.assert_close(layer(x, offset, mask), want)


# ---------------------------------------------------------------- torchvision backend (where it imports)


@pytest.mark.parametrize(("stride", "padding", "dilation", "dgroups"),
                         [(1, 1, 1, 1), (1, 1, 1, 8), (2, 1, 1, 4), (1, 2, 2, 2)])
def test_torchvision_and_pure_agree(stride: int, padding: int, dilation: int, dgroups: int) -> None:
    if torchvision_deform_conv2d() is None:
        pytest.skip("torchvision cannot be imported here (missing, or a wheel built for another torch/CUDA); "
                    "only the pure-PyTorch deformable convolution can run")
    x, offset, mask, weight, bias = _random_case(9, 16, 8, 14, 18, (3, 3), (stride,) * 2, (padding,) * 2,
                                                 (dilation,) * 2, dgroups, n=2)
    tv = modulated_deform_conv2d(x, offset, mask, weight, bias, stride, padding, dilation, dgroups,
                                 backend="torchvision")
    pure = modulated_deform_conv2d(x, offset, mask, weight, bias, stride, padding, dilation, dgroups,
                                   backend="pure")
    torch.testing.assert_close(pure, tv, atol=1e-5, rtol=0)
