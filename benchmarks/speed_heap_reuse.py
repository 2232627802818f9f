"""ESPCN x4 per-chunk time with glibc's malloc defaults and with the actor's heap reuse; the naive loop as a
script and in the bench's spawned child (docs/benchmarks.md section 8.3f).

    .venv/bin/python benchmarks/speed_heap_reuse.py [--frames 48] [--naive-runs 2] [--naive-only] [--out FILE]

- passes: in a fresh interpreter each, ``Engine("espcn").process`` (``vsr_pipeline.engine``) on the first
  ``--frames`` frames of bikes.mp4 (640x272) in chunks of 16, five passes, with ``reuse_memory`` off (glibc
  defaults) and on.
- naive: ``vsr_pipeline.bench.naive_loop`` on the same frames (a clip made once, by this parent), as a plain
  script in a fresh interpreter and through ``naive_in_fresh_process`` (what ``vsr bench`` times),
  alternating, ``--naive-runs`` times each (``--naive-only``: without the passes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT.parent / "shared" / "data" / "videos" / "bikes.mp4"


def passes(frames: int, reuse: bool) -> list[float]:
    from vsr_pipeline.engine import Engine
    from vsr_pipeline.media import FrameReader

    with FrameReader(CLIP) as reader:
        lr, _ = reader.read(frames)
    up = Engine("espcn", None, 4, "cpu", threads=os.cpu_count() or 1, precision="fp32-cl",
                reuse_memory=reuse)
    out = []
    for _ in range(5):
        t = time.perf_counter()
        for s in range(0, frames, 16):
            part = lr[s:s + 16]
            up.process(slice(0, len(part)), slice(0, len(part)), part)
        out.append(round(time.perf_counter() - t, 2))
    return out


def naive(clip: Path, child: bool) -> float:
    import torch

    from vsr_pipeline.bench import BenchOptions, naive_in_fresh_process, naive_loop
    from vsr_pipeline.engine import load_upscaler_model

    opts = BenchOptions(model="espcn", input=str(CLIP))
    threads = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        if child:
            res = naive_in_fresh_process("espcn", None, clip, Path(tmp) / "out.mp4", opts, threads)
        else:
            torch.set_num_threads(threads)
            net = load_upscaler_model("espcn", None, 4)
            res = naive_loop(net, "none", 0, clip, Path(tmp) / "out.mp4", opts)
    return round(float(res["seconds"]), 2)


def fresh(*args: str) -> object:
    """Run this script's ``--one`` mode in a new interpreter and return its JSON answer."""
    out = subprocess.run([sys.executable, __file__, "--one", *args], check=True, capture_output=True,
                         text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "heap_reuse.json"))
    ap.add_argument("--naive-runs", type=int, default=2, help="runs of each naive variant (alternating)")
    ap.add_argument("--naive-only", action="store_true", help="skip the malloc passes")
    ap.add_argument("--one", nargs=2, metavar=("WHAT", "FLAG"), help=argparse.SUPPRESS)
    ap.add_argument("--clip", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        what, flag = args.one[0], args.one[1] == "1"
        print(json.dumps(passes(args.frames, flag) if what == "passes" else naive(Path(args.clip), flag)))
        return
    from vsr_pipeline.bench import make_clip

    result: dict[str, object] = {"frames": args.frames, "loadavg_start": os.getloadavg()}
    if not args.naive_only:
        result["passes_glibc_defaults_s"] = fresh("passes", "0", "--frames", str(args.frames))
        result["passes_reuse_s"] = fresh("passes", "1", "--frames", str(args.frames))
    script, child = [], []
    with tempfile.TemporaryDirectory() as tmp:  # the clip made here: both variants start with a clean heap
        clip = str(make_clip(str(CLIP), args.frames, Path(tmp) / "clip.mp4"))
        for _ in range(args.naive_runs):
            script.append(fresh("naive", "0", "--clip", clip))
            child.append(fresh("naive", "1", "--clip", clip))
    result["naive_script_s"], result["naive_spawned_child_s"] = script, child
    result["loadavg_end"] = os.getloadavg()
    print(json.dumps(result))
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
