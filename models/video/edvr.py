"""EDVR (Wang et al., "EDVR: Video Restoration with Enhanced Deformable Convolutional Networks", CVPRW 2019),
with BasicSR's module and parameter names so its checkpoints load with ``strict=True``.

Layout (``C = num_feat``, ``T = num_frame``, ``G = deformable_groups``)::

    conv_first (3 -> C) + LeakyReLU(0.1), feature_extraction: residual blocks        per frame, L1 (H x W)
    conv_l2_1 (stride 2), conv_l2_2 -> L2 (H/2);  conv_l3_1 (stride 2), conv_l3_2 -> L3 (H/4)
    pcd_align: every frame aligned to the centre frame, coarse to fine (L3, L2, L1): offsets from
        [neighbour, reference] (offset_conv1/2/3.l*), a DCNv2 (dcn_pack.l*) whose offsets and masks come
        from them, offsets and features passed up x2 (offsets doubled, feat_conv.l* merges); then a
        cascading DCNv2 (cas_offset_conv1/2, cas_dcnpack) at L1
    fusion (TSA): temporal attention (temporal_attn1/2: sigmoid of the embedding correlation with the centre
        frame) weights each frame, feat_fusion (1x1, T*C -> C); spatial attention (spatial_attn1..5,
        spatial_attn_l1..3, spatial_attn_add1/2) on a two-level pyramid: feat * 2 * sigmoid(attn) + add
    reconstruction: residual blocks; upsampling; conv_hr (64 -> 64), conv_last (64 -> 3); plus the centre
        frame upsampled bilinearly (align_corners=False)

Upsampling by scale (the last stage always yields 64 channels, as in BasicSR, so conv_hr/conv_last keep
their shapes): x4 ``upconv1`` (C -> 4C) + PixelShuffle(2) + ``upconv2`` (C -> 4*64) + PixelShuffle(2)
(BasicSR's layout; only x4 checkpoints exist); x2 ``upconv1`` (C -> 4*64) + PixelShuffle(2); x3 ``upconv1``
(C -> 9*64) + PixelShuffle(3). LeakyReLU(0.1) follows every stage and conv_hr.

Parameters (x4, with TSA): EDVR-M (C=64, 5 extraction + 10 reconstruction blocks, G=8) 3,300,131;
EDVR-L (C=128, 5 + 40 blocks) 20,633,827, the paper's 20.6M (tests check both); x2/x3 differ only in
the upsampler (EDVR-M 3,152,419 / 3,337,059; EDVR-L 20,043,491 / 20,412,451).

Not implemented: BasicSR's ``with_predeblur`` and ``hr_in`` options (used by its deblurring models only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.blocks import ResidualBlockNoBN, make_layer
from models.ops.deform_conv import DCNv2Pack

_LEVELS = ("l3", "l2", "l1")  # coarse to fine: 1/4, 1/2, full resolution


def _up2(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class PCDAlignment(nn.Module):
    """Pyramid, Cascading and Deformable alignment: ``forward(nbr, ref)`` with feature pyramids
    ``[L1, L2, L3]`` of shapes ``(B, C, H, W)``, ``(B, C, H/2, W/2)``, ``(B, C, H/4, W/4)``; returns the
    neighbour's L1 features aligned to the reference, ``(B, C, H, W)``."""

    def __init__(self, num_feat: int = 64, deformable_groups: int = 8) -> None:
        super().__init__()
        self.offset_conv1 = nn.ModuleDict()
        self.offset_conv2 = nn.ModuleDict()
        self.offset_conv3 = nn.ModuleDict()
        self.dcn_pack = nn.ModuleDict()
        self.feat_conv = nn.ModuleDict()
        for level in _LEVELS:
            self.offset_conv1[level] = nn.Conv2d(2 * num_feat, num_feat, 3, 1, 1)
            if level == "l3":
                self.offset_conv2[level] = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            else:
                self.offset_conv2[level] = nn.Conv2d(2 * num_feat, num_feat, 3, 1, 1)
                self.offset_conv3[level] = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
                self.feat_conv[level] = nn.Conv2d(2 * num_feat, num_feat, 3, 1, 1)
            self.dcn_pack[level] = DCNv2Pack(num_feat, num_feat, 3, padding=1,
                                             deformable_groups=deformable_groups)
        self.cas_offset_conv1 = nn.Conv2d(2 * num_feat, num_feat, 3, 1, 1)
        self.cas_offset_conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.cas_dcnpack = DCNv2Pack(num_feat, num_feat, 3, padding=1, deformable_groups=deformable_groups)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, nbr: list[Tensor], ref: list[Tensor]) -> Tensor:
        up_offset: Tensor | None = None
        up_feat: Tensor | None = None
        feat = nbr[0]
        for i, level in zip((2, 1, 0), _LEVELS, strict=True):
            offset = self.lrelu(self.offset_conv1[level](torch.cat([nbr[i], ref[i]], dim=1)))
            if up_offset is None:
                offset = self.lrelu(self.offset_conv2[level](offset))
            else:
                offset = self.lrelu(self.offset_conv2[level](torch.cat([offset, up_offset], dim=1)))
                offset = self.lrelu(self.offset_conv3[level](offset))
            feat = self.dcn_pack[level](nbr[i], offset)
            if up_feat is not None:
                feat = self.feat_conv[level](torch.cat([feat, up_feat], dim=1))
            if i > 0:
                feat = self.lrelu(feat)
                up_offset = _up2(offset) * 2  # offsets are in pixels: twice as many at the finer level
                up_feat = _up2(feat)
        offset = self.lrelu(self.cas_offset_conv1(torch.cat([feat, ref[0]], dim=1)))
        offset = self.lrelu(self.cas_offset_conv2(offset))
        return self.lrelu(self.cas_dcnpack(feat, offset))


class TSAFusion(nn.Module):
    """Temporal and Spatial Attention fusion: ``(B, T, C, H, W) -> (B, C, H, W)``; H and W multiples of 4."""

    def __init__(self, num_feat: int = 64, num_frame: int = 5, center_frame_idx: int = 2) -> None:
        super().__init__()
        self.center_frame_idx = center_frame_idx
        c = num_feat
        self.temporal_attn1 = nn.Conv2d(c, c, 3, 1, 1)
        self.temporal_attn2 = nn.Conv2d(c, c, 3, 1, 1)
        self.feat_fusion = nn.Conv2d(num_frame * c, c, 1, 1)
        self.max_pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.avg_pool = nn.AvgPool2d(3, stride=2, padding=1)
        self.spatial_attn1 = nn.Conv2d(num_frame * c, c, 1)
        self.spatial_attn2 = nn.Conv2d(2 * c, c, 1)
        self.spatial_attn3 = nn.Conv2d(c, c, 3, 1, 1)
        self.spatial_attn4 = nn.Conv2d(c, c, 1)
        self.spatial_attn5 = nn.Conv2d(c, c, 3, 1, 1)
        self.spatial_attn_l1 = nn.Conv2d(c, c, 1)
        self.spatial_attn_l2 = nn.Conv2d(2 * c, c, 3, 1, 1)
        self.spatial_attn_l3 = nn.Conv2d(c, c, 3, 1, 1)
        self.spatial_attn_add1 = nn.Conv2d(c, c, 1)
        self.spatial_attn_add2 = nn.Conv2d(c, c, 1)
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)

    def _pool(self, x: Tensor) -> Tensor:
        return torch.cat([self.max_pool(x), self.avg_pool(x)], dim=1)

    def forward(self, aligned: Tensor) -> Tensor:
        b, t, c, h, w = aligned.shape
        # temporal attention: per-pixel sigmoid(<embedding of frame i, embedding of the centre frame>)
        emb_ref = self.temporal_attn1(aligned[:, self.center_frame_idx])
        emb = self.temporal_attn2(aligned.reshape(b * t, c, h, w)).view(b, t, c, h, w)
        corr = torch.sigmoid((emb * emb_ref.unsqueeze(1)).sum(dim=2))  # (b, t, h, w)
        aligned = (aligned * corr.unsqueeze(2)).view(b, t * c, h, w)

        feat = self.lrelu(self.feat_fusion(aligned))
        # spatial attention, two pyramid levels (1/2 and 1/4 resolution)
        attn = self.lrelu(self.spatial_attn1(aligned))
        attn = self.lrelu(self.spatial_attn2(self._pool(attn)))
        level = self.lrelu(self.spatial_attn_l1(attn))
        level = self.lrelu(self.spatial_attn_l2(self._pool(level)))
        level = _up2(self.lrelu(self.spatial_attn_l3(level)))
        attn = self.lrelu(self.spatial_attn3(attn)) + level
        attn = _up2(self.lrelu(self.spatial_attn4(attn)))
        attn = self.spatial_attn5(attn)
        attn_add = self.spatial_attn_add2(self.lrelu(self.spatial_attn_add1(attn)))
        return feat * torch.sigmoid(attn) * 2 + attn_add


class EDVR(nn.Module):
    """EDVR video SR: a window ``(N, T, 3, H, W)`` -> the centre frame ``(N, 3, s*H, s*W)``, RGB in [0, 1].

    Any ``H, W >= 1``: the frames are padded (replicate) at the bottom/right to multiples of 4 (the pyramid
    and the spatial attention halve twice) and the output is cropped back; with replicate padding the
    bilinear skip of the kept region is exactly that of the unpadded frame.

    ``backbone="NAME"``: the reconstruction blocks and the upsampler are replaced by the registered
    single-image model ``build_model(NAME, scale, num_in_ch=num_feat, num_out_ch=num_out_ch)`` applied to
    the fused features (key prefix ``backbone.``); the bilinear centre-frame skip stays.
    """

    def __init__(self, scale: int = 4, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64,
                 num_frame: int = 5, deformable_groups: int = 8, num_extract_block: int = 5,
                 num_reconstruct_block: int = 10, center_frame_idx: int | None = None, with_tsa: bool = True,
                 backbone: str | None = None) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"EDVR supports scales 2, 3 and 4, not {scale}")
        if center_frame_idx is None:
            center_frame_idx = num_frame // 2
        if not 0 <= center_frame_idx < num_frame:
            raise ValueError(f"center_frame_idx {center_frame_idx} is outside a {num_frame}-frame window")
        self.scale, self.num_in_ch, self.num_out_ch = scale, num_in_ch, num_out_ch
        self.num_frame, self.center_frame_idx, self.with_tsa = num_frame, center_frame_idx, with_tsa

        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.feature_extraction = make_layer(lambda: ResidualBlockNoBN(num_feat), num_extract_block)
        self.conv_l2_1 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        self.conv_l2_2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_l3_1 = nn.Conv2d(num_feat, num_feat, 3, 2, 1)
        self.conv_l3_2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.pcd_align = PCDAlignment(num_feat, deformable_groups)
        self.fusion: nn.Module = (TSAFusion(num_feat, num_frame, center_frame_idx) if with_tsa
                                  else nn.Conv2d(num_frame * num_feat, num_feat, 1, 1))
        self.lrelu = nn.LeakyReLU(0.1, inplace=True)

        self.backbone: nn.Module | None = None
        if backbone is not None:
            from models.registry import build_model, get_spec  # lazy: the registry lists this module

            if get_spec(backbone).kind != "sisr":
                raise ValueError(f"EDVR backbone must be a single-image model; {backbone} is not")
            self.backbone = build_model(backbone, scale, num_in_ch=num_feat, num_out_ch=num_out_ch)
            return
        self.reconstruction = make_layer(lambda: ResidualBlockNoBN(num_feat), num_reconstruct_block)
        if scale == 4:
            self.upconv1 = nn.Conv2d(num_feat, num_feat * 4, 3, 1, 1)
            self.upconv2 = nn.Conv2d(num_feat, 64 * 4, 3, 1, 1)
        else:
            self.upconv1 = nn.Conv2d(num_feat, 64 * scale * scale, 3, 1, 1)
        self.pixel_shuffle = nn.PixelShuffle(2 if scale == 4 else scale)
        self.conv_hr = nn.Conv2d(64, 64, 3, 1, 1)
        self.conv_last = nn.Conv2d(64, num_out_ch, 3, 1, 1)

    def _upsample(self, feat: Tensor) -> Tensor:
        out = self.reconstruction(feat)
        out = self.lrelu(self.pixel_shuffle(self.upconv1(out)))
        if self.scale == 4:
            out = self.lrelu(self.pixel_shuffle(self.upconv2(out)))
        out = self.lrelu(self.conv_hr(out))
        return self.conv_last(out)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 5 or x.shape[1] != self.num_frame or x.shape[2] != self.num_in_ch:
            raise ValueError(f"EDVR expects (N, {self.num_frame}, {self.num_in_ch}, H, W); "
                             f"got {tuple(x.shape)}")
        n, t, c, h, w = x.shape
        frames = x.reshape(n * t, c, h, w)
        pad_h, pad_w = -h % 4, -w % 4
        if pad_h or pad_w:
            frames = F.pad(frames, (0, pad_w, 0, pad_h), mode="replicate")
        hp, wp = h + pad_h, w + pad_w

        # feature pyramid of every frame (frames folded into the batch)
        l1 = self.feature_extraction(self.lrelu(self.conv_first(frames)))
        l2 = self.lrelu(self.conv_l2_2(self.lrelu(self.conv_l2_1(l1))))
        l3 = self.lrelu(self.conv_l3_2(self.lrelu(self.conv_l3_1(l2))))
        nbr = [l1, l2, l3]

        # align all frames to the centre one in one batch: the reference pyramid repeated T times
        def centre(f: Tensor) -> Tensor:
            f = f.view(n, t, *f.shape[1:])[:, self.center_frame_idx : self.center_frame_idx + 1]
            return f.expand(n, t, *f.shape[2:]).reshape(n * t, *f.shape[2:])

        aligned = self.pcd_align(nbr, [centre(f) for f in nbr]).view(n, t, -1, hp, wp)
        feat = self.fusion(aligned) if self.with_tsa else self.fusion(aligned.view(n, -1, hp, wp))

        out = self._upsample(feat) if self.backbone is None else self.backbone(feat)
        centre_frame = frames.view(n, t, c, hp, wp)[:, self.center_frame_idx]
        if self.num_out_ch == self.num_in_ch:
            out = out + F.interpolate(centre_frame, scale_factor=self.scale, mode="bilinear",
                                      align_corners=False)
        return out[..., : self.scale * h, : self.scale * w]
