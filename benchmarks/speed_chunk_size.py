"""A recurrent model's default chunk on real-size frames: `vsr upscale` with the old rule's chunk and today's.

    python benchmarks/speed_chunk_size.py ../shared/data/videos/bikes.mp4 [--frames 48] [--downscale 1]
        [--model basicvsr] [--old-chunk 8] [--repeats 1] [--json]

Each run is a fresh `vsr upscale` process (Ray started and stopped, as a user runs it) on the first
`--frames` frames of the clip (MATLAB-bicubic shrunk `--downscale` times; 1 keeps BikeS's 640x272), with
`--chunk OLD` and then with no `--chunk` (the default for this machine's memory), in turns. Recorded per
run: the job's seconds and wall time, the chunk and chunk count, frames computed per output frame
(recurrent padding is recomputed per chunk) and the peak PSS of the process tree (`memory_peak.measure`'s
sampling). The two outputs are compared frame by frame (Y-PSNR of one against the other): chunking
changes only the frames near a chunk's edge, and little.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from memory_peak import short_clip

from vsr_pipeline.media import FrameReader
from vsr_pipeline.metrics import psnr_y
from vsr_pipeline.plan import plan_chunks
from vsr_pipeline.procstat import memory_kb, process_tree


def run(clip: Path, out: Path, model: str, chunk: int | None) -> dict:
    cmd = [sys.executable, "-m", "vsr_pipeline.cli", "upscale", str(clip), "-o", str(out), "--model", model,
           "--json", "--no-progress", "--overwrite", *(["--chunk", str(chunk)] if chunk else [])]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, sum(memory_kb(p)[1] for p in process_tree(proc.pid)) / 1024)
        time.sleep(0.2)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode})")
    res = json.loads(proc.stdout.read().strip().splitlines()[-1])
    chunks = plan_chunks(res["frames_in"], res["chunk"], res["padding"])
    computed = sum(c.read_stop - c.read_start for c in chunks)
    Path(str(out) + ".vsr.json").unlink(missing_ok=True)
    return {"chunk": res["chunk"], "chunks": res["chunks"], "padding": res["padding"],
            "frames_computed_per_frame": round(computed / res["frames_in"], 3), "seconds": res["seconds"],
            "wall_s": round(wall, 2), "model_seconds": res["model_seconds"], "precision": res["precision"],
            "threads": res["threads"], "peak_pss_mb": round(peak, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("clip", type=Path)
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--downscale", type=int, default=1)
    p.add_argument("--model", default="basicvsr")
    p.add_argument("--old-chunk", type=int, default=8)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    runs: dict[str, list[dict]] = {"old": [], "default": []}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        clip = short_clip(args.clip, args.frames, args.downscale, tmp / "clip.mp4")
        for _ in range(args.repeats):
            for name, chunk in (("old", args.old_chunk), ("default", None)):
                runs[name].append(run(clip, tmp / f"{name}.mp4", args.model, chunk))
                print(name, runs[name][-1], file=sys.stderr, flush=True)
        with FrameReader(tmp / "old.mp4") as a, FrameReader(tmp / "default.mp4") as b:
            old, _ = a.read(args.frames)
            new, _ = b.read(args.frames)
        per_frame = [psnr_y(x, y, crop_border=4) for x, y in zip(old, new, strict=True)]
    differ = [v for v in per_frame if np.isfinite(v)]
    median = {k: statistics.median(r["seconds"] for r in v) for k, v in runs.items()}
    report = {
        "model": args.model, "clip": str(args.clip), "frames": args.frames, "downscale": args.downscale,
        "runs": runs, "median_seconds": median,
        "speedup": round(median["old"] / median["default"], 3),
        # one output against the other; identical frames (infinite PSNR) are counted, not averaged
        "outputs_y_psnr_db": {"identical_frames": sum(1 for v in per_frame if not np.isfinite(v)),
                              "mean_of_others": round(float(np.mean(differ)), 2) if differ else None,
                              "min": round(float(np.min(differ)), 2) if differ else None},
        "command": "python benchmarks/speed_chunk_size.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(report) if args.json else json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
