"""Codec x container sweep of the file reader: each frame once, in display order, pts increasing, exact seeks.

For each codec (H.264, HEVC, MPEG-4 ASP, MPEG-2 and MPEG-1 with two B-frames; VP9, MJPEG, FFV1, H.263+,
Sorenson) and container (MP4, MKV, AVI, MOV, MPEG-TS, M2TS, FLV, MPEG-PS, WebM, NUT) that FFmpeg writes,
30 frames of a moving texture (64x48, 25 fps) are encoded with PyAV, then read with ``FrameReader``:
frame count, each frame nearest its own source frame, pts strictly increasing, lost / repaired /
renumbered counts, and a seek to every other frame compared with the sequential frames ("exact",
"refused" with SeekError: the pipeline then decodes sequentially, or "WRONG"). A row is a problem when a
frame is missing, out of place or wrong after a seek. Pairs a muxer refuses are left out; pairs it writes
but its demuxer cannot read back as video (e.g. VP9 in MPEG-TS) are listed as "unreadable".

    PYTHONPATH=. python benchmarks/reliability_container_matrix.py \\
        --json benchmarks/results/container_matrix.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
from pathlib import Path

try:  # the test suite's clip maker and reader check; tests/ is not installed
    from tests.conftest import textured_frames
    from tests.test_frame_order import CODECS, encode_with, reader_outcome
except ModuleNotFoundError as e:
    if e.name != "tests":
        raise
    raise SystemExit("error: no module tests: run from the repository root with PYTHONPATH=.") from None

N = 30
CONTAINERS = ("mp4", "mkv", "avi", "mov", "ts", "m2ts", "flv", "mpg", "webm", "nut")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="write the rows here")
    args = ap.parse_args()
    source = textured_frames(N, 64, 48, seed=1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for (name, (codec, options)), container in itertools.product(CODECS.items(), CONTAINERS):
            path = Path(tmp) / f"{name}.{container}"
            if not encode_with(path, codec, options, source):
                continue
            row = {"codec": name, "container": container, **reader_outcome(path, source)}
            rows.append(row)
            print(json.dumps(row))
    outcomes = {k: sum(r["outcome"] == k for r in rows) for k in ("ok", "PROBLEM", "unreadable")}
    print(json.dumps({"pairs": len(rows), **outcomes}))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "summary": outcomes}, indent=1) + "\n")


if __name__ == "__main__":
    main()
