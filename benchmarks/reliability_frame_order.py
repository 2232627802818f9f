"""Whether an upscaled video shows the input's frames in their order and at their times.

For each input: ``vsr upscale IN -o OUT --model bicubic --scale 2`` (the CLI, as a user runs it), then
OUT's frames are scaled back (area) and each is matched with its nearest input frame among the 7 around its
own index (PyAV's plain decode, which is in display order whatever the pts say). Reports the frame
counts, how many output frames are nearest their own input frame, whether output frame ``i`` is shown at
``i`` frame durations after the first, and the job's corrupt / repaired / renumbered counts.

Made for files whose pts are not display times (docs/reliability.md "Timestamps and interlacing"), e.g.
Debian opencv-doc's ``Megamind.avi`` (MPEG-4 with B-frames in AVI)::

    apt-get download opencv-doc && dpkg-deb -x opencv-doc_*.deb /tmp/ocv
    D=/tmp/ocv/usr/share/doc/opencv-doc/examples/data
    python benchmarks/reliability_frame_order.py $D/Megamind.avi $D/vtest.avi \\
        --json benchmarks/results/frame_order.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np


def decode(path: Path) -> tuple[list[np.ndarray], list[Fraction]]:
    """Every frame as RGB, and its time (pts x time base), in the decoder's output order."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        return [f.to_ndarray(format="rgb24") for f in frames], [f.pts * s.time_base for f in frames]


def check(video: Path, work: Path) -> dict[str, Any]:
    out = work / f"{video.stem}_x2.mkv"
    run = subprocess.run([sys.executable, "-m", "vsr_pipeline.cli", "upscale", str(video), "-o", str(out),
                          "--model", "bicubic", "--scale", "2", "--no-progress", "--json"],
                         capture_output=True, text=True)
    if run.returncode != 0:
        return {"input": str(video), "exit": run.returncode, "stderr": run.stderr.strip().splitlines()[-1:]}
    job = json.loads(run.stdout.strip().splitlines()[-1])
    ref, _ = decode(video)
    frames, times = decode(out)
    h, w = ref[0].shape[:2]
    own = 0
    for i, frame in enumerate(frames):
        small = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA).astype(np.int16)
        lo = max(0, i - 3)
        errors = [np.abs(small - r.astype(np.int16)).mean() for r in ref[lo:i + 4]]
        own += int(int(np.argmin(errors)) + lo == i)
    step = 1 / Fraction(job["fps_in"]).limit_denominator(100000)
    late = max((abs(float(t - times[0] - i * step)) for i, t in enumerate(times)), default=0.0)
    return {"input": str(video), "exit": 0, "frames_in": len(ref), "frames_out": len(frames),
            "nearest_own_frame": own, "max_time_error_s": round(late, 4),
            **{k: job[k] for k in ("corrupt_frames", "timestamps_repaired", "timestamps_renumbered")
               if k in job}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="+", type=Path)
    ap.add_argument("--json", type=Path, help="write the rows here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [check(v, Path(tmp)) for v in args.videos]
    for row in rows:
        print(json.dumps(row))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
