"""Where BasicVSR's pipeline loses to the model alone: four controlled checks (docs/benchmarks.md 8.3h).

    .venv/bin/python benchmarks/speed_pipeline_gap.py [--frames 60] [--repeats 5] [--out FILE]

BasicVSR x4 (REDS4 weights, bf16 with fp32 islands, 2 threads, the actor's heap reuse: the pipeline's CPU
defaults) on the first ``--frames`` frames of bikes.mp4 shrunk 4x (68x160, MATLAB bicubic), one chunk:

- ``actor_vs_driver``: the same call in this process and in a Ray actor built as the pipeline builds it,
  alternating; the actor's time is its own forward time (``Upscaler.stats``), as ``vsr bench`` reports it.
- ``fresh_actor``: successive calls of a freshly started actor (what its first call pays: page faults of a
  new heap, oneDNN primitives), ``--repeats`` // 2 actors (at least 2).
- ``beside_x264``: the call in this process alone, and beside a subprocess that encodes ``--side-frames``
  640x272 frames with x264 medium (the encoder's work for the pipeline's first chunk), at nice 0 and nice 19;
  the subprocess reports its own CPU time.
- ``actor_start``: a fresh Ray actor's start-up split into Ray's part (request to the actor's code
  running), ``import torch``, and building the upscaler's ``Engine`` (model, weights, precision).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT.parent / "shared" / "data" / "videos" / "bikes.mp4"

SETTINGS: dict[str, Any] = {"threads": 2, "batch": 4, "precision": "bf16", "reuse_memory": True}


def side_encode(frames: int) -> dict[str, float]:
    """x264 medium, crf 18, of ``frames`` 640x272 frames of bikes.mp4 (60 distinct, cycled); this
    process's CPU seconds for the encode only (imports and decode excluded)."""
    import av

    from vsr_pipeline.media import FrameReader

    with FrameReader(CLIP) as reader:
        rgb, _ = reader.read(60)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, av.open(str(Path(tmp) / "side.mp4"), "w") as dst:
        stream = dst.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = rgb.shape[2], rgb.shape[1], "yuv420p"
        stream.codec_context.options = {"crf": "18", "preset": "medium"}
        for i in range(frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb[i % len(rgb)], format="rgb24")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    return {"cpu_s": round(time.process_time() - cpu0, 3), "wall_s": round(time.perf_counter() - wall0, 3)}


class StartProbe:
    """Ray actor that times its own start: when its code first runs, after ``import torch``, after
    building the upscaler's Engine (epoch seconds, to compare with the driver's request time)."""

    def __init__(self) -> None:
        self.entered = time.time()
        import torch  # noqa: F401  (the import is what is timed)

        self.torch_done = time.time()
        from vsr_pipeline.engine import Engine

        self.up = Engine("basicvsr", None, 4, "cpu", **SETTINGS)
        self.built = time.time()

    def times(self) -> tuple[float, float, float]:
        return self.entered, self.torch_done, self.built


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--side-frames", type=int, default=250)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "pipeline_gap.json")
    ap.add_argument("--side", type=int, help=argparse.SUPPRESS)  # internal: be the x264 subprocess
    ap.add_argument("--nice", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side is not None:
        os.nice(args.nice)
        print(json.dumps(side_encode(args.side)))
        return

    import ray

    from vsr_pipeline.bench import make_clip
    from vsr_pipeline.cluster import ray_session, reporting_errors
    from vsr_pipeline.engine import Engine
    from vsr_pipeline.media import FrameReader
    from workers.upscaler import Upscaler

    n = args.frames
    result: dict[str, Any] = {"frames": n, "size": None, "settings": SETTINGS, "cpus": os.cpu_count(),
                              "loadavg_start": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        clip = make_clip(str(CLIP), n, Path(tmp) / "clip.mp4", downscale=4)
        with FrameReader(clip) as reader:
            frames, _ = reader.read(n)
    result["size"] = f"{frames.shape[2]}x{frames.shape[1]}"
    whole = (slice(0, n), slice(0, n))
    up = Engine("basicvsr", None, 4, "cpu", **SETTINGS)
    up.process(*whole, frames)  # warm: this process's heap and primitives, as vsr bench's model-only

    def here() -> float:
        s = time.perf_counter()
        up.process(*whole, frames)
        return time.perf_counter() - s

    def in_actor(actor: Any, ref: Any) -> float:
        before = ray.get(actor.stats.remote())["busy_s"]
        ray.get(actor.process.remote(*whole, ref))
        return float(ray.get(actor.stats.remote())["busy_s"]) - float(before)

    with ray_session(None):
        make = ray.remote(num_cpus=1)(reporting_errors(Upscaler))
        ref = ray.put(frames)

        # actor_start first: the session's prestarted workers are still there, as for a CLI job's first actor
        starts = []
        for _ in range(3):
            asked = time.time()
            probe = ray.remote(num_cpus=1)(StartProbe).remote()
            entered, torch_done, built = ray.get(probe.times.remote())
            starts.append({"ray_s": entered - asked, "import_torch_s": torch_done - entered,
                           "build_s": built - torch_done, "total_s": built - asked})
            ray.kill(probe)
            time.sleep(1)
        result["actor_start"] = {"runs": [{k: round(v, 3) for k, v in s.items()} for s in starts],
                                 **{k: round(statistics.median(s[k] for s in starts), 3) for k in starts[0]}}
        print("actor_start", result["actor_start"], flush=True)

        actor = make.remote("basicvsr", None, 4, "cpu", **SETTINGS)
        in_actor(actor, ref)  # warm, like the driver's
        pairs = []
        for _ in range(args.repeats):
            pairs.append({"driver_s": here(), "actor_s": in_actor(actor, ref)})
            print("actor_vs_driver", pairs[-1], flush=True)
        ray.kill(actor)
        ratios = [p["actor_s"] / p["driver_s"] for p in pairs]
        result["actor_vs_driver"] = {"pairs": [{k: round(v, 3) for k, v in p.items()} for p in pairs],
                                     "actor_over_driver": [round(r, 3) for r in ratios],
                                     "median": round(statistics.median(ratios), 3)}

        fresh = []
        for _ in range(max(2, args.repeats // 2)):
            actor = make.remote("basicvsr", None, 4, "cpu", **SETTINGS)
            ray.get(actor.ready.remote())
            fresh.append([round(in_actor(actor, ref), 3) for _ in range(3)])
            print("fresh_actor", fresh[-1], flush=True)
            ray.kill(actor)
        result["fresh_actor"] = {
            "calls_s": fresh,
            "first_minus_second_s": round(statistics.median(c[0] - c[1] for c in fresh), 3),
            "first_minus_third_s": round(statistics.median(c[0] - c[2] for c in fresh), 3),
        }

    beside: dict[str, list[dict[str, Any]]] = {"alone": [], "nice0": [], "nice19": []}
    for _ in range(args.repeats):
        for name in beside:
            proc = None
            if name != "alone":
                proc = subprocess.Popen(
                    [sys.executable, __file__, "--side", str(args.side_frames), "--nice", name[4:]],
                    stdout=subprocess.PIPE, text=True,
                )
                time.sleep(1.5)  # its imports and decode, so the encode itself overlaps the call
            row: dict[str, Any] = {"model_s": round(here(), 3)}
            if proc is not None:
                out, _ = proc.communicate()
                row.update(json.loads(out.strip().splitlines()[-1]))
            beside[name].append(row)
            print("beside_x264", name, row, flush=True)
    model_s = {k: statistics.median(r["model_s"] for r in v) for k, v in beside.items()}
    encode_cpu = {k: statistics.median(r["cpu_s"] for r in v) for k, v in beside.items() if k != "alone"}
    result["beside_x264"] = {
        "runs": beside,
        **{f"{k}_model_s": round(v, 3) for k, v in model_s.items()},
        **{f"{k}_encode_cpu_s": round(v, 3) for k, v in encode_cpu.items()},
        # the model's extra wall time per CPU second the encode took: 0.5 is plain sharing of 2 cores
        **{f"{k}_extra_per_encode_cpu_s": round((model_s[k] - model_s["alone"]) / v, 3)
           for k, v in encode_cpu.items()},
    }
    result["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    skip = ("actor_vs_driver", "beside_x264")
    print(json.dumps({k: v for k, v in result.items() if k not in skip}, indent=1))
    print("actor/driver median", result["actor_vs_driver"]["median"])
    print({k: v for k, v in result["beside_x264"].items() if k != "runs"})


if __name__ == "__main__":
    main()
