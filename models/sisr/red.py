"""RED-Net (Mao, Shen, Yang, "Image Restoration Using Very Deep Convolutional Encoder-Decoder Networks with
Symmetric Skip Connections", NeurIPS 2016).

Pre-upsampling. A symmetric encoder-decoder of stride-1 3x3 layers with 128 feature maps: L/2 convolutions
then L/2 deconvolutions (RED30: 15 + 15). Every ``skip_step`` (= 2) layers the output of a convolution is
added to the output of its mirrored deconvolution before that deconvolution's ReLU:

    u    = bicubic x s (x)
    e_i  = ReLU(Conv_i(e_{i-1})),  e_0 = u,  i = 1..15
    d_j  = ReLU(Deconv_j(d_{j-1}) + [e_{15-j} if (15 - j) is a multiple of 2]),  d_0 = e_15,  j = 1..14
    y    = Deconv_15(d_14) (+ u when in == out: the skip from the input, depth 0, to the output, depth 30)

``(N, num_in_ch, H, W) -> (N, num_out_ch, s*H, s*W)``; the input-to-output skip exists only when
``num_in_ch == num_out_ch``.

Parameters: RED30 on the Y channel (1 in, 1 out) has 4,131,072 weights (9*128 + 28 * 9*128*128 + 9*128),
4,134,785 with biases: the ~4.1M quoted for RED30 in comparison tables (128 is the width that gives it;
64 feature maps would give 1.03M). RGB: 4,139,395.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from models.blocks import bicubic_upscale, check_image_batch


class RED(nn.Module):
    """RED-Net with ``num_layers`` layers (half convolutions, half deconvolutions) of ``num_feat`` maps."""

    def __init__(self, scale: int = 4, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 128,
                 num_layers: int = 30, skip_step: int = 2) -> None:
        super().__init__()
        if num_layers < 2 or num_layers % 2:
            raise ValueError(f"RED needs an even number of layers >= 2, not {num_layers}")
        if skip_step < 1:
            raise ValueError(f"RED skip_step must be >= 1, not {skip_step}")
        half = num_layers // 2
        self.scale = scale
        self.num_in_ch = num_in_ch
        self.skip = num_in_ch == num_out_ch
        self.convs = nn.ModuleList(nn.Conv2d(num_in_ch if i == 0 else num_feat, num_feat, 3, 1, 1)
                                   for i in range(half))
        self.deconvs = nn.ModuleList(nn.ConvTranspose2d(num_feat, num_feat, 3, 1, 1) for _ in range(half - 1))
        self.deconv_last = nn.ConvTranspose2d(num_feat, num_out_ch, 3, 1, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.deconv_last.weight, std=1e-3)  # the residual starts near zero
        #: deconvolution j (1-based) -> the convolution i whose output is added to it: mirrored depths
        #: (i and L - i), every ``skip_step`` layers
        self.skip_pairs: dict[int, int] = {j: half - j for j in range(1, half) if (half - j) % skip_step == 0}

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch(x, self.num_in_ch, "RED")
        up = bicubic_upscale(x, self.scale)
        wanted = set(self.skip_pairs.values())
        feats: dict[int, Tensor] = {}  # encoder outputs a skip needs, by convolution index
        h = up
        for i, conv in enumerate(self.convs, start=1):
            h = F.relu(conv(h))
            if i in wanted:
                feats[i] = h
        for j, deconv in enumerate(self.deconvs, start=1):
            h = deconv(h)
            if j in self.skip_pairs:
                h = h + feats.pop(self.skip_pairs[j])
            h = F.relu(h)
        out = self.deconv_last(h)
        return out + up if self.skip else out
