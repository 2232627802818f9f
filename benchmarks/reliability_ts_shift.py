"""What moves an MPEG-TS output in time: `vsr upscale -o OUT.ts` of three small clips, with x264's default
B-frames and with ``--tune zerolatency``; prints and saves each output's ``shift_s`` (its manifest: the first
frame's output time minus its input time).

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


def shift_of(src: Path, out: Path, tune: list[str]) -> float:
    run = subprocess.run([sys.executable, "-m", "vsr_pipeline.cli", "upscale", str(src), "-o", str(out),
                          "--model", "bicubic", "--scale", "2", "--no-progress", *tune],
                         capture_output=True, text=True, cwd=ROOT)
    if run.returncode != 0:
        raise SystemExit(f"{src.name}: vsr upscale failed: {run.stderr.strip().splitlines()[-1]}")
    return float(json.loads(Path(f"{out}.vsr.json").read_text())["shift_s"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, help="write the rows here")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        clips = {"video only": make_clip(d / "v.mp4", textured_frames(6, 32, 24)),
                 "video + AAC 48 kHz": make_clip(d / "a.mp4", textured_frames(6, 32, 24), audio=True),
                 "camera export, AAC 8 kHz": camera_export(d / "cam.mp4"),
                 "real: assets/bbb_demo_160x90.mp4": ROOT / "assets" / "bbb_demo_160x90.mp4"}
        for name, src in clips.items():
            row = {"clip": name}
            for label, tune in (("default", []), ("zerolatency", ["--tune", "zerolatency"])):
                row[f"shift_s_{label}"] = round(shift_of(src, d / f"{src.stem}_{label}.ts", tune), 6)
            print(f"{name:34s} shift {row['shift_s_default']:.4f} s default, "
                  f"{row['shift_s_zerolatency']:.4f} s with --tune zerolatency")
            rows.append(row)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
