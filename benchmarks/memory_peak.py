"""Peak memory of `vsr upscale` on a clip and on the same clip looped N times.

    python benchmarks/memory_peak.py CLIP [--frames 30 --downscale 8] [--loops 10] [--model basicvsr] [--json]

The short clip is the first `--frames` frames of CLIP shrunk `--downscale` times (MATLAB bicubic,
so a CPU run stays short); the long clip repeats its packets `--loops` times.

Memory is the peak, over time, of the summed PSS (proportional set size, so Ray's shared
object store is not counted twice) of the `vsr` process and every process it started
(raylet, GCS, actors), sampled every 0.2 s from /proc. Linux only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

from vsr_pipeline.degrade import crop_to_multiple, degrade_bi
from vsr_pipeline.media import FrameReader, VideoWriter
from vsr_pipeline.procstat import memory_kb, process_tree


def loop_clip(clip: Path, loops: int, out: Path) -> Path:
    """Concatenate the clip's video packets `loops` times with continuous timestamps (no audio)."""
    with av.open(str(clip)) as src, av.open(str(out), "w") as dst:
        vin = src.streams.video[0]
        vout = dst.add_stream_from_template(vin)
        packets = [p for p in src.demux(vin) if p.size]
        step = max(p.pts for p in packets) - min(p.pts for p in packets) + (packets[1].pts - packets[0].pts)
        for i in range(loops):
            for p in packets:
                p.stream = vout
                p.pts += step if i else 0
                p.dts += step if i else 0
                dst.mux(p)
    return out


def short_clip(clip: Path, frames: int, downscale: int, out: Path) -> Path:
    with FrameReader(clip) as reader:
        rgb, pts = reader.read(frames)
        info = reader.info
    lr = degrade_bi(crop_to_multiple(rgb, downscale), downscale)
    with VideoWriter.like(out, info, width=lr.shape[2], height=lr.shape[1], crf=12, copy_streams=False) as w:
        w.write(lr, pts)
    return out


def measure(clip: Path, model: str, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "vsr_pipeline.cli",
            "upscale",
            str(clip),
            "-o",
            f"{tmp}/out.mp4",
            "--model",
            model,
            "--json",
            "--no-progress",
            *extra,
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        peak = 0.0
        while proc.poll() is None:
            peak = max(peak, sum(memory_kb(p)[1] for p in process_tree(proc.pid)) / 1024)
            time.sleep(0.2)
        result = json.loads(proc.stdout.read().strip().splitlines()[-1])
    return {"frames": result["frames_in"], "seconds": result["seconds"], "peak_pss_mb": round(peak, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("clip", type=Path)
    p.add_argument("--loops", type=int, default=10)
    p.add_argument("--frames", type=int, default=30)
    p.add_argument("--downscale", type=int, default=8)
    p.add_argument("--model", default="basicvsr")
    p.add_argument("--json", action="store_true")
    p.add_argument("extra", nargs="*", help="more `vsr upscale` flags, after --")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clip = short_clip(args.clip, args.frames, args.downscale, Path(tmp, "short.mp4"))
        long_clip = loop_clip(clip, args.loops, Path(tmp, "looped.mp4"))
        short = measure(clip, args.model, args.extra)
        long = measure(long_clip, args.model, args.extra)
    report = {"short": short, "long": long, "ratio": round(long["peak_pss_mb"] / short["peak_pss_mb"], 3)}
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
