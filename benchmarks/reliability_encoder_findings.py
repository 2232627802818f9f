"""The figures docs/reliability.md gives for the encoder findings of 2026-12-05, measured again.

    python benchmarks/reliability_encoder_findings.py [--json PATH]

- ``mpeg2``: the 2 s demo clip (assets/bbb_demo_160x90.mp4) x4 with the bicubic model to MPEG-2 at crf 0,
  18, 30 (fixed quantiser crf / 6), RGB PSNR against the same job to lossless FFV1, and the bit rate.
- ``depth16``: a smooth 16-bit gradient scan (the tests' ``smooth_rgb16``, 4 frames 64x48) as a 16-bit PNG
  folder, x2 bicubic to FFV1 4:4:4 at 16 and 10 bits: error against the model's own uint16 output, in
  units of 65535 (mean, max).
- ``svt_realtime``: threads of this process with a realtime policy right after an SVT-AV1 encoder opened
  (run as root: SCHED_FIFO 99), and after ``ordinary_scheduling`` put them back.
- ``dnxhr_matrix``: the demo clip's first 10 frames x4 (bicubic) written to DNxHR HQ with the BT.709 matrix
  FFmpeg's decoder reads it with, and with the source's (untagged: BT.601), luma PSNR against those frames.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CLIP = ROOT / "assets" / "bbb_demo_160x90.mp4"


def rgb(path: Path, deep: bool = False) -> np.ndarray:
    from vsr_pipeline.media import FrameReader

    with FrameReader(path, deep=deep) as r:
        return r.read(r.info.frames)[0].astype(np.float64)


def psnr(a: np.ndarray, b: np.ndarray, top: float = 255.0) -> float:
    return round(float(10 * np.log10(top**2 / np.mean((a - b) ** 2))), 2)


def mpeg2(tmp: Path) -> dict[str, object]:
    from vsr_pipeline import UpscaleOptions, upscale

    base = UpscaleOptions(model="bicubic", scale=4, progress=False, overwrite=True)
    upscale(CLIP, tmp / "ref.mkv", UpscaleOptions(**{**base.__dict__, "codec": "ffv1"}))
    ref, out = rgb(tmp / "ref.mkv"), {}
    for crf in (0, 18, 30):
        path = tmp / f"m{crf}.mkv"
        upscale(CLIP, path, UpscaleOptions(**{**base.__dict__, "codec": "mpeg2video", "crf": crf}))
        out[f"crf{crf}"] = {"psnr_rgb": psnr(rgb(path), ref),
                            "mbit_s": round(path.stat().st_size * 8 / (len(ref) / 25) / 1e6, 2)}
    return out


def depth16(tmp: Path) -> dict[str, object]:
    import cv2
    import torch

    from models.sisr.bicubic import Bicubic
    from tests.test_bit_depth import smooth_rgb16
    from vsr_pipeline import UpscaleOptions, upscale
    from vsr_pipeline.engine import run_model

    frames = smooth_rgb16(4, 64, 48)
    (tmp / "scan").mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(tmp / "scan" / f"{i:04d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    want = run_model(Bicubic(2), "none", frames, torch.device("cpu"), batch=4, dtype=np.uint16)
    out = {}
    for bits in (16, 10):
        path = tmp / f"d{bits}.mkv"
        upscale(tmp / "scan", path, UpscaleOptions(model="bicubic", scale=2, codec="ffv1", chroma="444",
                                                   bit_depth=bits, progress=False, overwrite=True))
        err = np.abs(rgb(path, deep=True) - want)
        out[f"bits{bits}"] = {"mean": round(float(err.mean()), 2), "max": int(err.max())}
    return out


def realtime_threads() -> int:
    count = 0
    for name in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            count += os.sched_getscheduler(int(name)) in (os.SCHED_FIFO, os.SCHED_RR)
    return count


def svt_realtime() -> dict[str, object]:
    import av

    from vsr_pipeline.media.encoder_options import ordinary_scheduling

    cc = av.CodecContext.create("libsvtav1", "w")
    cc.width, cc.height, cc.pix_fmt, cc.time_base = 320, 180, "yuv420p", Fraction(1, 25)
    frame = av.VideoFrame(320, 180, "yuv420p")
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    frame.pts = 0
    cc.encode(frame)  # opens the encoder: its threads start
    before, threads = realtime_threads(), len(os.listdir("/proc/self/task"))
    ordinary_scheduling()
    after = realtime_threads()
    cc.encode(None)
    return {"root": os.geteuid() == 0, "threads": threads, "realtime_after_open": before,
            "realtime_after_reset": after}


def dnxhr_matrix(tmp: Path) -> dict[str, object]:
    import cv2

    from vsr_pipeline.media import VideoWriter, probe
    from vsr_pipeline.media import writer as writer_module
    from vsr_pipeline.metrics import rgb_to_y

    info = probe(CLIP)
    lr = rgb(CLIP)[:10].astype(np.uint8)
    hr = np.stack([cv2.resize(f, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC) for f in lr])
    out = {}
    for name, fixed in (("bt709_as_read", {"dnxhd": 1}), ("source_matrix", {})):
        saved = dict(writer_module.FIXED_MATRIX)
        writer_module.FIXED_MATRIX.clear()
        writer_module.FIXED_MATRIX.update(fixed)
        try:
            path = tmp / f"dnx_{name}.mov"
            with VideoWriter.like(path, info, hr.shape[2], hr.shape[1], copy_streams=False, codec="dnxhd",
                                  overwrite=True) as w:
                w.write(hr, list(range(0, 512 * len(hr), 512)))
        finally:
            writer_module.FIXED_MATRIX.clear()
            writer_module.FIXED_MATRIX.update(saved)
        got = rgb(path)
        out[name] = {"psnr_y": psnr(np.stack([rgb_to_y(f) for f in got]),
                                    np.stack([rgb_to_y(f.astype(np.float64)) for f in hr]))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        result = {"svt_realtime": svt_realtime(), "mpeg2": mpeg2(tmp), "depth16": depth16(tmp),
                  "dnxhr_matrix": dnxhr_matrix(tmp)}
    from vsr_pipeline import release_warm_upscalers

    release_warm_upscalers()
    ray.shutdown()
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
