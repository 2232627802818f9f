"""Warm starts: begin training from the best *linear* interpolator instead of noise (ESPCN, FSRCNN).

ESPCN (three convolutions with Tanh, no skip connection) learns the interpolation itself, which from random
weights takes tens of thousands of steps before it even matches bicubic. :func:`fit_linear_interpolator`
fits, by least squares on training patches, the linear map from each LR pixel's 5x5 RGB neighbourhood to its
``3*s*s`` HR sub-pixels (a learned "Wiener" interpolator, better than bicubic), and
:func:`espcn_linear_init` writes it into the network exactly (up to ``tanh``'s curvature at gain ``eps``):

- conv1 channels ``k = (c, ay, ax)``, 27 of the 64: the input colour ``c`` shifted by ``(ay, ax)`` in
  ``{-1, 0, 1}^2``, times ``eps`` (``tanh`` is linear there);
- conv2 channels 0..26: the same 27 maps passed through (centre tap 1);
- conv3: each offset ``d`` in ``{-2..2}^2`` of the 5x5 filter is ``a + b`` with ``a = clip(d, -1, 1)`` (the
  conv1 shift) and ``b = d - a`` (a conv3 tap), so the fitted filter ``F[o, c, d]`` goes to
  ``conv3.weight[o, (c, a), 1 + b] = F / eps``.

The other channels keep their random initialisation (their conv3 weights scaled by ``rest_gain``), so
training starts at the linear interpolator and refines it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

SUPPORT = 5  # LR neighbourhood of the fitted interpolator


@torch.no_grad()
def normal_equations(
    batches: Callable[[int], tuple[Tensor, Tensor]],
    scale: int,
    n_batches: int,
    support: int = SUPPORT,
    features: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """``(X^T X, X^T Y)`` of the least-squares problem: X = each interior pixel's ``support`` x ``support``
    neighbourhood of ``features(lr)`` (default: the LR RGB itself, 76 columns for 5x5) and a 1 (``unfold``
    order c, dy, dx), Y = its pixel-unshuffled HR block (``3*s*s``)."""
    xtx = xty = None
    half = support // 2
    for i in range(n_batches):
        lr, hr = batches(i)
        feat = lr if features is None else features(lr).cpu()
        # interior positions only: a window over the zero padding would bias the fit
        cols = F.unfold(feat, support).transpose(1, 2).flatten(0, 1).double()
        cols = torch.cat([cols, torch.ones(len(cols), 1, dtype=torch.float64)], dim=1)
        tgt = F.pixel_unshuffle(hr.cpu(), scale)[..., half:-half, half:-half].flatten(2)
        tgt = tgt.transpose(1, 2).reshape(-1, 3 * scale * scale).double()
        xtx = cols.T @ cols if xtx is None else xtx + cols.T @ cols
        xty = cols.T @ tgt if xty is None else xty + cols.T @ tgt
    assert xtx is not None and xty is not None, "n_batches must be >= 1"
    return xtx, xty


def _solve(xtx: Tensor, xty: Tensor, ridge: float) -> Tensor:
    """Ridge-regularised normal equations; the last column (the bias) is not penalised."""
    reg = torch.eye(len(xtx), dtype=xtx.dtype) * ridge * xtx.diagonal()[:-1].mean()
    reg[-1, -1] = 0.0
    return torch.linalg.solve(xtx + reg, xty)


@torch.no_grad()
def fit_linear_interpolator(batches: Callable[[int], tuple[Tensor, Tensor]], scale: int, n_batches: int,
                            ridge: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Least-squares filters ``(3*s*s, 3, 5, 5)`` and bias ``(3*s*s,)``: LR 5x5 RGB neighbourhood -> the
    pixel-unshuffled HR block (PixelShuffle's channel order), fitted on ``n_batches`` batches (interior
    pixels)."""
    sol = _solve(*normal_equations(batches, scale, n_batches), ridge)
    weight = sol[:-1].T.reshape(3 * scale * scale, 3, SUPPORT, SUPPORT).float()
    return weight, sol[-1].float()


def _deconv_taps(scale: int, kernel: int, pad: int) -> list[tuple[int, int]]:
    """For each tap ``k`` of a stride-``scale`` transposed convolution: (HR phase, LR offset) it links:
    LR pixel ``y + d`` reaches HR pixel ``scale*y + phase``."""
    return [((k - pad) % scale, -((k - pad) // scale)) for k in range(kernel)]


@torch.no_grad()
def fit_deconv_interpolator(batches: Callable[[int], tuple[Tensor, Tensor]], scale: int, n_batches: int,
                            kernel: int, pad: int, ridge: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Least-squares weights ``(3, 3, kernel, kernel)`` (ConvTranspose2d layout: in, out, ky, kx) and bias
    of a stride-``scale`` transposed convolution from RGB to RGB: each HR phase is fitted on exactly the
    LR offsets the kernel reaches."""
    xtx, xty = normal_equations(batches, scale, n_batches)
    taps = _deconv_taps(scale, kernel, pad)
    half = SUPPORT // 2
    weight = torch.zeros(3, 3, kernel, kernel)
    bias = torch.zeros(3)
    for co in range(3):
        for iy in range(scale):
            for ix in range(scale):
                o = co * scale * scale + iy * scale + ix
                kys = [k for k, (ph, _) in enumerate(taps) if ph == iy]
                kxs = [k for k, (ph, _) in enumerate(taps) if ph == ix]
                feats = [(ci, ky, kx) for ci in range(3) for ky in kys for kx in kxs]
                idx = [ci * SUPPORT * SUPPORT + (taps[ky][1] + half) * SUPPORT + (taps[kx][1] + half)
                       for ci, ky, kx in feats] + [len(xtx) - 1]
                sel = torch.tensor(idx)
                sol = _solve(xtx[sel][:, sel], xty[sel, o : o + 1], ridge)[:, 0]
                for j, (ci, ky, kx) in enumerate(feats):
                    weight[ci, co, ky, kx] = float(sol[j])
                bias[co] += float(sol[-1]) / (scale * scale)
    return weight, bias


@torch.no_grad()
def fsrcnn_linear_init(model: nn.Module, weight: Tensor, bias: Tensor) -> None:
    """FSRCNN (``models.sisr.fsrcnn.FSRCNN``) as the fitted transposed-convolution interpolator: channels
    0..2 of every body layer carry the (non-negative, hence untouched by PReLU) input colours unchanged, the
    deconvolution maps them with ``weight``; the other channels keep their initialisation."""
    convs = [m for m in model.body if isinstance(m, nn.Conv2d)]  # type: ignore[attr-defined]
    for conv in convs:
        k = conv.kernel_size[0]
        conv.weight[:3] = 0.0
        conv.bias[:3] = 0.0
        for c in range(3):
            conv.weight[c, c, k // 2, k // 2] = 1.0
    model.deconv.weight[:3] = weight  # type: ignore[union-attr,index]
    model.deconv.bias.copy_(bias)  # type: ignore[union-attr]


@torch.no_grad()
def espcn_linear_init(model: nn.Module, weight: Tensor, bias: Tensor, eps: float = 0.05,
                      rest_gain: float = 0.01) -> None:
    """Write the fitted interpolator into an ESPCN (``models.sisr.espcn.ESPCN``; see the module doc)."""
    conv1, conv2, conv3 = model.body[0], model.body[2], model.body[4]  # type: ignore[index]
    n = 27
    if conv1.out_channels < n or conv2.out_channels < n or conv1.kernel_size != (5, 5):
        raise ValueError("espcn_linear_init needs ESPCN's 5x5 -> 64 -> 32 -> 3x3 layout")
    for conv in (conv1, conv2):
        conv.weight[:n] = 0.0
        conv.bias[:n] = 0.0
    for c in range(3):
        for ay in (-1, 0, 1):
            for ax in (-1, 0, 1):
                k = c * 9 + (ay + 1) * 3 + (ax + 1)
                conv1.weight[k, c, 2 + ay, 2 + ax] = eps
                conv2.weight[k, k, 1, 1] = 1.0
    conv3.weight.mul_(rest_gain)
    conv3.weight[:, :n] = 0.0
    half = SUPPORT // 2
    for c in range(3):
        for dy in range(-half, half + 1):
            for dx in range(-half, half + 1):
                ay, ax = max(-1, min(1, dy)), max(-1, min(1, dx))
                k = c * 9 + (ay + 1) * 3 + (ax + 1)
                conv3.weight[:, k, 1 + dy - ay, 1 + dx - ax] = weight[:, c, half + dy, half + dx] / eps
    conv3.bias.copy_(bias)


@torch.no_grad()
def refit_espcn_output(model: nn.Module, batches: Callable[[int], tuple[Tensor, Tensor]], n_batches: int,
                       ridge: float = 1e-5) -> None:
    """Keep an ESPCN's two feature layers (e.g. copied from a model trained at another scale) and set its
    output convolution (``32 -> 3*s*s``, 3x3) to the least-squares fit of the pixel-unshuffled HR blocks
    from those features' 3x3 neighbourhoods (interior positions, bias unpenalised): the new scale starts
    from the old scale's learned features instead of noise."""
    features = model.body[:4]  # type: ignore[index]
    conv3 = model.body[4]  # type: ignore[index]
    device = conv3.weight.device
    xtx, xty = normal_equations(batches, int(model.scale), n_batches,  # type: ignore[arg-type]
                                support=conv3.kernel_size[0], features=lambda lr: features(lr.to(device)))
    sol = _solve(xtx, xty, ridge)
    conv3.weight.copy_(sol[:-1].T.reshape(conv3.weight.shape).to(conv3.weight))
    conv3.bias.copy_(sol[-1].to(conv3.bias))
