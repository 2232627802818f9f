"""VESPCN (Caballero et al., "Real-Time Video Super-Resolution with Spatio-Temporal Networks and Motion
Compensation", CVPR 2017): spatial-transformer motion compensation of each neighbour onto the centre frame,
spatio-temporal early fusion of the compensated window, sub-pixel output; and its joint training loss."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.motion.vespcn_mc import VESPCNMotionCompensation


class EarlyFusionBody(nn.Module):
    """ESPCN-style early-fusion net: ``(N, 3*T, H, W) -> (N, 3, s*H, s*W)``.

    ``num_layers`` 3x3 convolutions: Conv(3T -> F) ReLU, ``num_layers - 2`` x [Conv(F -> F) ReLU],
    Conv(F -> 3*s^2), PixelShuffle(s). Early fusion = the frames meet in the first layer as channels (paper
    Sec. 3.1, Fig. 2a). Defaults (9 layers, 24 features, ReLU) are our reading of the paper's motion-
    compensated early-fusion model (Sec. 4.3); they could not be checked against the paper's text here, so
    they are arguments. RGB, 3 frames: 41,028 (x2), 44,283 (x3), 48,840 (x4) parameters.
    """

    def __init__(self, scale: int, num_frame: int = 3, num_feat: int = 24, num_layers: int = 9) -> None:
        super().__init__()
        if num_layers < 2:
            raise ValueError(f"EarlyFusionBody needs at least 2 layers, got {num_layers}")
        layers: list[nn.Module] = [nn.Conv2d(3 * num_frame, num_feat, 3, 1, 1), nn.ReLU(inplace=True)]
        for _ in range(num_layers - 2):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.ReLU(inplace=True)]
        layers += [nn.Conv2d(num_feat, 3 * scale * scale, 3, 1, 1), nn.PixelShuffle(scale)]
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


class VESPCNAux(NamedTuple):
    """What the joint loss needs, returned by ``VESPCN.forward(x, return_aux=True)``."""

    centre: Tensor  # (N, 3, H, W) the centre LR frame
    warped: Tensor  # (N, T-1, 3, H, W) neighbours (in time order, centre left out) warped onto the centre
    flows: Tensor  # (N, T-1, 2, H, W) their flows (pixels, x then y), flow_warp(neighbour, flow) ≈ centre


class VESPCN(nn.Module):
    """Window video SR: ``(N, T, 3, H, W) -> (N, 3, s*H, s*W)`` for the centre frame, T = ``num_frame`` (odd).

    1. Motion compensation: each neighbour ``t != c`` is warped onto the centre frame ``c`` by
       :class:`~models.motion.vespcn_mc.VESPCNMotionCompensation` (coarse x4 + fine x2 spatial transformer;
       one MC net shared by all neighbours, run as one batch of ``N*(T-1)`` pairs; any H, W: it pads to a
       multiple of 4 inside and crops back).
    2. Early fusion: the T frames (compensated neighbours and the centre, in time order) are concatenated
       along channels, ``(N, 3T, H, W)``.
    3. Fusion/upsampling net: by default :class:`EarlyFusionBody` (ESPCN-like, sub-pixel output); with
       ``backbone="NAME"`` any registered single-image model built as
       ``build_model(NAME, scale, num_in_ch=3*T, num_out_ch=3)``.

    Centre skip (``centre_skip``): by the build contract a backbone keeps its own global skip only when
    ``num_in_ch == num_out_ch``, so fed 3T channels it has none; VESPCN adds the bicubic-upscaled centre
    frame to a backbone's output by default so residual designs (VDSR, EDSR, ...) still learn a residual.
    The paper's own body has no skip (default off without a backbone), matching the paper.

    Parameters (RGB, 3 frames, default body): MC 59,392 + body 41,028 / 44,283 / 48,840 = 100,420 (x2),
    103,675 (x3), 108,232 (x4). The paper works on luminance and does not state a total.
    """

    def __init__(self, scale: int = 4, num_frame: int = 3, backbone: str | None = None,
                 num_feat: int = 24, num_layers: int = 9, mc_feat: int = 24, max_flow: float = 16.0,
                 centre_skip: bool | None = None) -> None:
        super().__init__()
        if num_frame < 1 or num_frame % 2 == 0:
            raise ValueError(f"VESPCN needs an odd number of frames (2r+1), got {num_frame}")
        self.scale, self.num_frame, self.backbone_name = scale, num_frame, backbone
        self.mc = VESPCNMotionCompensation(num_ch=3, num_feat=mc_feat, max_flow=max_flow)
        self.fusion: nn.Module
        if backbone is None:
            self.fusion = EarlyFusionBody(scale, num_frame, num_feat, num_layers)
        else:
            from models.registry import build_model, get_spec

            spec = get_spec(backbone)
            if spec.kind != "sisr":
                raise ValueError(f"VESPCN backbone must be a single-image model; {backbone} is {spec.kind}")
            self.fusion = build_model(backbone, scale, num_in_ch=3 * num_frame, num_out_ch=3)
        self.centre_skip = (backbone is not None) if centre_skip is None else centre_skip

    def forward(self, x: Tensor, return_aux: bool = False) -> Tensor | tuple[Tensor, VESPCNAux]:
        if x.dim() != 5 or x.shape[2] != 3 or x.shape[1] != self.num_frame:
            raise ValueError(f"VESPCN expects (N, T={self.num_frame}, 3, H, W) RGB; got {tuple(x.shape)}")
        n, t, c, h, w = x.shape
        mid = t // 2
        centre = x[:, mid]
        others = [i for i in range(t) if i != mid]
        if others:
            neighbours = x[:, others].reshape(n * (t - 1), c, h, w)
            refs = centre.repeat_interleave(t - 1, dim=0)
            comp = self.mc.compensate(refs, neighbours)
            warped = comp.warped.view(n, t - 1, c, h, w)
            flows = comp.flow.view(n, t - 1, 2, h, w)
            frames = torch.cat([warped[:, :mid], centre[:, None], warped[:, mid:]], dim=1)
        else:
            warped, flows, frames = x[:, :0], x.new_zeros(n, 0, 2, h, w), x
        out = self.fusion(frames.reshape(n, t * c, h, w))
        if self.centre_skip:
            out = out + F.interpolate(centre, scale_factor=self.scale, mode="bicubic", align_corners=False)
        if return_aux:
            return out, VESPCNAux(centre, warped, flows)
        return out


def huber_smoothness(flow: Tensor, eps: float = 0.01) -> Tensor:
    """The paper's flow smoothness ``H(∂Δ) = sqrt(eps + Σ_{i=x,y} (∂x Δ_i)² + (∂y Δ_i)²)``, pixel mean.

    ``flow`` is ``(..., 2, H, W)`` (pixels); forward differences, taken on the ``(H-1, W-1)`` pixels where
    both exist. A Charbonnier ("Huber") penalty: quadratic for small gradients, linear for large ones.
    """
    dx = flow[..., :-1, 1:] - flow[..., :-1, :-1]
    dy = flow[..., 1:, :-1] - flow[..., :-1, :-1]
    return torch.sqrt(eps + (dx.square() + dy.square()).sum(dim=-3)).mean()


def vespcn_loss(sr: Tensor, hr: Tensor, aux: VESPCNAux, warp_weight: float = 0.01,
                smooth_weight: float = 0.001, eps: float = 0.01) -> tuple[Tensor, dict[str, Tensor]]:
    """Joint loss (paper Eq. 6): ``MSE(sr, hr) + Σ_neighbours [warp_weight * MSE(warped, centre)
    + smooth_weight * H(∂ flow)]``.

    The paper writes the warp weight as β = 0.01 and the smoothness weight as λ = 0.001 for joint training
    (the MC net alone is pre-trained with weight 1 and λ = 0.01); the sum runs over the T-1 neighbours, each
    term a mean over its pixels. The paper's flows are in normalised coordinates, ours in pixels, so the
    smoothness weight acts on a differently scaled quantity: tune it if the flows come out noisy.
    Returns ``(total, {"reconstruction", "warp", "smoothness"})`` (the last two already summed over
    neighbours, unweighted).
    """
    recon = F.mse_loss(sr, hr)
    k = aux.warped.shape[1]
    if k == 0:
        zero = recon.new_zeros(())
        return recon, {"reconstruction": recon, "warp": zero, "smoothness": zero}
    centre = aux.centre[:, None].expand_as(aux.warped)
    warp = sum(F.mse_loss(aux.warped[:, i], centre[:, i]) for i in range(k))
    smooth = sum(huber_smoothness(aux.flows[:, i], eps) for i in range(k))
    assert isinstance(warp, Tensor) and isinstance(smooth, Tensor)
    total = recon + warp_weight * warp + smooth_weight * smooth
    return total, {"reconstruction": recon, "warp": warp, "smoothness": smooth}


class VESPCNLoss(nn.Module):
    """Thin module around :func:`vespcn_loss`: ``loss(sr, hr, aux) -> (total, terms)``."""

    def __init__(self, warp_weight: float = 0.01, smooth_weight: float = 0.001, eps: float = 0.01) -> None:
        super().__init__()
        self.warp_weight, self.smooth_weight, self.eps = warp_weight, smooth_weight, eps

    def forward(self, sr: Tensor, hr: Tensor, aux: VESPCNAux) -> tuple[Tensor, dict[str, Tensor]]:
        return vespcn_loss(sr, hr, aux, self.warp_weight, self.smooth_weight, self.eps)
