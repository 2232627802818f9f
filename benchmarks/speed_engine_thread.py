"""Which thread an in-process engine is built on: a forward pass on a thread other than the builder's.

    python benchmarks/speed_engine_thread.py [--repeats 3] [--json PATH]

The live-stream executor (``vsr_pipeline.executors.LocalExecutor``) runs the engine on a thread of its own.
Until 2026-12-04 the engine was built on the caller's thread and run on that one; now it is built on the
thread it runs on (``executors.engine_thread``). Four ways, each in a fresh process (an OpenMP team, once
made, lives as long as its thread; a thread keeps its malloc arena): ``main`` (built and run on the main
thread, like a Ray actor, whose constructor and methods run on its main thread), ``built elsewhere`` (built
on the main thread, run on a worker thread: the old live path), ``own thread`` (built and run on one worker
thread) and ``own thread, one arena`` (the same after ``vsr_pipeline.heap.single_arena()``: the live path
now). Seconds per output frame of ``Engine.process`` on real frames of bikes.mp4 (MATLAB-bicubic
downscaled), warm, median of ``--repeats`` calls.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT.parent / "shared" / "data" / "videos" / "bikes.mp4"
#: (model, precision, LR width, LR height, frames)
CASES = [("basicvsr", "bf16", 160, 68, 24), ("basicvsr", "fp32-cl", 160, 68, 12),
         ("espcn", "fp32-cl", 640, 272, 16)]
MODES = ("main", "built elsewhere", "own thread", "own thread, one arena")


def child(model: str, precision: str, width: int, height: int, frames: int, mode: str, repeats: int) -> None:
    """One case in this process: prints seconds per frame of each timed call as JSON."""
    if mode.endswith("one arena"):  # first, as the live path does: before any thread (FFmpeg's) allocates
        from vsr_pipeline.heap import single_arena

        single_arena()
    import concurrent.futures as cf

    import numpy as np

    from vsr_pipeline.degrade import degrade_bi
    from vsr_pipeline.engine import Engine
    from vsr_pipeline.media import FrameReader

    with FrameReader(CLIP) as reader:
        hr = reader.read(frames)[0]
    factor = hr.shape[2] // width
    if factor > 1:
        hr = np.ascontiguousarray(degrade_bi(hr[:, : height * factor, : width * factor], factor))
    lr = hr
    every = slice(0, frames)

    def build() -> Engine:
        return Engine(model, None, 4, "cpu", batch=4, precision=precision, reuse_memory=True)

    def timed(engine: Engine) -> list[float]:
        engine.process(every, every, lr)  # warm-up
        out = []
        for _ in range(repeats):
            s = time.perf_counter()
            engine.process(every, every, lr)
            out.append((time.perf_counter() - s) / frames)
        return out

    if mode == "main":
        seconds = timed(build())
    else:
        with cf.ThreadPoolExecutor(1) as worker:
            engine = build() if mode == "built elsewhere" else worker.submit(build).result()
            seconds = worker.submit(timed, engine).result()
    print(json.dumps(seconds))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        model, precision, w, h, n, mode = args.child
        child(model, precision, int(w), int(h), int(n), mode, args.repeats)
        return
    rows = []
    for model, precision, w, h, n in CASES:
        row: dict[str, object] = {"model": model, "precision": precision, "lr_size": f"{w}x{h}", "frames": n}
        for mode in MODES:
            out = subprocess.run(
                [sys.executable, __file__, "--repeats", str(args.repeats), "--child", model, precision,
                 str(w), str(h), str(n), mode],
                cwd=ROOT, capture_output=True, text=True, check=True,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
            runs = json.loads(out.stdout.strip().splitlines()[-1])
            row[mode] = round(statistics.median(runs), 4)
            row[f"{mode} runs"] = [round(v, 4) for v in runs]
        for mode in MODES[1:]:
            row[f"{mode} / main"] = round(float(row[mode]) / float(row["main"]), 2)  # type: ignore[arg-type]
        print(json.dumps({k: v for k, v in row.items() if not k.endswith("runs")}), flush=True)
        rows.append(row)
    import torch

    result = {"rows": rows, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
              "torch": torch.__version__, "loadavg": [round(v, 2) for v in os.getloadavg()],
              "date": time.strftime("%Y-%m-%d"), "unit": "seconds per output frame"}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
