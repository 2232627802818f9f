"""Bicubic upsampling as a model: the parameter-free baseline, (N, 3, H, W) -> (N, 3, s*H, s*W).

PyTorch's bicubic (Keys kernel, a = -0.75, half-pixel centres), clamped to [0, 1]. It is the
per-frame "model" for container and timing checks on full-size video where a learned model
would take hours on a CPU; evaluation tables use MATLAB-style bicubic (vsr_pipeline.degrade).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Bicubic(nn.Module):
    def __init__(self, scale: int = 4):
        super().__init__()
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"expected (N, C, H, W), got {tuple(x.shape)}")
        return F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False).clamp_(0, 1)
