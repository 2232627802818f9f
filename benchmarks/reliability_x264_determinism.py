"""Is libx264's bitstream a function of its input frames alone? Encode the same short segment many times.

    PYTHONPATH=. python benchmarks/reliability_x264_determinism.py [--runs 300] [--pipeline-runs 10] \
        [--json PATH]
    PYTHONPATH=. PYTHONMALLOC=malloc valgrind --track-origins=yes \
        python benchmarks/reliability_x264_determinism.py --once [SETTING]

The clips are made by the test suite's helpers (``tests.conftest``), which are not installed: run it from
the repository root with ``PYTHONPATH=.``.

First the encoder alone (below). Then the whole pipeline (second, as the order matters: see
docs/benchmarks.md section 10): ``vsr upscale`` of that clip (seed 3, 40x24 -> 80x48) ``--pipeline-runs``
times each to a PNG folder, to H.264 at crf 18 (the default) and at crf 0, counting distinct decoded
outputs and the largest difference from the first run.

The segments are what ``vsr upscale --model espcn --scale 2 --chunk 4`` encodes for tests/test_batch.py's
``b.mkv``: 11 frames of smooth random texture (``tests/conftest.py``'s ``textured_frames``, seeds 0-3,
40x24 and 80x48) encoded with x264 and decoded again, upscaled 2x by the shipped ESPCN x2, cut into
segments of 4, 4 and 3 frames, each written through ``vsr_pipeline.media.VideoWriter`` (our RGB->YUV,
yuv420p, preset medium).
Settings: the default (crf 18), one x264 thread, crf 18 without the macroblock tree, lossless (crf 0).
For each it prints how many of the runs gave a bitstream (video packets, container left out) other than
the most common one, and how many distinct bitstreams there were. ``--once`` encodes one 80x48 segment
once (setting by name, default the default), for a memory checker.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from collections import Counter
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from models.registry import load_model
from vsr_pipeline import UpscaleOptions, upscale
from vsr_pipeline.cluster import ray_session
from vsr_pipeline.engine import to_frames, to_tensor
from vsr_pipeline.media import VideoWriter, list_images, read_images

try:
    from tests.conftest import make_clip, textured_frames
except ModuleNotFoundError as e:  # the test suite is not installed
    if e.name != "tests":
        raise
    raise SystemExit("error: no module tests: run from the repository root with PYTHONPATH=.") from None

SETTINGS: dict[str, tuple[int, dict[str, str]]] = {
    "crf18 (default)": (18, {}),
    "crf18 threads=1": (18, {"threads": "1"}),
    "crf18 no-mbtree": (18, {"x264-params": "no-mbtree=1"}),
    "crf0 (lossless)": (0, {}),
}


def segments(model: torch.nn.Module, seed: int, width: int, height: int, tmp: Path) -> list[np.ndarray]:
    """ESPCN x2 of an 11-frame textured clip (half ``width`` x ``height``, through H.264), in 4/4/3."""
    clip = make_clip(tmp / "clip.mp4", textured_frames(11, width // 2, height // 2, seed=seed))
    with av.open(str(clip)) as c:
        lr = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    with torch.no_grad():
        hr = to_frames(model(to_tensor(lr, torch.device("cpu"))))
    return [hr[a : a + 4] for a in range(0, len(hr), 4)]


def bitstream(frames: np.ndarray, path: Path, crf: int, options: dict[str, str]) -> str:
    with VideoWriter(path, frames.shape[2], frames.shape[1], Fraction(1, 25), Fraction(25), crf=crf,
                     overwrite=True, options=options) as w:
        w.write(frames, list(range(len(frames))))
    with av.open(str(path)) as c:
        return hashlib.md5(b"".join(bytes(p) for p in c.demux(c.streams.video[0]) if p.size)).hexdigest()


def decoded(path: Path) -> np.ndarray:
    if path.is_dir():
        return read_images(list_images(path))
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def pipeline_runs(runs: int, tmp: Path) -> list[dict[str, object]]:
    """``vsr upscale`` of one clip ``runs`` times per output kind: distinct outputs, largest difference."""
    clip = make_clip(tmp / "b.mkv", textured_frames(11, 40, 24, seed=3), audio=True)
    rows = []
    with ray_session(None):
        kinds = (("PNG folder", 18, ""), ("H.264 crf 18", 18, ".mp4"), ("H.264 crf 0", 0, ".mp4"))
        for kind, crf, suffix in kinds:
            outs = []
            for i in range(runs):
                out = tmp / f"run{i}{suffix}"
                upscale(clip, out, UpscaleOptions(model="espcn", scale=2, chunk=4, crf=crf, progress=False,
                                                  overwrite=True))
                outs.append(decoded(out))
            diffs = [int(np.abs(o.astype(np.int16) - outs[0]).max()) for o in outs]
            rows.append({"output": kind, "runs": runs, "distinct": len({o.tobytes() for o in outs}),
                         "max_level_difference": max(diffs)})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=300)
    ap.add_argument("--pipeline-runs", type=int, default=10)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--once", nargs="?", const="crf18 (default)", choices=list(SETTINGS), metavar="SETTING")
    args = ap.parse_args()
    rows = []
    model = load_model("espcn", None, 2).eval()
    if args.once:
        with tempfile.TemporaryDirectory() as tmp:
            frames = segments(model, 3, 80, 48, Path(tmp))[0]
            print(args.once, bitstream(frames, Path(tmp) / "seg.mkv", *SETTINGS[args.once]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "seg.mkv"
        for width, height in ((80, 48), (160, 96)):
            segs = [s for seed in range(4) for s in segments(model, seed, width, height, Path(tmp))]
            for name, (crf, options) in SETTINGS.items():
                off = distinct = 0
                for frames in segs:
                    counts = Counter(bitstream(frames, path, crf, options) for _ in range(args.runs))
                    off += args.runs - max(counts.values())
                    distinct = max(distinct, len(counts))
                row = {"size": f"{width}x{height}", "setting": name, "encodes": len(segs) * args.runs,
                       "not_the_usual_bitstream": off, "most_distinct_per_segment": distinct}
                rows.append(row)
                print(json.dumps(row), flush=True)
        # after the encoder alone: how often x264 varies depends on the process's memory history
        pipeline = pipeline_runs(args.pipeline_runs, Path(tmp)) if args.pipeline_runs else []
    if args.json:
        record = {"runs": args.runs, "pipeline": pipeline, "rows": rows}
        args.json.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
