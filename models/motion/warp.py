"""Backward warping with a dense optical flow: the one warping function of the project.

Why ``torch.nn.functional.grid_sample`` directly and not kornia: kornia's ``remap`` is the same
``grid_sample`` call behind a pixel-to-normalised conversion, so it adds no capability here, and the exact
normalisation (``align_corners=True``: divide by ``W-1``/``H-1``) must stay the one BasicSR's pretrained
SPyNet/BasicVSR were trained with. kornia serves as the independent reference in the tests instead
(``kornia.geometry.transform.remap`` gives the same numbers), and ``models/`` keeps to plain PyTorch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def flow_warp(
    x: Tensor,
    flow: Tensor,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = True,
) -> Tensor:
    """Warp ``x`` backwards with ``flow``: ``out(p) = x(p + flow(p))``.

    Args:
        x: ``(N, C, H, W)`` image or feature map.
        flow: ``(N, 2, H, W)`` displacement in pixels; channel 0 is x (horizontal, right positive), channel 1
            is y (down positive).
        mode: ``grid_sample`` interpolation, ``"bilinear"`` or ``"nearest"``.
        padding_mode: value outside ``x``: ``"zeros"``, ``"border"`` or ``"reflection"``.
        align_corners: pixel centres at -1/1 of the normalised grid; ``True`` is what BasicSR's pretrained
            SPyNet and BasicVSR were trained with (normalise by ``W-1``/``H-1``).

    Returns:
        ``(N, C, H, W)``, same dtype and device as ``x``.
    """
    if x.dim() != 4 or flow.dim() != 4:
        raise ValueError(f"flow_warp expects x (N, C, H, W) and flow (N, 2, H, W); got {tuple(x.shape)} "
                         f"and {tuple(flow.shape)}")
    n, _, h, w = x.shape
    if flow.shape != (n, 2, h, w):
        raise ValueError(f"flow must have shape (N, 2, H, W) = {(n, 2, h, w)} to warp x of shape "
                         f"{tuple(x.shape)}; got {tuple(flow.shape)}")
    ys = torch.arange(h, device=x.device, dtype=flow.dtype)
    xs = torch.arange(w, device=x.device, dtype=flow.dtype)
    gx = xs.view(1, 1, w) + flow[:, 0]
    gy = ys.view(1, h, 1) + flow[:, 1]
    if align_corners:
        gx = gx * (2.0 / max(w - 1, 1)) - 1.0
        gy = gy * (2.0 / max(h - 1, 1)) - 1.0
    else:
        gx = (2.0 * gx + 1.0) / w - 1.0
        gy = (2.0 * gy + 1.0) / h - 1.0
    grid = torch.stack((gx, gy), dim=-1).to(x.dtype)
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)


class FlowWarp(nn.Module):
    """Thin module around :func:`flow_warp` with fixed ``mode``/``padding_mode``/``align_corners``."""

    def __init__(self, mode: str = "bilinear", padding_mode: str = "zeros",
                 align_corners: bool = True) -> None:
        super().__init__()
        self.mode, self.padding_mode, self.align_corners = mode, padding_mode, align_corners

    def forward(self, x: Tensor, flow: Tensor) -> Tensor:
        return flow_warp(x, flow, self.mode, self.padding_mode, self.align_corners)


def affine_flow(matrix: Tensor, height: int, width: int) -> Tensor:
    """The exact flow of an affine motion: ``(N, 2, H, W)`` with ``p + flow(p) = A p + b``.

    ``matrix`` is ``(N, 2, 3)`` (or ``(2, 3)``) ``[A | b]`` acting on pixel coordinates ``(x, y)`` (x right,
    y down, origin at the centre of the top-left pixel). ``flow_warp(img, affine_flow(M, H, W))`` samples
    ``img`` at ``A p + b``: e.g. ``A = I, b = (dx, dy)`` moves the content by ``(-dx, -dy)``.
    """
    if matrix.dim() == 2:
        matrix = matrix[None]
    if matrix.shape[1:] != (2, 3):
        raise ValueError(f"affine_flow expects (N, 2, 3) matrices; got {tuple(matrix.shape)}")
    ys, xs = torch.meshgrid(torch.arange(height, dtype=matrix.dtype, device=matrix.device),
                            torch.arange(width, dtype=matrix.dtype, device=matrix.device), indexing="ij")
    pts = torch.stack((xs, ys, torch.ones_like(xs)))  # (3, H, W)
    mapped = torch.einsum("nij,jhw->nihw", matrix, pts)  # (N, 2, H, W)
    return mapped - pts[:2]
