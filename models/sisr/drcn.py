"""DRCN (Kim, Lee, Lee, "Deeply-Recursive Convolutional Network for Image Super-Resolution", CVPR 2016).

Pre-upsampling. Three sub-networks, all 3x3 convolutions with ``F = 256`` filters and ReLU:

    u   = bicubic x s (x)
    H0  = embedding(u)          Conv(in -> F), ReLU, Conv(F -> F), ReLU
    H_d = ReLU(W * H_{d-1} + b) for d = 1..D (D = 16): ONE convolution, its weights shared by every recursion
    y_d = reconstruction(H_d) (+ u when in == out)     Conv(F -> F), ReLU, Conv(F -> out), shared by every d
    y   = sum_d w_d * y_d       learned ensemble weights, initialised to 1/D

Recursive supervision: ``forward_recursive`` returns the final ``y`` and the D intermediate predictions
``y_d``; ``ensemble_weights`` are the learned ``w_d``; ``recursive_supervision_loss`` is the paper's training
objective. ``forward`` returns ``y`` only (same call as every model: LR in, HR out).
``(N, num_in_ch, H, W) -> (N, num_out_ch, s*H, s*W)``; the skip to ``u`` exists only when
``num_in_ch == num_out_ch``.

Parameters: the paper's Y-channel model (1 in, 1 out, F = 256, D = 16) has 1,774,080 convolution weights
(9*256 + 3 * 9*256*256 + 9*256; the "1.77M" of the comparison tables); with 1,025 biases and 16 ensemble
weights, 1,775,121. RGB: 1,784,339.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.blocks import bicubic_upscale, check_image_batch


class DRCN(nn.Module):
    """DRCN: embedding, one convolution recursed ``num_recursions`` times, shared reconstruction, ensemble."""

    def __init__(self, scale: int = 4, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 256,
                 num_recursions: int = 16) -> None:
        super().__init__()
        if num_recursions < 1:
            raise ValueError(f"DRCN needs at least one recursion, not {num_recursions}")
        self.scale = scale
        self.num_in_ch = num_in_ch
        self.num_recursions = num_recursions
        self.skip = num_in_ch == num_out_ch
        self.embed1 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.embed2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.recursive = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.recon1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.ensemble = nn.Parameter(torch.full((num_recursions,), 1.0 / num_recursions))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.conv_last.weight, std=1e-3)  # every y_d starts near the bicubic image

    @property
    def ensemble_weights(self) -> Tensor:
        """The learned weights ``w_d`` of the D intermediate predictions, shape ``(D,)``."""
        return self.ensemble

    def forward_recursive(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """``(y, [y_1, ..., y_D])``: the ensemble output and every intermediate prediction, each
        ``(N, num_out_ch, s*H, s*W)``."""
        check_image_batch(x, self.num_in_ch, "DRCN")
        up = bicubic_upscale(x, self.scale)
        h = F.relu(self.embed2(F.relu(self.embed1(up))))
        preds: list[Tensor] = []
        out = None
        for d in range(self.num_recursions):
            h = F.relu(self.recursive(h))
            y_d = self.conv_last(F.relu(self.recon1(h)))
            if self.skip:
                y_d = y_d + up
            preds.append(y_d)
            out = self.ensemble[d] * y_d if out is None else out + self.ensemble[d] * y_d
        assert out is not None
        return out, preds

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_recursive(x)[0]


def recursive_supervision_loss(output: Tensor, intermediates: list[Tensor], target: Tensor,
                               alpha: float) -> Tensor:
    """DRCN's objective without weight decay: ``alpha * mean_d MSE(y_d, t) + (1 - alpha) * MSE(y, t)``.

    The paper starts with ``alpha = 1`` (every recursion supervised) and decays it towards 0 during training.
    MSE here is the per-pixel mean (the paper's sums differ by a constant factor).
    """
    inter = torch.stack([F.mse_loss(y_d, target) for y_d in intermediates]).mean()
    return alpha * inter + (1.0 - alpha) * F.mse_loss(output, target)
