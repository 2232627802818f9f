"""Modulated deformable convolution, DCNv2 (Zhu et al., "Deformable ConvNets v2: More Deformable, Better
Results", CVPR 2019): plain function ``modulated_deform_conv2d`` + thin modules.

Tensor layout (identical to ``torchvision.ops.deform_conv2d`` and to mmcv / BasicSR's DCN)::

    x       (N, C_in, H, W)
    offset  (N, 2*G*K, H_out, W_out)   K = kh*kw taps, k = i*kw + j (row-major), G deformable groups;
                                       channel 2*(g*K + k) is dy (down positive), 2*(g*K + k) + 1 is dx
                                       (right positive): (dy, dx) interleaved per group and tap
    mask    (N, G*K, H_out, W_out)     channel g*K + k (DCNv2 modulation, usually a sigmoid); None = all 1
    weight  (C_out, C_in/groups, kh, kw), bias (C_out,) or None
    output  (N, C_out, H_out, W_out),  H_out = (H + 2*ph - dh*(kh-1) - 1) // sh + 1 (same for W)

Input channel ``c`` belongs to deformable group ``c // (C_in/G)``. Output pixel ``(oy, ox)``, tap ``(i, j)``
samples its group's channels at ``y = oy*sh - ph + i*dh + dy``, ``x = ox*sw - pw + j*dw + dx`` with bilinear
interpolation, where pixels outside the image count as zero (so a sample at ``y <= -1`` or ``y >= H`` is 0),
multiplies by the mask and contracts with the weight like a convolution.

Backends: ``torchvision.ops.deform_conv2d`` when torchvision imports (any exception while importing it, e.g.
a CUDA-linked wheel on a CPU machine raising RuntimeError, falls back, logged at debug level), else the
pure-PyTorch implementation: one ``grid_sample`` gathers all k*k taps of every deformable group, the mask
multiplies them, and one batched matmul with the weight finishes. Its sampled-column buffer holds
``N*C_in*K*H_out*W_out`` values; larger outputs are processed in bands of output rows so the buffer stays
under ``max_cols_bytes`` (256 MiB by default). The pure path is differentiable (autograd) in all inputs.
It samples in at least float32 (bf16/fp16 inputs are promoted for the sampling, the result is cast back);
grid_sample's normalised coordinates cost a float32 rounding of about 1e-7 x the image size in pixels.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

logger = logging.getLogger(__name__)

Backend = Literal["auto", "torchvision", "pure"]
IntPair = int | tuple[int, int]

DEFAULT_MAX_COLS_BYTES = 256 * 2**20

_UNSET = object()
_tv_deform_conv2d: object = _UNSET  # cached: the torchvision function, or None when torchvision is unusable


def torchvision_deform_conv2d() -> Callable[..., Tensor] | None:
    """``torchvision.ops.deform_conv2d`` if torchvision can be imported here, else None (cached)."""
    global _tv_deform_conv2d
    if _tv_deform_conv2d is _UNSET:
        try:
            from torchvision.ops import deform_conv2d

            _tv_deform_conv2d = deform_conv2d
        except Exception as exc:  # ImportError, or RuntimeError from a wheel built for another torch/CUDA
            logger.debug("torchvision unusable, deformable convolution uses the pure-PyTorch path: %s", exc)
            _tv_deform_conv2d = None
    return _tv_deform_conv2d  # type: ignore[return-value]


def _out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _check(x: Tensor, offset: Tensor, mask: Tensor | None, weight: Tensor, stride: tuple[int, int],
           padding: tuple[int, int], dilation: tuple[int, int], deformable_groups: int | None) -> int:
    """Validate shapes; return the number of deformable groups."""
    if x.dim() != 4 or weight.dim() != 4:
        raise ValueError(f"expected x (N, C, H, W) and weight (C_out, C_in/groups, kh, kw); got "
                         f"{tuple(x.shape)} and {tuple(weight.shape)}")
    n, c, h, w = x.shape
    cout, cin_g, kh, kw = weight.shape
    if c % cin_g or cout % (c // cin_g):
        raise ValueError(f"weight {tuple(weight.shape)} does not fit {c} input channels")
    hout = _out_size(h, kh, stride[0], padding[0], dilation[0])
    wout = _out_size(w, kw, stride[1], padding[1], dilation[1])
    if hout < 1 or wout < 1:
        raise ValueError(f"input {h}x{w} is too small for a {kh}x{kw} kernel with padding {padding}, "
                         f"dilation {dilation}")
    taps = kh * kw
    if offset.dim() != 4 or offset.shape[1] % (2 * taps):
        raise ValueError(f"offset must be (N, 2*G*{taps}, H_out, W_out); got {tuple(offset.shape)}")
    groups = offset.shape[1] // (2 * taps)
    if deformable_groups is not None and deformable_groups != groups:
        raise ValueError(f"offset has {offset.shape[1]} channels = 2*{groups}*{taps}, not "
                         f"deformable_groups={deformable_groups}")
    if c % groups:
        raise ValueError(f"{c} input channels do not split into {groups} deformable groups")
    if tuple(offset.shape) != (n, 2 * groups * taps, hout, wout):
        raise ValueError(f"offset must be {(n, 2 * groups * taps, hout, wout)}; got {tuple(offset.shape)}")
    if mask is not None and tuple(mask.shape) != (n, groups * taps, hout, wout):
        raise ValueError(f"mask must be {(n, groups * taps, hout, wout)}; got {tuple(mask.shape)}")
    return groups


def _pure_band(x: Tensor, offset: Tensor, mask: Tensor | None, weight: Tensor, row0: int,
               stride: tuple[int, int], padding: tuple[int, int], dilation: tuple[int, int],
               groups: int) -> Tensor:
    """Output rows ``row0 .. row0 + offset.shape[2]`` without bias: (N, C_out, rows, W_out)."""
    n, c, h, w = x.shape
    cout, cin_g, kh, kw = weight.shape
    taps = kh * kw
    rows, wout = offset.shape[2:]
    cg = c // groups
    # Undeformed tap positions, normalised for grid_sample(align_corners=False), which maps u to pixel
    # ((u + 1) * size - 1) / 2: u = (2 * p + 1) / size - 1. Built in float64 (small), used as (K, rows, 1)
    # and (K, 1, W_out) with k = i*kw + j.
    dev, f64 = x.device, torch.float64
    py = ((torch.arange(rows, device=dev, dtype=f64) + row0) * stride[0] - padding[0])[None, :] \
        + (torch.arange(kh, device=dev, dtype=f64) * dilation[0])[:, None]  # (kh, rows)
    px = (torch.arange(wout, device=dev, dtype=f64) * stride[1] - padding[1])[None, :] \
        + (torch.arange(kw, device=dev, dtype=f64) * dilation[1])[:, None]  # (kw, W_out)
    uy = ((2 * py + 1) / h - 1)[:, None, :, None].expand(kh, kw, rows, 1).reshape(taps, rows, 1).to(x.dtype)
    ux = ((2 * px + 1) / w - 1)[None, :, None, :].expand(kh, kw, 1, wout).reshape(taps, 1, wout).to(x.dtype)
    off = offset.reshape(n, groups, taps, 2, rows, wout).to(x.dtype)  # x: float32 or float64 here
    if torch.is_grad_enabled() and offset.requires_grad:
        grid = torch.stack((ux + off[:, :, :, 1] * (2.0 / w), uy + off[:, :, :, 0] * (2.0 / h)), dim=-1)
    else:  # one pass per coordinate, written straight into the interleaved grid
        grid = torch.empty(n, groups, taps, rows, wout, 2, device=dev, dtype=x.dtype)
        torch.add(ux, off[:, :, :, 1], alpha=2.0 / w, out=grid[..., 0])
        torch.add(uy, off[:, :, :, 0], alpha=2.0 / h, out=grid[..., 1])
    grid = grid.view(n * groups, taps * rows, wout, 2)
    cols = F.grid_sample(x.reshape(n * groups, cg, h, w), grid, mode="bilinear",
                         padding_mode="zeros", align_corners=False)  # (N*G, cg, K*rows, W_out)
    cols = cols.view(n, groups, cg, taps, rows * wout)
    if mask is not None:
        m = mask.reshape(n, groups, 1, taps, rows * wout).to(cols.dtype)
        grad = torch.is_grad_enabled() and (cols.requires_grad or m.requires_grad)
        cols = cols * m if grad else cols.mul_(m)
    conv_groups = c // cin_g
    cols = cols.view(n, conv_groups, cin_g * taps, rows * wout)
    out = torch.matmul(weight.reshape(conv_groups, cout // conv_groups, cin_g * taps).to(cols.dtype), cols)
    return out.view(n, cout, rows, wout)


def modulated_deform_conv2d(
    x: Tensor,
    offset: Tensor,
    mask: Tensor | None,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    deformable_groups: int | None = None,
    backend: Backend = "auto",
    max_cols_bytes: int = DEFAULT_MAX_COLS_BYTES,
) -> Tensor:
    """Modulated deformable convolution (DCNv2); the layout is in the module docstring.

    ``deformable_groups`` is checked against ``offset`` (None: taken from it). ``backend``: "auto"
    (torchvision when importable, else pure), "torchvision" (error if unusable) or "pure".
    ``max_cols_bytes`` bounds the pure path's column buffer (processing bands of output rows).
    """
    stride, padding, dilation = _pair(stride), _pair(padding), _pair(dilation)
    groups = _check(x, offset, mask, weight, stride, padding, dilation, deformable_groups)
    if backend not in ("auto", "torchvision", "pure"):
        raise ValueError(f"backend must be auto, torchvision or pure, not {backend!r}")
    if backend != "pure":
        tv = torchvision_deform_conv2d()
        if tv is not None:
            return tv(x, offset, weight, bias, stride=stride, padding=padding, dilation=dilation, mask=mask)
        if backend == "torchvision":
            raise RuntimeError("backend='torchvision' requested but torchvision cannot be imported here")

    # Sample in at least float32: bf16/fp16 pixel coordinates would be off by up to 1/256 of their value.
    out_dtype = x.dtype
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    n, c = x.shape[:2]
    taps = weight.shape[2] * weight.shape[3]
    hout, wout = offset.shape[2:]
    row_bytes = n * c * taps * wout * x.element_size()
    band = max(1, min(hout, max_cols_bytes // max(row_bytes, 1)))
    parts = [
        _pure_band(x, offset[:, :, r : r + band], None if mask is None else mask[:, :, r : r + band], weight,
                   r, stride, padding, dilation, groups)
        for r in range(0, hout, band)
    ]
    out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)
    if bias is not None:
        out = out + bias.view(1, -1, 1, 1)
    return out if torch.is_autocast_enabled(out.device.type) else out.to(out_dtype)


class ModulatedDeformConv2d(nn.Module):
    """DCNv2 layer with explicit offsets and mask: ``forward(x, offset, mask)``; parameters ``weight``
    (C_out, C_in/groups, k, k) and ``bias`` (C_out,), initialised as in mmcv/BasicSR (uniform weight with
    bound 1/sqrt(C_in*k*k), zero bias)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: IntPair = 0, dilation: IntPair = 1, groups: int = 1, deformable_groups: int = 1,
                 bias: bool = True, backend: Backend = "auto") -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups or in_channels % deformable_groups:
            raise ValueError(f"channels {in_channels} -> {out_channels} do not split into {groups} groups "
                             f"and {deformable_groups} deformable groups")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride, self.padding, self.dilation = _pair(stride), _pair(padding), _pair(dilation)
        self.groups, self.deformable_groups, self.backend = groups, deformable_groups, backend
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.in_channels * self.kernel_size[0] * self.kernel_size[1])
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: Tensor, offset: Tensor, mask: Tensor | None) -> Tensor:
        return modulated_deform_conv2d(x, offset, mask, self.weight, self.bias, self.stride, self.padding,
                                       self.dilation, self.deformable_groups, self.backend)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}, deformable_groups={self.deformable_groups}")


class DCNv2Pack(ModulatedDeformConv2d):
    """DCNv2 whose offsets and mask come from *other* features, as in EDVR's PCD alignment (BasicSR's
    ``DCNv2Pack``): ``forward(x, feat)``.

    ``conv_offset`` (Conv2d ``offset_channels -> 3*G*k*k``, zero-initialised so offsets start at 0 and the
    mask at 0.5) gives ``o1, o2, m`` (three equal channel chunks); ``offset = cat(o1, o2)`` in the layout of
    the module docstring and ``mask = sigmoid(m)``. State-dict keys: ``weight``, ``bias``,
    ``conv_offset.weight``, ``conv_offset.bias``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: IntPair, stride: IntPair = 1,
                 padding: IntPair = 0, dilation: IntPair = 1, groups: int = 1, deformable_groups: int = 1,
                 bias: bool = True, offset_channels: int | None = None, backend: Backend = "auto") -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         deformable_groups, bias, backend)
        kh, kw = self.kernel_size
        self.conv_offset = nn.Conv2d(offset_channels or in_channels, 3 * deformable_groups * kh * kw,
                                     self.kernel_size, self.stride, self.padding, self.dilation, bias=True)
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: Tensor, feat: Tensor) -> Tensor:  # type: ignore[override]
        out = self.conv_offset(feat)
        n_off = 2 * out.shape[1] // 3
        offset, mask = out[:, :n_off], torch.sigmoid(out[:, n_off:])
        return modulated_deform_conv2d(x, offset, mask, self.weight, self.bias, self.stride, self.padding,
                                       self.dilation, self.deformable_groups, self.backend)
