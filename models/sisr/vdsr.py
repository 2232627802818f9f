"""VDSR (Kim, Lee, Lee, "Accurate Image Super-Resolution Using Very Deep Convolutional Networks", CVPR 2016).

Pre-upsampling, 20 convolutional layers of 3x3, 64 filters, learning the residual to the bicubic image:

    u = bicubic x s (x)
    Conv(in -> 64), ReLU -> 18 x [Conv(64 -> 64), ReLU] -> Conv(64 -> out) -> (+ u when in == out)

``(N, num_in_ch, H, W) -> (N, num_out_ch, s*H, s*W)``. One model serves every scale (the scale only sets the
bicubic step). The global skip exists only when ``num_in_ch == num_out_ch``.

Parameters: the paper's Y-channel model (1 in, 1 out) has 664,704 convolution weights (the "665K" of the
comparison tables), 665,921 with biases. RGB: 668,227.
"""

from __future__ import annotations

from torch import Tensor, nn

from models.blocks import bicubic_upscale, check_image_batch


class VDSR(nn.Module):
    """VDSR: ``num_layers`` 3x3 convolutions of ``num_feat`` channels with ReLU, global residual."""

    def __init__(self, scale: int = 4, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64,
                 num_layers: int = 20) -> None:
        super().__init__()
        if num_layers < 2:
            raise ValueError(f"VDSR needs at least 2 layers, not {num_layers}")
        self.scale = scale
        self.num_in_ch = num_in_ch
        self.skip = num_in_ch == num_out_ch
        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), nn.ReLU(inplace=True)]
        for _ in range(num_layers - 2):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        for m in self.modules():  # He initialisation, as in the paper, but for the output layer
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        # the residual starts near zero, so the untrained model is close to the bicubic image (the paper
        # trains from He initialisation with gradient clipping instead)
        nn.init.normal_(self.conv_last.weight, std=1e-3)

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch(x, self.num_in_ch, "VDSR")
        up = bicubic_upscale(x, self.scale)
        out = self.conv_last(self.body(up))
        return out + up if self.skip else out
