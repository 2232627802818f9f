"""Issue 6's table: `vsr bench` for BasicVSR x4 and ESPCN x4 on bikes.mp4, JSON to benchmarks/results/.

    python benchmarks/perf_bench.py [--quick] [--models basicvsr espcn] [--frames-basicvsr 20]
                                    [--frames-espcn 100] [--repeats 3] [--espcn-weights PATH]

Runs, for each model, the same measurement `vsr bench` does (model only / pipeline / naive loop, interleaved,
medians; see vsr_pipeline/bench.py) with the pipeline's default settings (`--precision auto`), and once more
for BasicVSR with `--precision bf16` when auto chose fp32, so both are on record. ``--quick``: 4 frames,
1 repeat (a smoke run: start-up costs dominate, the ratios mean nothing).
Writes benchmarks/results/perf_bench_<model>[_<precision>][_quick].json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vsr_pipeline.bench import BenchOptions, format_bench, run_bench

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT.parent / "shared" / "data" / "videos" / "bikes.mp4"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["basicvsr", "espcn"])
    ap.add_argument("--frames-basicvsr", type=int, default=20)
    ap.add_argument("--frames-espcn", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--espcn-weights", help="trained ESPCN x4 weights (default: random init, timing only)")
    ap.add_argument("--precision", nargs="+", default=["auto"], help="precisions to run (auto, fp32, bf16)")
    ap.add_argument("--downscale-basicvsr", type=int, default=1, help="shrink bikes for BasicVSR (CPU time)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--input", default=str(CLIP))
    args = ap.parse_args()
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    for model in args.models:
        frames = args.frames_basicvsr if model == "basicvsr" else args.frames_espcn
        for precision in args.precision:
            opts = BenchOptions(
                model=model, input=args.input, frames=4 if args.quick else frames,
                repeats=1 if args.quick else args.repeats, precision=precision, device="cpu",
                weights=args.espcn_weights if model == "espcn" else None,
                downscale=args.downscale_basicvsr if model == "basicvsr" else 1,
            )
            result = run_bench(opts, log=print)
            weights = f" --weights {opts.weights}" if opts.weights else ""
            result["command"] = (
                f"vsr bench --model {model} --input {args.input} --frames {opts.frames} "
                f"--repeats {opts.repeats} --precision {precision} --device cpu "
                f"--downscale {opts.downscale}{weights}"
            )
            print(format_bench(result))
            suffix = ("" if precision == "auto" else f"_{precision}") + ("_quick" if args.quick else "")
            (out_dir / f"perf_bench_{model}{suffix}.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
