"""Time to the first output frame and throughput of the streaming path: ``cat clip.ts | vsr upscale - ...``.

For each model a short MPEG-TS clip of bikes.mp4 (scaled down, H.264) is piped into the real CLI (a new
process each run: model load included, as a user sees it) writing Matroska; the CLI's JSON gives
``first_frame_s`` (start of ``stream_upscale`` to the first output frame on disk), ``fps`` (frames out per
second of the run) and ``latency_frames`` (the model's bound: later frames needed before a frame can be
computed). The whole process's wall time is measured too (Python and torch start-up included). Median of
``--repeats`` runs. CPU only; results to benchmarks/results/stream_latency.json.

    nice -n 5 .venv/bin/python benchmarks/speed_stream_latency.py            # ~3-6 min on 2 busy cores
    nice -n 5 .venv/bin/python benchmarks/speed_stream_latency.py --quick    # espcn only, 1 run
    nice -n 5 .venv/bin/python benchmarks/speed_stream_latency.py --models espcn   # rerun one model's rows
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "videos" / "bikes.mp4"
RESULTS = ROOT / "benchmarks" / "results" / "stream_latency.json"

#: model -> (frames, LR width, extra CLI flags). BasicVSR is ~100x slower per pixel on a CPU: a smaller clip.
CASES: dict[str, tuple[int, int, list[str]]] = {
    "espcn": (50, 160, []),
    "vespcn": (50, 160, []),
    "basicvsr": (24, 80, []),
}


def make_clip(dst: Path, frames: int, width: int) -> None:
    """The first ``frames`` frames of bikes.mp4 at ``width`` (height kept in proportion, even), MPEG-TS."""
    with av.open(str(SHARED)) as c, av.open(str(dst), "w") as o:
        v = c.streams.video[0]
        s = o.add_stream("libx264", rate=v.average_rate, options={"crf": "18", "preset": "fast"})
        s.width, s.height, s.pix_fmt = width, width * v.height // v.width // 2 * 2, "yuv420p"
        for i, f in enumerate(c.decode(v)):
            if i == frames:
                break
            g = f.reformat(width=s.width, height=s.height, format="yuv420p")
            g.pts, g.time_base = f.pts, f.time_base
            o.mux(s.encode(g))
        o.mux(s.encode())


def run_once(clip: Path, out: Path, model: str, flags: list[str]) -> dict[str, float]:
    out.unlink(missing_ok=True)
    Path(f"{out}.vsr.json").unlink(missing_ok=True)  # the run's manifest: a rerun refuses to replace it
    cmd = f"cat {clip} | {sys.executable} -m vsr_pipeline.cli upscale - -o {out} --model {model} " \
          f"--device cpu --no-progress --json {' '.join(flags)}"
    t0 = time.perf_counter()
    run = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, cwd=ROOT, timeout=1800)
    wall = time.perf_counter() - t0
    if run.returncode != 0:
        raise SystemExit(f"{model}: {run.stderr.strip().splitlines()[-1]}")
    r = json.loads(run.stdout.strip().splitlines()[-1])
    return {"first_frame_s": r["first_frame_s"], "seconds": r["seconds"], "fps": r["fps"],
            "frames": r["frames_out"], "latency_frames": r["latency_frames"], "process_wall_s": wall,
            "width_in": r["width_in"], "height_in": r["height_in"], "chunk": r["chunk"],
            "padding": r["padding"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", nargs="*", default=list(CASES))
    ap.add_argument("--quick", action="store_true", help="espcn only, one run (a smoke test)")
    args = ap.parse_args()
    models, repeats = (["espcn"], 1) if args.quick else (args.models, args.repeats)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            frames, width, flags = CASES[model]
            clip = Path(tmp) / f"{model}.ts"
            make_clip(clip, frames, width)
            runs = [run_once(clip, Path(tmp) / "out.mkv", model, flags) for _ in range(repeats)]
            row = {k: runs[0][k] for k in ("frames", "width_in", "height_in", "latency_frames", "chunk",
                                            "padding")}
            for k in ("first_frame_s", "seconds", "fps", "process_wall_s"):
                row[k] = round(statistics.median(r[k] for r in runs), 3)
                row[f"{k}_runs"] = [round(r[k], 3) for r in runs]
            row["model"] = model
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)
    result = {
        "command": "cat clip.ts | vsr upscale - -o out.mkv --model MODEL --device cpu --json",
        "repeats": repeats,
        "conditions": {"cpus": os.cpu_count(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
                       "nice": os.nice(0), "python": platform.python_version(), "torch_threads": "all cores",
                       "note": "figures are wall-clock; load_avg_1m_at_end tells how busy the machine was"},
        "rows": rows,
    }
    if not args.quick:
        if RESULTS.exists() and set(models) != set(CASES):  # a subset rerun replaces those models' rows
            old = [r for r in json.loads(RESULTS.read_text())["rows"] if r["model"] not in models]
            result["rows"] = sorted(old + rows, key=lambda r: list(CASES).index(r["model"]))
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
