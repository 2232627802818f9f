"""ESPCN (Shi et al., "Real-Time Single Image and Video Super-Resolution Using an Efficient Sub-Pixel
Convolutional Neural Network", CVPR 2016)."""

from __future__ import annotations

from torch import Tensor, nn


class ESPCN(nn.Module):
    """Conv(3->64, 5x5), Tanh, Conv(64->32, 3x3), Tanh, Conv(32->3*s^2, 3x3), PixelShuffle(s).

    ``(N, 3, H, W) -> (N, 3, s*H, s*W)``, RGB in ``[0, 1]``, scales 2, 3, 4. The paper's model works on the
    luminance channel only (1 in, s^2 out: 22,729 parameters at x3, 24,752 at x4); this RGB variant has
    26,796 (x2), 31,131 (x3) and 37,200 (x4) parameters.
    """

    def __init__(self, scale: int = 3) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"ESPCN supports scales 2, 3 and 4, not {scale}")
        self.scale = scale
        self.body = nn.Sequential(
            nn.Conv2d(3, 64, 5, 1, 2),
            nn.Tanh(),
            nn.Conv2d(64, 32, 3, 1, 1),
            nn.Tanh(),
            nn.Conv2d(32, 3 * scale * scale, 3, 1, 1),
        )
        self.upsample = nn.PixelShuffle(scale)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"ESPCN expects (N, 3, H, W) RGB; got {tuple(x.shape)}")
        return self.upsample(self.body(x))
