"""What ``--precision auto`` chooses on this machine, and the probe's figures: the table of
docs/performance.md "How auto decides". Probes with a fresh cache (nothing reused), at the frame sizes the
docs quote.

    python benchmarks/speed_auto_precision.py    # -> benchmarks/results/auto_precision_<capability>.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import torch

from models.registry import get_spec
from vsr_pipeline.autotune import candidates, choose_precision, machine
from vsr_pipeline.options import ModelSettings

ROOT = Path(__file__).resolve().parents[1]
#: (model, scale, width, height): BasicVSR on bikes.mp4 downscaled 4x and at its native size; ESPCN native
CASES = [("basicvsr", 4, 160, 68), ("basicvsr", 4, 640, 272), ("espcn", 4, 640, 272),
         ("realesr-animevideo", 4, 160, 68)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    cpu = torch.device("cpu")
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        os.environ["VSR_CACHE_DIR"] = cache
        for model, scale, w, h in CASES:
            allowed, _ = candidates(get_spec(model), cpu)
            choice, reason = choose_precision(ModelSettings(model=model, scale=scale), cpu, w, h,
                                              threads=os.cpu_count() or 1)
            entry = json.loads((Path(cache) / "autotune.json").read_text())
            seconds = next(v["seconds"] for k, v in entry.items()
                           if json.loads(k)["model"] == model and json.loads(k)["size"] == [w, h])
            rows.append({"model": model, "size": f"{w}x{h}", "candidates": allowed, "choice": choice,
                         "seconds_per_frame": seconds, "reason": reason, "load": os.getloadavg()[0]})
            print(f"{model:20} {w}x{h}: {choice:8} {seconds}", flush=True)
    info = machine(cpu)
    out = args.out or ROOT / "benchmarks" / "results" / f"auto_precision_{info['capability'].lower()}.json"
    out.write_text(json.dumps({"machine": info, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
