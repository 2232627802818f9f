"""FSRCNN (Dong, Loy, Tang, "Accelerating the Super-Resolution Convolutional Neural Network", ECCV 2016).

Post-upsampling, FSRCNN(d, s, m) with d = 56, s = 12, m = 4, PReLU (one slope per channel) after every
convolution:

    Conv(in -> d, 5x5)      feature extraction
    Conv(d -> s, 1x1)       shrinking
    m x Conv(s -> s, 3x3)   mapping
    Conv(s -> d, 1x1)       expanding
    ConvTranspose(d -> out, 9x9, stride = scale)   deconvolution

``(N, num_in_ch, H, W) -> (N, num_out_ch, s*H, s*W)`` for any scale >= 2; no global skip. The deconvolution's
padding centres its kernel on each LR pixel as closely as an integer padding allows.

Parameters: the paper reports 12,464 for FSRCNN(56, 12, 4) on the Y channel (1 in, 1 out), convolution
weights only (25*56 + 56*12 + 4*9*12*12 + 12*56 + 81*56). With its 173 biases and 172 PReLU slopes that
configuration has 12,809 (2.8% more than the weight count). RGB (3 in, 3 out): 24,683 at every scale.
"""

from __future__ import annotations

from torch import Tensor, nn

from models.blocks import check_image_batch


class FSRCNN(nn.Module):
    """FSRCNN: extraction, shrinking, ``m`` mapping layers, expanding, strided 9x9 deconvolution."""

    def __init__(self, scale: int = 3, num_in_ch: int = 3, num_out_ch: int = 3, d: int = 56, s: int = 12,
                 m: int = 4) -> None:
        super().__init__()
        if scale < 2:
            raise ValueError(f"FSRCNN needs a scale >= 2, not {scale}")
        self.scale = scale
        self.num_in_ch = num_in_ch
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, d, 5, 1, 2), nn.PReLU(d),
                                   nn.Conv2d(d, s, 1), nn.PReLU(s)]
        for _ in range(m):
            layers += [nn.Conv2d(s, s, 3, 1, 1), nn.PReLU(s)]
        layers += [nn.Conv2d(s, d, 1), nn.PReLU(d)]
        self.body = nn.Sequential(*layers)
        # output size (H - 1) * scale - 2 * pad + 9 + out_pad == scale * H
        pad = 4 - (scale - 1) // 2
        self.deconv = nn.ConvTranspose2d(d, num_out_ch, 9, scale, pad, output_padding=scale + 2 * pad - 9)
        for layer in self.body:
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, a=0.25)  # He init for PReLU (slope 0.25)
                nn.init.zeros_(layer.bias)
        nn.init.normal_(self.deconv.weight, std=0.001)  # the paper's deconvolution initialisation
        nn.init.zeros_(self.deconv.bias)

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch(x, self.num_in_ch, "FSRCNN")
        return self.deconv(self.body(x))
