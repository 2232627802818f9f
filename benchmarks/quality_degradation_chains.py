"""How much each degradation stage takes away: Y-PSNR of a chain's LR against the plain ``bi`` LR, on Vid4
``calendar`` (41 frames, LR 180x144), and the seconds each chain took. The list of docs/evaluation.md
section (e).

    python benchmarks/quality_degradation_chains.py   # -> benchmarks/results/degradation_chains.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from vsr_pipeline.degradation import parse_degradation
from vsr_pipeline.media import list_images, read_images
from vsr_pipeline.metrics import psnr_y

ROOT = Path(__file__).resolve().parents[1]
CALENDAR = ROOT.parent / "shared" / "data" / "benchmarks" / "vid4" / "calendar"
CHAINS = ["h264:23", "h264:28", "h264:35", "mpeg4:4", "mpeg4:12", "noise:5", "noise:5+h264:28"]


def main() -> None:
    hr = read_images(list_images(CALENDAR))
    start = time.perf_counter()
    base = parse_degradation("bi").apply(hr, 4)
    rows = [{"chain": "bi", "seconds": round(time.perf_counter() - start, 2)}]
    for stages in CHAINS:
        start = time.perf_counter()
        lr = parse_degradation(f"bi+{stages}").apply(hr, 4)
        seconds = time.perf_counter() - start
        psnr = float(np.mean([psnr_y(a, b) for a, b in zip(lr, base, strict=True)]))
        rows.append({"chain": f"bi+{stages}", "lr_psnr_y_vs_bi": round(psnr, 2),
                     "seconds": round(seconds, 2)})
        print(f"bi+{stages:16} {psnr:6.2f} dB  {seconds:.2f} s", flush=True)
    out = ROOT / "benchmarks" / "results" / "degradation_chains.json"
    out.write_text(json.dumps({"sequence": "vid4/calendar", "frames": len(hr), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
