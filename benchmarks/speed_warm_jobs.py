"""Seconds per short job when the caller keeps Ray running: each job starting its own actors (cold) against
the next job taking the previous one's warm upscaler and, since 2026-12-05, its idle decoder and encoder
(``vsr_pipeline.warm_actors``).

    python benchmarks/speed_warm_jobs.py [--model espcn] [--frames 16] [--jobs 5] [--json PATH]
    python benchmarks/speed_warm_jobs.py --swap-from fsrcnn [--model espcn] ...

The clip: the first ``--frames`` frames of bikes.mp4, MATLAB bicubic x4 down (160x68), x264. Ray starts once
in this process (as a notebook or service would); then ``--jobs`` rounds of: a cold job (``WARM_SECONDS = 0``:
it starts its upscaler, decoder and encoder and kills them), a job that starts them and leaves them warm (not
measured), and a warm job that takes them. Rounds interleave the two kinds so a slow spell of the machine
hits both. Reported: the median seconds of each, and their ratio.

``--swap-from B``: the job before each measured warm one runs model B, so the warm job's upscaler loads
``--model`` in its own process (``Upscaler.swap``, since 2026-12-05); a third kind, ``new_upscaler``, is the
same but with the parked upscaler killed first (what a job of another model did before: a new upscaler
process, the idle decoder and encoder still taken).
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

ROOT = Path(__file__).resolve().parent.parent


def make_clip(path: Path, frames: int) -> None:
    import av

    from vsr_pipeline.degrade import degrade_bi
    from vsr_pipeline.media import FrameReader

    with FrameReader(ROOT.parent / "shared" / "data" / "videos" / "bikes.mp4") as reader:
        hr = reader.read(frames)[0]
    lr = degrade_bi(np.ascontiguousarray(hr), 4)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = lr.shape[2], lr.shape[1], "yuv420p"
        stream.options = {"crf": "18"}
        for f in lr:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        out.mux(stream.encode(None))


def main() -> None:
    import ray
    import torch

    from vsr_pipeline import UpscaleOptions, release_warm_upscalers, upscale, warm_actors

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="espcn")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--jobs", type=int, default=5)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--swap-from", help="the model of the job before each warm one (another: a swap)")
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level="ERROR")
    opts = UpscaleOptions(model=args.model, scale=4, progress=False, overwrite=True)
    before = UpscaleOptions(model=args.swap_from or args.model, scale=4, progress=False, overwrite=True)
    seconds: dict[str, list[float]] = {"cold": [], "warm": []}
    if args.swap_from:
        seconds["new_upscaler"] = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "in.mp4"
        make_clip(clip, args.frames)

        def job(kind: str, k: int, job_opts: UpscaleOptions = opts) -> float:
            warm_actors.WARM_SECONDS = 0.0 if kind == "cold" else 60.0
            if kind == "new_upscaler":
                warm_actors.take(None)  # kills the parked upscaler; the idle decoder and encoder stay
            start = time.perf_counter()
            upscale(clip, Path(tmp) / f"{kind}{k}.mp4", job_opts)
            took = time.perf_counter() - start
            print(f"{kind} job {k}: {took:.2f} s", flush=True)
            return took

        for k in range(args.jobs):
            seconds["cold"].append(job("cold", k))  # starts its actor and kills it at the end
            for kind in seconds:
                if kind != "cold":
                    job("setup", -k - 1, before)  # starts an actor and leaves it warm (not measured)
                    seconds[kind].append(job(kind, k))  # takes it (warm), or a new one (new_upscaler)
                    release_warm_upscalers()
    release_warm_upscalers()
    ray.shutdown()
    med = {kind: round(statistics.median(v), 3) for kind, v in seconds.items()}
    result = {"model": args.model, "swap_from": args.swap_from, "lr_size": "68x160", "frames": args.frames,
              "jobs": args.jobs, "median_s": med,
              "runs_s": {k: [round(x, 3) for x in v] for k, v in seconds.items()},
              "cold_over_warm": round(med["cold"] / med["warm"], 2),
              **({"new_upscaler_over_warm": round(med["new_upscaler"] / med["warm"], 2)} if args.swap_from
                 else {}),
              "capability": torch.backends.cpu.get_cpu_capability(), "cpus": os.cpu_count(),
              "torch": torch.__version__, "ray": ray.__version__, "date": time.strftime("%Y-%m-%d")}
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
