"""What moves an MPEG-TS output in time, and whether its audio stays in sync: `vsr upscale -o OUT.ts` of
four small clips, with x264's default B-frames (one chunk, and chunks of 2 frames) and with ``--tune
zerolatency``. For each output: ``shift_s`` (its manifest: the first frame's output time minus its input
time), the A/V error (the output's video start minus its audio start, less the source's: 0 when in sync),
and whether every frame keeps its input time plus that one shift.

    PYTHONPATH=. python benchmarks/reliability_ts_shift.py --json benchmarks/results/ts_shift.json

The clips: video only; video plus 48 kHz AAC (the tests' ``make_clip``: the AAC's priming samples sit
before 0); a camera-style export with 8 kHz AAC (``tests/test_ingest.camera_export``, likewise); the real
demo clip (H.264 + 48 kHz AAC from an FFmpeg export, audio starting at 0). Each is upscaled x2 with
bicubic (the model does not matter here).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import ROOT, make_clip, textured_frames
from tests.test_ingest import camera_export
from tests.test_segment_timing import first_times, frame_times


def measure(src: Path, out: Path, extra: list[str]) -> dict[str, object]:
    run = subprocess.run([sys.executable, "-m", "vsr_pipeline.cli", "upscale", str(src), "-o", str(out),
                          "--model", "bicubic", "--scale", "2", "--no-progress", *extra],
                         capture_output=True, text=True, cwd=ROOT)
    if run.returncode != 0:
        raise SystemExit(f"{src.name}: vsr upscale failed: {run.stderr.strip().splitlines()[-1]}")
    shift = float(json.loads(Path(f"{out}.vsr.json").read_text())["shift_s"])
    a, b = first_times(src), first_times(out)
    av_error = (b["video"] - b["audio"]) - (a["video"] - a["audio"]) if "audio" in a else None
    spacing = {round(float(y - x), 6) for x, y in zip(frame_times(src), frame_times(out), strict=True)}
    return {"shift_s": round(shift, 6), "av_error_s": None if av_error is None else round(float(av_error), 6),
            "one_shift": len(spacing) == 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, help="write the rows here")
    args = ap.parse_args()
    rows = []
    runs = {"default": [], "chunk2": ["--chunk", "2"], "zerolatency": ["--tune", "zerolatency"]}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        clips = {"video only": make_clip(d / "v.mp4", textured_frames(6, 32, 24)),
                 "video + AAC 48 kHz": make_clip(d / "a.mp4", textured_frames(6, 32, 24), audio=True),
                 "camera export, AAC 8 kHz": camera_export(d / "cam.mp4"),
                 "real: assets/bbb_demo_160x90.mp4": ROOT / "assets" / "bbb_demo_160x90.mp4"}
        for name, src in clips.items():
            row: dict[str, object] = {"clip": name}
            for label, extra in runs.items():
                row[label] = measure(src, d / f"{src.stem}_{label}.ts", extra)
            print(name, json.dumps({k: v for k, v in row.items() if k != "clip"}))
            rows.append(row)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
