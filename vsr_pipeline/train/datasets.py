"""Training and validation patches read straight from photos and videos, degraded on the fly.

Sources:

- **photos** (image files or folders of them): each kept in memory at a few sizes (long side ``levels``,
  OpenCV area resampling), so a crop holds texture at several densities. Windows of ``frames > 1`` frames
  are cut along a **synthetic camera path**: a constant velocity drawn in a disc of radius ``max_shift``
  HR pixels per frame plus a little jitter, integer in HR pixels, hence sub-pixel in LR -- real texture
  with known motion.
- **videos** (video files, decoded whole with PyAV, or image-sequence folders): windows of consecutive
  frames at one random position, time reversed at random.

A batch is a pure function of ``(seed, rank, step)`` (:func:`batch_rng`): resuming a run, or replaying
it, draws exactly the same patches; data-parallel ranks draw different ones. Crops are cut with a margin
of :data:`MARGIN` LR pixels that is degraded with the patch and dropped after, so the patch's LR pixels
equal those of degrading the whole image (no border effects of the bicubic or Gaussian kernels).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from torch import Tensor

from vsr_pipeline.media.images import list_images, read_images
from vsr_pipeline.train.config import DataConfig, DegradationConfig, TrainConfigError, resolve_path
from vsr_pipeline.train.degradations import degrade_window

if TYPE_CHECKING:
    from vsr_pipeline.degradation import Degradation

log = logging.getLogger("vsr.train")

MARGIN = 2  # LR pixels around each patch, degraded then dropped
_VIDEO_EXT = {".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".y4m"}
_IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def batch_rng(seed: int, rank: int, step: int) -> np.random.Generator:
    """The generator of one batch: depends only on the run seed, the data-parallel rank and the step."""
    return np.random.default_rng([seed, rank, step])


def _matches(path: Path, names: Sequence[str]) -> bool:
    return path.name in names or path.stem in names


def expand_sources(entries: Sequence[str], exts: set[str]) -> list[Path]:
    """Files named in ``entries`` (files, or folders searched one level deep), sorted, of the given types."""
    out: list[Path] = []
    for entry in entries:
        path = resolve_path(entry)
        if path.is_dir():
            out += sorted(p for p in path.iterdir() if p.suffix.lower() in exts and p.is_file())
        elif path.is_file():
            out.append(path)
        else:
            raise TrainConfigError(
                f"training data {entry!r} does not exist ({path}); see docs/training.md for how to fetch it"
            )
    return out


def load_photo(path: Path, levels: Sequence[int]) -> list[np.ndarray]:
    """The photo as uint8 RGB at each long side in ``levels`` not above its own (its own size if none is)."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise TrainConfigError(f"cannot read image {path}")
    img = np.ascontiguousarray(img[..., ::-1])
    h, w = img.shape[:2]
    long_side = max(h, w)
    out = []
    for level in sorted(set(levels), reverse=True):
        if level >= long_side:
            continue
        f = level / long_side
        size = (max(1, round(w * f)), max(1, round(h * f)))
        out.append(np.ascontiguousarray(cv2.resize(img, size, interpolation=cv2.INTER_AREA)))
    return out or [img]


def load_clip(path: Path, scale: float = 1.0) -> np.ndarray:
    """All frames of a video file or image-sequence folder, uint8 ``(T, H, W, 3)``, area-downscaled by
    ``scale`` (> 1) when asked."""
    if path.is_dir():
        return _shrink(read_images(list_images(path)), scale)
    import av

    from vsr_pipeline.media import MediaError
    from vsr_pipeline.media.colour import frame_to_rgb
    from vsr_pipeline.media.probe import main_video

    # every frame in the decoder's (display) order; training needs no timestamps
    chunks = []
    try:
        with av.open(str(path)) as container:
            video = main_video(container)
            frames = [frame_to_rgb(f, f.colorspace, f.color_range) for f in container.decode(video)]
    except (av.error.FFmpegError, IndexError, MediaError) as exc:
        raise TrainConfigError(f"cannot decode video {path}: {exc}") from None
    for i in range(0, len(frames), 64):
        chunks.append(_shrink(np.stack(frames[i : i + 64]), scale))
    if not chunks:
        raise TrainConfigError(f"video {path} has no frames")
    return np.concatenate(chunks)


def _shrink(frames: np.ndarray, scale: float) -> np.ndarray:
    if scale <= 1.0:
        return frames
    h, w = frames.shape[1:3]
    size = (max(1, round(w / scale)), max(1, round(h / scale)))
    return np.stack([cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames])


@dataclass
class Pools:
    """Decoded training material: photos (each a list of sizes) and clips."""

    photos: list[list[np.ndarray]]
    clips: list[np.ndarray]


def load_pools(cfg: DataConfig, split: str) -> Pools:
    """Photos and clips of ``split`` ("train" or "val"): the held-out names go to val, the rest to train."""
    photo_files = expand_sources(cfg.photos, _IMAGE_EXT)
    clip_files = [
        p
        for p in expand_sources(cfg.videos, _VIDEO_EXT | {""})
        if p.suffix.lower() in _VIDEO_EXT or p.is_dir()
    ]
    keep = (
        (lambda p, names: _matches(p, names)) if split == "val" else (lambda p, names: not _matches(p, names))
    )
    photos = [load_photo(p, cfg.levels) for p in photo_files if keep(p, cfg.val_photos)]
    clips = [load_clip(p, cfg.clip_scale) for p in clip_files if keep(p, cfg.val_videos)]
    if not photos and not clips:
        raise TrainConfigError(f"no {split} data: data.photos / data.videos name nothing for this split")
    log.info(
        "%s data: %d photos, %d clips (%d frames)", split, len(photos), len(clips), sum(len(c) for c in clips)
    )
    return Pools(photos, clips)


class PatchSampler:
    """Draws ``(lr, hr)`` batches: lr ``(N, 3, p, p)`` (``frames == 1``) or ``(N, T, 3, p, p)``, hr the
    centre frame ``(N, 3, s*p, s*p)`` (``targets: centre``) or every frame ``(N, T, 3, s*p, s*p)``
    (``targets: all``); float32 in ``[0, 1]`` (the LR rounded to uint8 first, as stored LR sets are).
    ``fixed``: a degradation chain (:class:`vsr_pipeline.degradation.Degradation`) used instead of the
    random one (validation at one known degradation)."""

    def __init__(self, pools: Pools, data: DataConfig, degradation: DegradationConfig, scale: int,
                 fixed: Degradation | None = None) -> None:
        self.pools, self.data, self.deg, self.scale, self.fixed = pools, data, degradation, scale, fixed
        if not pools.photos and data.video_prob < 1.0 and not pools.clips:
            raise TrainConfigError("no training data")

    def _photo_window(self, rng: np.random.Generator, side: int, t: int) -> np.ndarray:
        photo = self.pools.photos[int(rng.integers(len(self.pools.photos)))]
        img = photo[int(rng.integers(len(photo)))]
        h, w = img.shape[:2]
        r = t // 2
        if t > 1:
            angle, speed = rng.uniform(0, 2 * np.pi), self.data.max_shift * np.sqrt(rng.uniform())
            v = np.array([np.cos(angle), np.sin(angle)]) * speed
            steps = (np.arange(t) - r)[:, None]
            offs = np.rint(steps * v[None, :] + rng.normal(0, 0.3, (t, 2))).astype(int)
            offs[r] = 0
        else:
            offs = np.zeros((1, 2), dtype=int)
        lo, hi = offs.min(axis=0), offs.max(axis=0)
        span_x, span_y = side + hi[0] - lo[0], side + hi[1] - lo[1]
        if span_x > w or span_y > h:  # photo too small for this path: keep it still
            offs[:] = 0
            lo, hi = offs.min(axis=0), offs.max(axis=0)
            span_x, span_y = side, side
            if side > w or side > h:
                raise TrainConfigError(f"a photo of {w}x{h} is smaller than the HR crop {side}")
        x0 = int(rng.integers(0, w - span_x + 1)) - lo[0]
        y0 = int(rng.integers(0, h - span_y + 1)) - lo[1]
        return np.stack([img[y0 + dy : y0 + dy + side, x0 + dx : x0 + dx + side] for dx, dy in offs])

    def _clip_window(self, rng: np.random.Generator, side: int, t: int) -> np.ndarray:
        clip = self.pools.clips[int(rng.integers(len(self.pools.clips)))]
        n, h, w = clip.shape[:3]
        if n < t or h < side or w < side:
            raise TrainConfigError(f"a clip of {n} frames {w}x{h} cannot give {t}-frame crops of {side}")
        t0 = int(rng.integers(0, n - t + 1))
        y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        win = clip[t0 : t0 + t, y0 : y0 + side, x0 : x0 + side]
        return win[::-1] if rng.random() < 0.5 else win

    def _window(self, rng: np.random.Generator, side: int) -> np.ndarray:
        """``codec_window`` (else ``frames``) HR frames of ``side`` pixels, from a clip or a photo's path."""
        t = max(self.data.frames, self.data.codec_window)
        use_clip = bool(self.pools.clips) and (not self.pools.photos or rng.random() < self.data.video_prob)
        return self._clip_window(rng, side, t) if use_clip else self._photo_window(rng, side, t)

    def sample_pair(
        self, rng: np.random.Generator, patch: int, augment: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """One uint8 pair: LR window ``(T, p, p, 3)`` and HR centre frame ``(s*p, s*p, 3)`` (or every HR
        frame ``(T, s*p, s*p, 3)`` with ``targets: all``)."""
        s, m = self.scale, MARGIN
        side = (patch + 2 * m) * s
        for _ in range(5):
            win = self._window(rng, side)
            centre = win[len(win) // 2, m * s : (m + patch) * s, m * s : (m + patch) * s]
            if self.data.min_std <= 0 or float(centre.mean(axis=2).std()) >= self.data.min_std:
                break
        if augment:
            if rng.random() < 0.5:
                win = win[:, :, ::-1]
            if rng.random() < 0.5:
                win = win[:, ::-1]
            if rng.random() < 0.5:
                win = win.transpose(0, 2, 1, 3)
        win = np.ascontiguousarray(win)
        lr = degrade_window(win, s, self.deg, rng) if self.fixed is None else self.fixed.apply(win, s)
        t = self.data.frames
        k = int(rng.integers(len(win) - t + 1)) if len(win) > t else 0  # the frames kept of a codec window
        lr = lr[k : k + t, m : m + patch, m : m + patch]
        hr = win[k : k + t, m * s : (m + patch) * s, m * s : (m + patch) * s]
        if self.data.targets == "centre":
            hr = hr[t // 2]
        return np.ascontiguousarray(lr), np.ascontiguousarray(hr)

    def sample(self, rng: np.random.Generator, batch: int) -> tuple[Tensor, Tensor]:
        """A training batch (augmented, ``data.patch`` LR pixels)."""
        pairs = [self.sample_pair(rng, self.data.patch, self.data.augment) for _ in range(batch)]
        return to_tensors(pairs, self.data.frames)


def to_tensors(pairs: Sequence[tuple[np.ndarray, np.ndarray]], frames: int) -> tuple[Tensor, Tensor]:
    """uint8 pairs -> float32 ``[0, 1]`` tensors, ``(N, 3, h, w)`` or ``(N, T, 3, h, w)`` LR; HR
    ``(N, 3, H, W)`` or, for all-frame targets, ``(N, T, 3, H, W)``."""
    lr = torch.from_numpy(np.stack([p[0] for p in pairs])).float().div_(255.0)  # (N, T, h, w, 3)
    hr = torch.from_numpy(np.stack([p[1] for p in pairs])).float().div_(255.0)  # (N, [T,] H, W, 3)
    lr = lr.permute(0, 1, 4, 2, 3).contiguous()
    if frames == 1:
        lr = lr[:, 0]
    hr = hr.permute(0, 1, 4, 2, 3) if hr.dim() == 5 else hr.permute(0, 3, 1, 2)
    return lr, hr.contiguous()


def validation_pairs(
    cfg: DataConfig, degradation: DegradationConfig, scale: int, seed: int = 12345
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Fixed held-out pairs (``val_crops`` crops of ``val_patch`` LR pixels, no augmentation), degraded by
    ``cfg.val_degradation`` when set."""
    pools = load_pools(cfg, "val")
    fixed = None
    if cfg.val_degradation:
        from vsr_pipeline.degradation import parse_degradation

        fixed = parse_degradation(cfg.val_degradation)
    sampler = PatchSampler(pools, cfg, degradation, scale, fixed)
    rng = np.random.default_rng(seed)
    return [sampler.sample_pair(rng, cfg.val_patch, augment=False) for _ in range(cfg.val_crops)]
