"""ESPCN (Shi, Caballero, Huszár, Totz, Aitken, Bishop, Rueckert, Wang, "Real-Time Single Image and Video
Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural Network", CVPR 2016).

Post-upsampling: three convolutions on the LR image and a sub-pixel shuffle,

    Conv(in -> 64, 5x5), Tanh -> Conv(64 -> 32, 3x3), Tanh -> Conv(32 -> out*s^2, 3x3) -> PixelShuffle(s)

``(N, num_in_ch, H, W) -> (N, num_out_ch, s*H, s*W)``, scales 2, 3, 4; no global skip (as in the paper).

Parameters: the paper's model works on the luminance channel (1 in, s^2 out): 22,729 at x3 (22,624 weights
+ 105 biases) and 24,752 at x4 (the "~25K" of the comparison tables). RGB (3 in, 3 out): 26,796 (x2),
31,131 (x3), 37,200 (x4).
"""

from __future__ import annotations

from torch import Tensor, nn

from models.blocks import check_image_batch


class ESPCN(nn.Module):
    """ESPCN: two Tanh convolutions and a sub-pixel output convolution."""

    def __init__(self, scale: int = 3, num_in_ch: int = 3, num_out_ch: int = 3) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"ESPCN supports scales 2, 3 and 4, not {scale}")
        self.scale = scale
        self.num_in_ch = num_in_ch
        self.body = nn.Sequential(
            nn.Conv2d(num_in_ch, 64, 5, 1, 2),
            nn.Tanh(),
            nn.Conv2d(64, 32, 3, 1, 1),
            nn.Tanh(),
            nn.Conv2d(32, num_out_ch * scale * scale, 3, 1, 1),
        )
        self.upsample = nn.PixelShuffle(scale)

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch(x, self.num_in_ch, "ESPCN")
        return self.upsample(self.body(x))
