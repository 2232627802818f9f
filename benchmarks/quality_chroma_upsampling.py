"""How the reader should upsample 4:2:0 chroma for the models: repeated samples against interpolation.

    python benchmarks/quality_chroma_upsampling.py [--models basicvsr espcn ...] [--json PATH]
    python benchmarks/quality_chroma_upsampling.py --speed     # what the conversion costs per frame

Ground truth: the real clips of docs/evaluation.md (h) (``quality_real_degradations.CLIPS``: 20 frames of
bikes.mp4 and of bigbuckbunny.mp4, 256x320 crops). LR: MATLAB bicubic x4 (RGB), then made 4:2:0 as users'
video is, two ways: our writer (each chroma sample the mean of its 2x2 block, lossless FFV1: ``420``) and
FFmpeg's scaler (PyAV ``reformat``, as ``ffmpeg -pix_fmt yuv420p`` does) into libx264 at crf 23 and 28
(``420+h264:23``, ``420+h264:28``). Each decoded frame's chroma is brought to full size by each method
below, converted to RGB with our BT.601 matrix and upscaled x4 by each model (in this process, fp32);
Y-PSNR and chroma PSNR (BT.601 Cb and Cr together; 4-pixel border) against the ground truth, mean of the
two clips. ``444`` is the LR itself
in RGB (no subsampling): the bound. The script also checks that the reader (``media.colour.frame_to_rgb``)
gives the ``cubic`` rows' RGB (within two levels): what the pipeline does since 2026-12-06.

- ``repeat``: each chroma sample over its 2x2 block (the reader's way before 2026-12-06; OpenCV's
  ``COLOR_YUV2RGB_I420``);
- ``linear``: bilinear, samples at the centres of their blocks (MPEG-1 / JPEG siting);
- ``linear-left``: bilinear, samples level with the even luma columns, between the rows (MPEG-2 / H.264's
  default ``left`` siting);
- ``cubic``: bicubic, centred.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

MODELS = ["bicubic", "espcn", "basicvsr", "edvr-s", "realesr-animevideo:compressed", "realesrgan"]


def upsamplers() -> dict[str, Callable[[np.ndarray, int, int], np.ndarray]]:
    """name -> f(plane (h/2, w/2) float32, h, w) -> (h, w) float32."""
    import cv2

    def repeat(c: np.ndarray, h: int, w: int) -> np.ndarray:
        return np.repeat(np.repeat(c, 2, axis=0), 2, axis=1)[:h, :w]

    def linear(c: np.ndarray, h: int, w: int) -> np.ndarray:
        return cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR)

    def linear_left(c: np.ndarray, h: int, w: int) -> np.ndarray:
        v = cv2.resize(c, (c.shape[1], h), interpolation=cv2.INTER_LINEAR)  # rows: centred
        out = np.empty((h, w), np.float32)
        out[:, 0::2] = v[:, : (w + 1) // 2]
        right = np.concatenate([v[:, 1:], v[:, -1:]], axis=1)
        out[:, 1::2] = ((v + right) / 2)[:, : w // 2]
        return out

    def cubic(c: np.ndarray, h: int, w: int) -> np.ndarray:
        return cv2.resize(c, (w, h), interpolation=cv2.INTER_CUBIC)

    return {"repeat": repeat, "linear": linear, "linear-left": linear_left, "cubic": cubic}


def to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray, up: Callable[..., np.ndarray]) -> np.ndarray:
    """8-bit BT.601 studio-range planes -> (H, W, 3) uint8 RGB, chroma brought to full size by ``up``."""
    import cv2

    from vsr_pipeline.media.colour import yuv_to_rgb_matrix

    h, w = y.shape
    planes = [y.astype(np.float32), up(u.astype(np.float32), h, w), up(v.astype(np.float32), h, w)]
    rgb = cv2.transform(cv2.merge(planes), yuv_to_rgb_matrix(5, False))
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def planes_of(path: Path) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Each decoded 8-bit 4:2:0 frame of ``path`` as its Y, U, V planes."""
    import av

    out = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            h, w = f.height, f.width
            flat, n = f.to_ndarray().reshape(-1), (h // 2) * (w // 2)
            out.append((flat[: h * w].reshape(h, w), flat[h * w : h * w + n].reshape(h // 2, w // 2),
                        flat[h * w + n : h * w + 2 * n].reshape(h // 2, w // 2)))
    return out


def encode(lr: np.ndarray, path: Path, crf: int | None) -> Path:
    """``lr`` (T, H, W, 3) RGB as 4:2:0: for ``crf`` None ours (mean of each block, FFV1), else FFmpeg's
    (swscale) through libx264 at ``crf``."""
    from fractions import Fraction

    from vsr_pipeline.media import VideoWriter

    if crf is None:
        with VideoWriter(path, lr.shape[2], lr.shape[1], Fraction(1, 25), Fraction(25), codec="ffv1",
                         chroma="420") as w:
            w.write(lr, list(range(len(lr))))
        return path
    from quality_chroma_layouts import x264_file

    return x264_file(lr, path, crf)


def speed() -> None:
    """Milliseconds per 8-bit 4:2:0 BT.601 frame (median of 30): the reader's conversion against OpenCV's
    ``COLOR_YUV2RGB_I420`` (repeated chroma, the reader's way before 2026-12-06)."""
    import statistics
    import time

    import av
    import cv2

    from vsr_pipeline.media.colour import frame_to_rgb

    for w, h in ((1920, 1080), (1280, 720), (640, 272)):
        i420 = np.random.default_rng(0).integers(16, 236, (h * 3 // 2, w), np.uint8)
        frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
        ms = {}
        for name, f in (("reader", lambda: frame_to_rgb(frame, 5, 1)),  # noqa: B023
                        ("COLOR_YUV2RGB_I420", lambda: cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420))):  # noqa: B023
            f()
            times = []
            for _ in range(30):
                t = time.perf_counter()
                f()
                times.append(time.perf_counter() - t)
            ms[name] = round(1000 * statistics.median(times), 2)
        print(f"{w}x{h}: {ms} ms/frame")


def main() -> None:
    import tempfile

    import torch
    from quality_chroma_layouts import psnr, ycbcr
    from quality_real_degradations import CLIPS, FRAMES, VIDEOS, H, W

    from models.registry import get_spec
    from vsr_pipeline.degrade import degrade_bi
    from vsr_pipeline.engine import load_upscaler_model, run_model
    from vsr_pipeline.media import FrameReader
    from vsr_pipeline.metrics import psnr_y

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=MODELS, help="MODEL or MODEL:WEIGHTS")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "chroma_upsampling.json")
    ap.add_argument("--speed", action="store_true", help="only time the conversion")
    args = ap.parse_args()
    if args.speed:
        speed()
        return
    torch.set_num_threads(max(1, torch.get_num_threads()))

    clips = []
    for _, file, first, top, left in CLIPS:
        with FrameReader(VIDEOS / file) as r:
            r.read(first)
            frames, _ = r.read(FRAMES)
        gt = np.ascontiguousarray(frames[:, top : top + H, left : left + W])
        clips.append((gt, degrade_bi(gt, 4)))
    ups = upsamplers()
    inputs: dict[str, list[np.ndarray]] = {"444": [lr for _, lr in clips]}
    with tempfile.TemporaryDirectory() as tmp:
        for label, crf in (("420", None), ("420+h264:23", 23), ("420+h264:28", 28)):
            for name in ups:
                inputs[f"{label} {name}"] = []
            for k, (_, lr) in enumerate(clips):
                path = encode(lr, Path(tmp) / f"{k}_{crf}.mkv", crf)
                planes = planes_of(path)
                for name, up in ups.items():
                    inputs[f"{label} {name}"].append(np.stack([to_rgb(y, u, v, up) for y, u, v in planes]))
                with FrameReader(path) as r:  # the pipeline's own conversion
                    gap = np.abs(r.read(100)[0].astype(int) - inputs[f"{label} cubic"][-1]).max()
                print(f"reader against cubic, {label}, clip {k}: at most {gap} level(s) apart", flush=True)
                assert gap <= 2, gap  # the reader rounds interpolated chroma to 8 bits
    result: dict[str, dict[str, dict[str, float]]] = {}
    for entry in args.models:
        name, _, weights = entry.partition(":")
        spec = get_spec(name)
        net = load_upscaler_model(name, weights or None, 4)
        result[entry] = {}
        for label, lrs in inputs.items():
            y, cbcr = [], []
            for (gt, _), lr in zip(clips, lrs, strict=True):
                with torch.inference_mode():
                    sr = run_model(net, spec.temporal, lr, torch.device("cpu"), 4, spec.radius)
                y.append(float(np.mean([psnr_y(a, b, crop_border=4) for a, b in zip(sr, gt, strict=True)])))
                cbcr.append(float(np.mean([psnr(ycbcr(a)[4:-4, 4:-4, 1:], ycbcr(b)[4:-4, 4:-4, 1:])
                                           for a, b in zip(sr, gt, strict=True)])))
            result[entry][label] = {"psnr_y": round(float(np.mean(y)), 3),
                                    "psnr_cbcr": round(float(np.mean(cbcr)), 3)}
            print(f"{entry:32s} {label:28s} Y {np.mean(y):.3f}  CbCr {np.mean(cbcr):.3f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"clips": [c[0] for c in CLIPS], "scores": result}, indent=1) + "\n")


if __name__ == "__main__":
    main()
