"""SRCNN (Dong, Loy, He, Tang, "Image Super-Resolution Using Deep Convolutional Networks", ECCV 2014 /
TPAMI 2016).

Pre-upsampling: the LR input is bicubic-upscaled inside the module, then three convolutions
(patch extraction, non-linear mapping, reconstruction), the "9-5-5" configuration:

    bicubic x s -> Conv(in -> 64, 9x9), ReLU -> Conv(64 -> 32, 5x5), ReLU -> Conv(32 -> out, 5x5)

``(N, num_in_ch, H, W) -> (N, num_out_ch, s*H, s*W)``. SRCNN predicts the image itself (no global skip).
The paper's convolutions are unpadded (the output shrinks by 16 pixels); here they are zero-padded so the
output keeps the bicubic size.

Parameters: the paper reports 57,184 for 9-5-5 on the Y channel (1 in, 1 out), convolution weights only
(81*64 + 64*25*32 + 32*25); with the 97 biases that configuration has 57,281. RGB (3 in, 3 out): 69,251.
"""

from __future__ import annotations

from torch import Tensor, nn

from models.blocks import bicubic_upscale, check_image_batch


class SRCNN(nn.Module):
    """SRCNN: bicubic upscale, then ``f1-f2-f3`` convolutions with ``n1`` and ``n2`` filters."""

    def __init__(self, scale: int = 3, num_in_ch: int = 3, num_out_ch: int = 3, n1: int = 64, n2: int = 32,
                 kernel_sizes: tuple[int, int, int] = (9, 5, 5)) -> None:
        super().__init__()
        f1, f2, f3 = kernel_sizes
        self.scale = scale
        self.num_in_ch = num_in_ch
        self.conv1 = nn.Conv2d(num_in_ch, n1, f1, 1, f1 // 2)
        self.conv2 = nn.Conv2d(n1, n2, f2, 1, f2 // 2)
        self.conv_last = nn.Conv2d(n2, num_out_ch, f3, 1, f3 // 2)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch(x, self.num_in_ch, "SRCNN")
        x = bicubic_upscale(x, self.scale)
        return self.conv_last(self.relu(self.conv2(self.relu(self.conv1(x)))))
