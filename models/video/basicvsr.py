"""BasicVSR (Chan et al., "BasicVSR: The Search for Essential Components in Video Super-Resolution and
Beyond", CVPR 2021), x4, with BasicSR's parameter names so the official checkpoints load with strict=True."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.blocks import ResidualBlockNoBN, make_layer
from models.motion.spynet import SpyNet
from models.motion.warp import flow_warp


def _without_autocast(x: Tensor) -> contextlib.AbstractContextManager[None]:
    """Autocast switched off on ``x``'s device (a no-op context when none is active)."""
    return torch.autocast(x.device.type, enabled=False)


class ConvResidualBlocks(nn.Module):
    """Propagation trunk: Conv(in -> feat, 3x3), LeakyReLU(0.1), ``num_block`` residual blocks.

    Wrapped in ``main`` so keys read ``main.0.*`` (input conv) and ``main.2.{i}.conv{1,2}.*`` (BasicSR).

    Under autocast (bf16/fp16) the input convolution runs in float32 and the residual stream stays float32
    (each block adds its low-precision branch to a float32 input), so the recurrent state does not pile up
    rounding from frame to frame: on real clips bf16 with a bf16 stream lost up to 0.18 dB Y-PSNR over 12
    frames, with this 0.002 dB (docs/benchmarks.md, issue 6). Without autocast it is the plain sequence.
    """

    def __init__(self, num_in_ch: int, num_feat: int, num_block: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(num_in_ch, num_feat, 3, 1, 1),
            nn.LeakyReLU(0.1, inplace=True),
            make_layer(lambda: ResidualBlockNoBN(num_feat), num_block),
        )

    def forward(self, x: Tensor) -> Tensor:
        conv_in, act, blocks = self.main
        with _without_autocast(x):
            feat = act(conv_in(x.float()))
        return blocks(feat)


class BasicVSR(nn.Module):
    """Bidirectional recurrent video SR, x4: ``(N, T, 3, H, W) -> (N, T, 3, 4H, 4W)``, RGB in ``[0, 1]``.

    Every output frame is produced (not only the centre one), or only a ``keep`` range (``forward``); any
    ``T >= 1`` and any ``H, W``.
    With the defaults (64 features, 30 residual blocks per branch) it has 6,291,311 parameters
    (the official checkpoints hold 6,291,317 numbers: those plus SPyNet's two 3-value buffers).

    For neighbours ``i`` and ``i+1`` SPyNet gives the backward flow ``spynet(x_i, x_{i+1})`` (warps the state
    of frame ``i+1`` onto frame ``i``) and the forward flow ``spynet(x_{i+1}, x_i)`` (warps the state of frame
    ``i`` onto frame ``i+1``), as in BasicSR. The backward branch runs ``T-1 .. 0``, the forward branch
    ``0 .. T-1``; each warps its hidden state, concatenates the LR frame before it and applies its trunk
    (the first step of each starts from zeros). Reconstruction per frame: fusion (1x1) of [backward,
    forward] features, two Conv + PixelShuffle(2) stages, conv_hr, conv_last (LeakyReLU(0.1) between), plus
    the bilinearly x4-upsampled LR frame.

    Memory: the backward features of the kept frames (``T*64*H*W`` floats at most) and their forward flows
    (``(T-1)*2*H*W``) are kept; SPyNet runs one neighbour pair at a time (batch 2N).
    """

    scale = 4

    def __init__(self, num_feat: int = 64, num_block: int = 30) -> None:
        super().__init__()
        self.num_feat = num_feat
        self.spynet = SpyNet()
        self.backward_trunk = ConvResidualBlocks(num_feat + 3, num_feat, num_block)
        self.forward_trunk = ConvResidualBlocks(num_feat + 3, num_feat, num_block)
        self.fusion = nn.Conv2d(num_feat * 2, num_feat, 1, 1, 0)
        self.upconv1 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
        self.upconv2 = nn.Conv2d(num_feat, 64 * 4, 3, 1, 1)
        self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv_last = nn.Conv2d(64, 3, 3, 1, 1)
        self.pixel_shuffle = nn.PixelShuffle(2)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)

    def _pair_flows(self, ref: Tensor, nxt: Tensor) -> tuple[Tensor, Tensor]:
        """(backward, forward) flows of one neighbour pair, one SPyNet call on a 2N batch, in float32 even
        under autocast (flows of tens of pixels need more than bf16's 8 significant bits)."""
        with _without_autocast(ref):
            flows = self.spynet(torch.cat([ref, nxt]).float(), torch.cat([nxt, ref]).float())
        return flows[: ref.shape[0]], flows[ref.shape[0] :]

    def compile_steps(self, **options: object) -> None:
        """``torch.compile`` (``options``, e.g. ``dynamic=False``) the per-frame parts in place: SPyNet, both
        trunks and the reconstruction. Compiling ``forward`` instead would unroll the T-step loops into one
        graph (minutes of compilation for a 100-frame chunk) and recompile for every chunk length; the parts
        see the same shapes whatever T is. Parameter names are unchanged (``nn.Module.compile``)."""
        for part in (self.spynet, self.backward_trunk, self.forward_trunk):
            part.compile(**options)  # type: ignore[arg-type]
        self._reconstruct = torch.compile(self._reconstruct, **options)  # type: ignore[method-assign,call-overload]

    def _reconstruct(self, feat_b: Tensor, feat_f: Tensor, lr: Tensor) -> Tensor:
        out = self.lrelu(self.fusion(torch.cat([feat_b, feat_f], dim=1)))
        out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
        out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.lrelu(self.conv_hr(out))
        out = self.conv_last(out)
        return out + F.interpolate(lr, scale_factor=4, mode="bilinear", align_corners=False)

    def forward(self, x: Tensor, keep: slice | None = None) -> Tensor:
        """``(N, T, 3, H, W) -> (N, T', 3, 4H, 4W)``: every frame, or with ``keep`` (a step-1 slice of the T
        frames) only those, ``T' = len(range(T)[keep])``. The other frames are context: all T still run
        through the backward branch and SPyNet, the forward branch stops after the last kept frame, and only
        kept frames are reconstructed, each exactly as in the full output (the chunk padding around a
        pipeline chunk costs no reconstruction)."""
        if x.dim() != 5 or x.shape[2] != 3:
            raise ValueError(f"BasicVSR expects (N, T, 3, H, W) RGB; got {tuple(x.shape)}")
        n, t, _, h, w = x.shape
        kept = range(t) if keep is None else range(t)[keep]
        if kept.step != 1 or not kept:
            raise ValueError(f"keep must be a non-empty step-1 slice of the {t} frames, got {keep}")

        # Backward branch (T-1 .. 0), computing each pair's flows once and keeping the forward ones
        # (up to the last kept frame) and the kept frames' features.
        flows_fwd: list[Tensor | None] = [None] * t  # flows_fwd[i]: warps state of i-1 onto i
        feats_b: list[Tensor | None] = [None] * t
        feat = x.new_zeros(n, self.num_feat, h, w)
        for i in range(t - 1, -1, -1):
            if i < t - 1:
                flow_b, flow_f = self._pair_flows(x[:, i], x[:, i + 1])
                if i + 1 < kept.stop:
                    flows_fwd[i + 1] = flow_f
                feat = flow_warp(feat, flow_b)
            feat = self.backward_trunk(torch.cat([x[:, i], feat], dim=1))
            if i in kept:
                feats_b[i] = feat

        # Forward branch (0 .. last kept) and reconstruction; release each frame's tensors once used.
        out = x.new_empty(n, len(kept), 3, 4 * h, 4 * w)
        feat = torch.zeros_like(feat)
        for i in range(kept.stop):
            flow_f = flows_fwd[i]
            if flow_f is not None:
                feat = flow_warp(feat, flow_f)
                flows_fwd[i] = None
            feat = self.forward_trunk(torch.cat([x[:, i], feat], dim=1))
            if i in kept:
                feat_b = feats_b[i]
                assert feat_b is not None
                feats_b[i] = None
                out[:, i - kept.start] = self._reconstruct(feat_b, feat, x[:, i])
        return out
