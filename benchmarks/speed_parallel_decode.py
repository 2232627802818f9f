"""Parallel decoding throughput: 1, 2 and 4 Ray decoder actors seeking into one file (issue 8).

For every clip in ../shared/data/videos (plus one synthetic 640x360 H.264 clip with a keyframe every 12
frames, made here with PyAV), decodes all frames in batches of ``--batch`` through ``read_batch`` on D
actors (num_cpus=1 each) with the batches split by ``assign_batches``, checks frames and pts equal the
sequential ``FrameReader`` decode, and reports frames/s (median of ``--repeats`` after one warm-up run,
counts interleaved; actors started and ready before the clock starts) and the seek overhead (frames
decoded / frames delivered).

    nice -n 5 .venv/bin/python benchmarks/speed_parallel_decode.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import ray

from vsr_pipeline.media import FrameReader, probe
from vsr_pipeline.media.seek import scan, seek_problem
from workers.decoder import Decoder, assign_batches

ROOT = Path(__file__).resolve().parent.parent
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
OUT = ROOT / "benchmarks" / "results" / "parallel_decode.json"


def synthetic_clip(path: Path, frames: int = 240, width: int = 640, height: int = 360) -> Path:
    """Moving noise texture, libx264 with B-frames and a keyframe every 12 frames."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (height, width + frames, 3), np.uint8)
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = {"bf": "3", "crf": "23", "preset": "veryfast",
                     "x264-params": "keyint=12:min-keyint=12:scenecut=0"}
        for i in range(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(base[:, i : i + width]), format="rgb24")
            vf = vf.reformat(format="yuv420p")
            vf.pts = i
            out.mux(v.encode(vf))
        out.mux(v.encode())
    return path


def run_once(path: Path, decoders: int, batch: int, keys: list[int], total: int
             ) -> tuple[float, np.ndarray, list[int | None], int]:
    """Seconds to get every batch from ``decoders`` fresh actors, the frames, pts and frames decoded."""
    actor = ray.remote(num_cpus=1)(Decoder)
    actors = [actor.remote(str(path)) for _ in range(decoders)]
    ray.get([a.frames_decoded.remote() for a in actors])  # started and probed before timing
    owners = assign_batches(total, batch, decoders, keys)
    t0 = time.perf_counter()
    batches = ray.get([actors[o].read_batch.remote(b, batch) for b, o in enumerate(owners)])
    seconds = time.perf_counter() - t0
    decoded = sum(ray.get([a.frames_decoded.remote() for a in actors]))
    for a in actors:
        ray.kill(a)
    frames = np.concatenate([f for f, _ in batches])
    return seconds, frames, [p for _, b in batches for p in b], decoded


def bench_clip(path: Path, label: str, batch: int, repeats: int, counts: list[int]) -> dict[str, object]:
    info = probe(path)
    index = scan(path)
    problem = seek_problem(index, info)
    t0 = time.perf_counter()
    with FrameReader(path) as r:
        seq, pts = r.read(info.frames)
    seq_s = time.perf_counter() - t0
    row: dict[str, object] = {
        "clip": label, "size": f"{info.width}x{info.height}", "codec": info.codec, "frames": len(pts),
        "keyframes": len(index.keyframes), "gop_median": index.gop(), "seek_problem": problem,
        "sequential_in_process_fps": round(len(pts) / seq_s, 1), "runs": {},
    }
    if problem is not None:
        return row
    keys = list(index.keyframes)
    run_once(path, max(counts), batch, keys, len(pts))  # warm-up: Ray workers, object store, file cache
    times: dict[int, list[float]] = {d: [] for d in counts}
    overhead: dict[int, float] = {}
    for r in range(repeats):  # interleaved, order rotated, so load changes hit every count alike
        for d in counts[r % len(counts):] + counts[: r % len(counts)]:
            s, frames, got, decoded = run_once(path, d, batch, keys, len(pts))
            if got != pts or not np.array_equal(frames, seq):
                raise SystemExit(f"{label}: {d} decoders differ from the sequential decode")
            times[d].append(s)
            overhead[d] = decoded / len(pts)
    for d in counts:
        med = statistics.median(times[d])
        row["runs"][d] = {  # type: ignore[index]
            "fps": round(len(pts) / med, 1), "seconds_median": round(med, 3),
            "seconds": [round(t, 3) for t in times[d]], "decoded_per_delivered": round(overhead[d], 3),
            "decoders_used": len(set(assign_batches(len(pts), batch, d, keys))), "equal_to_sequential": True,
        }
        print(f"{label:20s} D={d} {len(pts) / med:7.1f} fr/s  overhead {overhead[d]:.3f}  equal True",
              flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--decoders", type=int, nargs="+", default=[1, 2, 4])
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=max(args.decoders), include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level="ERROR")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clips = [(p, p.name) for p in sorted(VIDEOS.iterdir()) if p.is_file()]
        clips.append((synthetic_clip(Path(tmp) / "synthetic_gop12.mp4"), "synthetic_gop12.mp4"))
        for path, label in clips:
            rows.append(bench_clip(path, label, args.batch, args.repeats, args.decoders))
    ray.shutdown()
    result = {
        "command": "nice -n 5 .venv/bin/python benchmarks/speed_parallel_decode.py",
        "batch": args.batch, "repeats": args.repeats, "cpu_count": os.cpu_count(),
        "load_avg_at_end": os.getloadavg(), "python": platform.python_version(), "pyav": av.__version__,
        "ray": ray.__version__, "clips": rows,
        "note": "fps = frames delivered / median seconds from submitting all read_batch calls to having "
                "every batch (actors started beforehand); the machine has 2 cores shared with other work, "
                "and "
                "each decoder uses FFmpeg's own threads too.",
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
