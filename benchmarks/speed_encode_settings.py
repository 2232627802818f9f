"""CPU cost of the pipeline's H.264 encode of ESPCN x4 output, by segment length and x264 threads.

    .venv/bin/python benchmarks/speed_encode_settings.py [--frames 48] [--repeats 3] [--out FILE.json]
    .venv/bin/python benchmarks/speed_encode_settings.py --presets ultrafast,superfast,veryfast,medium \
        --out benchmarks/results/encode_presets.json

On two cores the encoder shares the CPU with the model, so what bounds ESPCN's pipeline is the CPU seconds
x264 spends per frame, not its wall time. Frames: the first ``--frames`` frames of bikes.mp4 (640x272)
upscaled by the shipped ESPCN x4 (2560x1088, as the pipeline writes them). Each variant encodes them through
``VideoWriter`` (crf 18, preset medium, what ``vsr upscale`` does) as segments of ``seg`` frames, each a new
file and a new x264 instance (the pipeline writes one segment per chunk; ESPCN's default chunk at this size
is 16), with x264's own threads (``threads`` auto: frame threads + lookahead) or ``threads=1``. Reported per
variant, median of ``--repeats`` after one warm-up: CPU seconds per frame of this process (all its threads,
``time.process_time``), wall seconds per frame, bytes per frame and Y-PSNR of the decoded output against the
frames given (the quality the settings buy). ``--presets`` instead compares x264 presets (16-frame segments,
x264's own threads): what ESPCN's pipeline could reach on this machine with each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from vsr_pipeline.media import FrameReader, VideoWriter, probe
from vsr_pipeline.metrics import psnr_y

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT.parent / "shared" / "data" / "videos" / "bikes.mp4"


def espcn_frames(n: int) -> tuple[np.ndarray, list[int]]:
    """The first ``n`` frames of the clip through the shipped ESPCN x4, and their pts."""
    from vsr_pipeline.engine import Engine

    with FrameReader(CLIP) as reader:
        lr, pts = reader.read(n)
    up = Engine("espcn", None, 4, "cpu", threads=os.cpu_count() or 1, precision="fp32-cl")
    return up.process(slice(0, len(lr)), slice(0, len(lr)), lr), [int(p) for p in pts]


def encode(frames: np.ndarray, pts: list[int], seg: int, threads: int, folder: Path,
           preset: str = "medium") -> tuple[float, float, int, float]:
    """(CPU s, wall s, bytes, Y-PSNR) of encoding ``frames`` as segments of ``seg`` frames."""
    info = probe(CLIP)
    h, w = frames.shape[1:3]
    options = {"threads": str(threads)} if threads > 0 else {}
    paths = []
    c0, w0 = time.process_time(), time.perf_counter()
    for i, start in enumerate(range(0, len(frames), seg)):
        path = folder / f"seg{i:03d}.mp4"
        with VideoWriter(path, w, h, info.time_base, info.fps, crf=18, preset=preset, options=options,
                         overwrite=True) as writer:
            writer.write(frames[start:start + seg], pts[start:start + seg])
        paths.append(path)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    size = sum(p.stat().st_size for p in paths)
    decoded = []
    for p in paths:
        with FrameReader(p) as reader:
            decoded.append(reader.read(seg)[0])
    out = np.concatenate(decoded)
    quality = float(np.mean([psnr_y(a, b, crop_border=4) for a, b in zip(out, frames, strict=True)]))
    for p in paths:
        p.unlink()
    return cpu, wall, size, quality


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--presets", default="", help="comma-separated x264 presets to compare instead")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "encode_settings.json"))
    args = ap.parse_args()
    frames, pts = espcn_frames(args.frames)
    presets = [p for p in args.presets.split(",") if p]
    variants = ([(16, 0, p) for p in presets] if presets
                else [(seg, threads, "medium") for seg in (16, args.frames) for threads in (0, 1)])
    result: dict[str, object] = {"frames": len(frames), "size": list(frames.shape[1:3]),
                                 "loadavg_start": os.getloadavg(), "variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for seg, threads, preset in variants:
            encode(frames, pts, seg, threads, Path(tmp), preset)  # warm-up
        runs: dict[tuple[int, int, str], list[tuple[float, float, int, float]]] = {v: [] for v in variants}
        for _ in range(args.repeats):  # interleaved: load changes hit every variant alike
            for v in variants:
                runs[v].append(encode(frames, pts, v[0], v[1], Path(tmp), v[2]))
    n = len(frames)
    for (seg, threads, preset), rs in runs.items():
        name = f"seg{seg}_threads{'auto' if threads == 0 else threads}" + (f"_{preset}" if presets else "")
        row = {
            "cpu_s_per_frame": round(statistics.median(r[0] for r in rs) / n, 4),
            "wall_s_per_frame": round(statistics.median(r[1] for r in rs) / n, 4),
            "kbytes_per_frame": round(statistics.median(r[2] for r in rs) / n / 1024, 1),
            "psnr_y": round(statistics.median(r[3] for r in rs), 3),
        }
        result["variants"][name] = row  # type: ignore[index]
        print(f"{name:22s} " + "  ".join(f"{k} {v}" for k, v in row.items()))
    result["loadavg_end"] = os.getloadavg()
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
