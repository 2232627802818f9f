"""`vsr eval` and `vsr degrade`: make LR from ground truth, run it through the upscale pipeline, score it.

Protocol (docs/evaluation.md): Y of BT.601 studio range, PSNR/SSIM per frame, averaged per
sequence, then over sequences. Ground truth is cropped (top-left) to a multiple of the scale;
LR is MATLAB-style bicubic (``bi``) or Gaussian blur + decimation (``bd``), quantised to uint8.
The LR frames go through the same chunked pipeline as ``vsr upscale`` (PNG folder in, PNG out).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vsr_pipeline.cluster import ray_session
from vsr_pipeline.degrade import crop_to_multiple, degrade_bd, degrade_bi, imresize, to_uint8
from vsr_pipeline.errors import UsageError
from vsr_pipeline.job import upscale
from vsr_pipeline.media import FrameReader, ImageFolderWriter, VideoWriter, list_images, probe, read_images
from vsr_pipeline.media.images import IMAGE_EXTENSIONS
from vsr_pipeline.metrics import psnr_y, ssim_y
from vsr_pipeline.options import UpscaleOptions, check_paths

DEGRADATIONS = {"bi": degrade_bi, "bd": degrade_bd}
AVERAGING = "mean over frames within a sequence, then mean over sequences"


def find_sequences(dataset: str | Path) -> tuple[str, list[tuple[str, Path]]]:
    """Classify a dataset: ("sequences", [(name, folder)]), ("images", [(name, file)]) or ("video", [...])."""
    path = Path(dataset)
    if not path.exists():
        raise UsageError(f"dataset {path} does not exist")
    if path.is_file():
        return "video", [(path.stem, path)]
    folders = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    sequences = [(d.name, d) for d in folders if _has_images(d)]
    if sequences:
        return "sequences", sequences
    images = list_images(path) if _has_images(path) else []
    if images:
        return "images", [(p.stem, p) for p in images]
    raise UsageError(f"dataset {path} holds no image sequences, images or video")


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir() if p.is_file())


def read_all(source: Path) -> np.ndarray:
    """All frames of a video, image folder, or single image as uint8 (T, H, W, 3)."""
    if source.is_file() and source.suffix.lower() in IMAGE_EXTENSIONS:
        return read_images([source])
    if source.is_dir():
        return read_images(list_images(source))
    with FrameReader(source) as reader:
        frames, _ = reader.read(reader.info.frames)
    return frames


def bicubic_upscale(lr: np.ndarray, scale: int) -> np.ndarray:
    """The table's bicubic baseline: MATLAB-style bicubic upscaling of the uint8 LR, rounded."""
    return to_uint8(imresize(lr.astype(np.float64), scale))


def _score(sr: np.ndarray, gt: np.ndarray, crop: int) -> tuple[float, float]:
    return (
        float(np.mean([psnr_y(a, b, crop) for a, b in zip(sr, gt, strict=True)])),
        float(np.mean([ssim_y(a, b, crop) for a, b in zip(sr, gt, strict=True)])),
    )


def evaluate(
    dataset: str | Path, opts: UpscaleOptions, degradation: str, crop_border: int | None
) -> dict[str, Any]:
    """Score ``opts.model`` on every sequence of ``dataset``; returns the `vsr eval` JSON."""
    kind, sequences = find_sequences(dataset)
    scale = opts.scale
    # Video tables (Vid4) score the whole frame; image tables (Set5/Set14) crop `scale` pixels.
    crop = crop_border if crop_border is not None else (scale if kind == "images" else 0)
    started = time.perf_counter()
    per_seq: dict[str, dict[str, Any]] = {}
    with ray_session(opts.address), tempfile.TemporaryDirectory(prefix="vsr-eval-") as tmp:
        for name, source in sequences:
            gt = crop_to_multiple(read_all(source), scale)
            lr = DEGRADATIONS[degradation](gt, scale)
            lr_dir, sr_dir = Path(tmp, f"{name}-lr"), Path(tmp, f"{name}-sr")
            with ImageFolderWriter(lr_dir) as writer:
                writer.write(lr, list(range(len(lr))))
            upscale(lr_dir, sr_dir, replace(opts, overwrite=False))
            sr = read_images(list_images(sr_dir))
            if sr.shape != gt.shape:
                raise RuntimeError(f"{name}: output shape {sr.shape} != ground truth {gt.shape}")
            psnr, ssim = _score(sr, gt, crop)
            bic_psnr, bic_ssim = _score(bicubic_upscale(lr, scale), gt, crop)
            per_seq[name] = {
                "psnr_y": round(psnr, 4),
                "ssim_y": round(ssim, 5),
                "bicubic_psnr_y": round(bic_psnr, 4),
                "bicubic_ssim_y": round(bic_ssim, 5),
                "frames": len(gt),
                "width": gt.shape[2],
                "height": gt.shape[1],
            }

    def mean(key: str) -> float:
        return round(float(np.mean([s[key] for s in per_seq.values()])), 4)

    return {
        "model": opts.model,
        "weights": opts.weights,
        "dataset": str(dataset),
        "scale": scale,
        "degradation": degradation,
        "psnr_y": mean("psnr_y"),
        "ssim_y": mean("ssim_y"),
        "bicubic_psnr_y": mean("bicubic_psnr_y"),
        "bicubic_ssim_y": mean("bicubic_ssim_y"),
        "sequences": per_seq,
        "protocol": {
            "y": "BT.601 studio range, Y = 16 + 65.481 R + 128.553 G + 24.966 B (RGB in [0, 1]), not rounded",
            "crop_border": crop,
            "averaging": AVERAGING,
            "lr": f"{degradation} of ground truth cropped to a multiple of {scale}, quantised to uint8",
            "ssim": "11x11 Gaussian window, sigma 1.5, valid region",
        },
        "seconds": round(time.perf_counter() - started, 2),
    }


def format_table(result: dict[str, Any]) -> str:
    lines = [f"{'sequence':<16} {'frames':>6} {'PSNR-Y':>8} {'SSIM-Y':>8} {'bicubic':>8} {'bic SSIM':>8}"]
    for name, s in result["sequences"].items():
        lines.append(
            f"{name:<16} {s['frames']:>6} {s['psnr_y']:>8.2f} {s['ssim_y']:>8.4f} "
            f"{s['bicubic_psnr_y']:>8.2f} {s['bicubic_ssim_y']:>8.4f}"
        )
    lines.append(
        f"{'mean':<16} {'':>6} {result['psnr_y']:>8.2f} {result['ssim_y']:>8.4f} "
        f"{result['bicubic_psnr_y']:>8.2f} {result['bicubic_ssim_y']:>8.4f}"
    )
    return "\n".join(lines)


def degrade_file(
    input_path: str | Path,
    output: str | Path,
    scale: int,
    degradation: str,
    fps: Fraction | None,
    overwrite: bool,
) -> dict[str, Any]:
    """`vsr degrade`: LR version of a video, image folder or image; video out keeps PTS and audio."""
    from workers.encoder import is_video_path

    input_path, output = Path(input_path), Path(output)
    check_paths(input_path, output, overwrite)
    if input_path.is_file() and input_path.suffix.lower() in IMAGE_EXTENSIONS:
        frames, pts, info = read_images([input_path]), [0], None
    else:
        info = probe(input_path, fps=fps)
        with FrameReader(input_path, fps=fps) as reader:
            frames, pts = reader.read(info.frames)
    lr = DEGRADATIONS[degradation](crop_to_multiple(frames, scale), scale)
    if is_video_path(output):
        if info is None:
            raise UsageError("a single image degrades to a folder of PNG frames, not a video")
        writer: Any = VideoWriter.like(
            output, info, width=lr.shape[2], height=lr.shape[1], crf=0, overwrite=overwrite
        )
    else:
        writer = ImageFolderWriter(output, overwrite=overwrite)
    with writer:
        writer.write(lr, pts)
    return {
        "output": str(output),
        "frames": len(lr),
        "width": lr.shape[2],
        "height": lr.shape[1],
        "scale": scale,
        "degradation": degradation,
    }
