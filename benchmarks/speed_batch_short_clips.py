"""`vsr batch` of many short clips: each video starting its own decoder and encoder actors, against videos
taking the idle ones a finished video handed back (``vsr_pipeline.warm_actors``).

    python benchmarks/speed_batch_short_clips.py [--clips 40] [--frames 12] [--repeats 3] [--json PATH]

The clips: ``--clips`` stretches of ``--frames`` frames of bikes.mp4 (real footage, 250 frames; the
stretches follow each other, starting again from the top where the clip ends), MATLAB
bicubic x4 down (160x68) and x264 crf 23, as short surveillance or camera exports would be. Each repeat runs
the whole batch twice in this process through the CLI, ESPCN x4: with idle actors off (``WARM_SECONDS = 0``:
every video starts and kills its own decoder and encoder, as before) and on; the order alternates between
repeats so a slow spell of the machine hits both. The upscaler pool is shared by the batch's videos either
way. Reported: each run's wall seconds, the medians and their ratio, and that both runs wrote the same
frames.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def make_clips(folder: Path, clips: int, frames: int) -> list[Path]:
    import av

    from vsr_pipeline.degrade import degrade_bi
    from vsr_pipeline.media import FrameReader

    with FrameReader(ROOT.parent / "shared" / "data" / "videos" / "bikes.mp4") as reader:
        hr = reader.read(clips * frames)[0]
    if len(hr) < frames:
        raise SystemExit(f"bikes.mp4 has {len(hr)} frames, fewer than {frames}")
    lr = degrade_bi(np.ascontiguousarray(hr), 4)
    starts = [(k * frames) % (len(lr) - frames + 1) for k in range(clips)]
    paths = []
    for k in range(clips):
        path = folder / f"cam{k:03d}.mp4"
        with av.open(str(path), "w") as out:
            stream = out.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = lr.shape[2], lr.shape[1], "yuv420p"
            stream.options = {"crf": "23"}
            for f in lr[starts[k]:starts[k] + frames]:
                out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
            out.mux(stream.encode(None))
        paths.append(path)
    return paths


def frames_of(folder: Path) -> list[np.ndarray]:
    from vsr_pipeline.media import FrameReader

    out = []
    for path in sorted(folder.glob("cam*.mp4")):
        with FrameReader(path) as reader:
            out.append(reader.read(reader.info.frames)[0])
    return out


def main() -> None:
    import ray
    import torch

    from vsr_pipeline import warm_actors
    from vsr_pipeline.cli import main as cli

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    seconds: dict[str, list[float]] = {"off": [], "on": []}
    same = True
    with tempfile.TemporaryDirectory() as tmp:
        inputs = make_clips(Path(tmp), args.clips, args.frames)

        def batch(kind: str, k: int) -> Path:
            warm_actors.WARM_SECONDS = 60.0 if kind == "on" else 0.0
            out = Path(tmp) / f"{kind}{k}"
            start = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                code = cli(["batch", *map(str, inputs), "-o", str(out), "--model", "espcn", "--scale", "4",
                            "--json"])
            took = time.perf_counter() - start
            if code != 0:
                raise SystemExit(f"vsr batch exited {code}")
            seconds[kind].append(took)
            print(f"idle actors {kind}, repeat {k}: {took:.2f} s", flush=True)
            return out

        for k in range(args.repeats):
            order = ("off", "on") if k % 2 == 0 else ("on", "off")
            outs = {kind: batch(kind, k) for kind in order}
            a, b = frames_of(outs["off"]), frames_of(outs["on"])
            same = same and len(a) == len(b) == args.clips and all(
                np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    med = {kind: round(statistics.median(v), 2) for kind, v in seconds.items()}
    result = {"model": "espcn", "scale": 4, "lr_size": "160x68", "clips": args.clips, "frames": args.frames,
              "repeats": args.repeats, "median_s": med,
              "runs_s": {k: [round(x, 2) for x in v] for k, v in seconds.items()},
              "off_over_on": round(med["off"] / med["on"], 2), "same_frames": same,
              "capability": torch.backends.cpu.get_cpu_capability(), "cpus": os.cpu_count(),
              "torch": torch.__version__, "ray": ray.__version__, "date": time.strftime("%Y-%m-%d")}
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
