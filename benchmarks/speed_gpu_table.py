"""Issue 22's GPU table (``benchmarks/results/gpu_table.json``), made on a lent NVIDIA machine in one run;
also runs on the CPU at tiny sizes (tests/test_perf_paths.py).

    # here: what the GPU machine lacks (real clips, weights) into a git-ignored folder that travels
    .venv/bin/python benchmarks/speed_gpu_table.py --extract .gpu_carry
    # there (benchmarks/gpu_run.sh does this): checkout on the path, PyAV and Ray from carried wheels
    python3 benchmarks/speed_gpu_table.py --device cuda --carry .gpu_carry --out $OUT/gpu_table.json

- ``rows``: the model alone (``vsr_pipeline.engine.Engine``, what the pipeline's upscaler actor runs, the
  uint8 output's copy to the host included) on real frames: Big Buck Bunny (bigbuckbunny.mp4) shrunk by
  MATLAB bicubic to 320x180 for BasicVSR x4 (``--frames`` frames as ``sequences`` sequences per forward) and
  to 640x360 for the single-image and window models (``--image-frames`` frames, ``--batch`` per forward).
  Per precision (fp32 = float32 with cuDNN's TF32 off, the reference; fp16; bf16), eager and compiled
  (``--compile``): median of ``--repeats`` timed calls after a warm-up, peak device memory, and
  ``psnr_vs_fp32_db``: Y-PSNR of the row's frames against fp32's. BasicVSR's rows also carry
  ``psnr_y_gt``: Y-PSNR (crop 4) against the 1280x720 originals. Models without weights here run with
  random weights (speed does not depend on them; ``weights`` says so).
- ``pipeline``: ``vsr bench`` (``vsr_pipeline.bench.run_bench``) for BasicVSR x4 on ``clip_320x180.mp4``
  (Big Buck Bunny, 320x180, looped forth and back to ``--pipeline-frames``): decode, upscale and encode
  through Ray with the pipeline's own choices, and the model alone on the same chunks, side by side, once
  per ``--pipeline-sequences`` (chunks per forward pass, ``vsr --sequences``; default 4, then 1):
  ``pipeline_runs``, the fastest as ``pipeline`` and its ``pipeline_fps`` at the top.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
#: model -> LR size (HxW) of its rows; the issue's sizes
SIZES = {"basicvsr": "180x320", "espcn": "360x640", "edvr-m": "360x640", "edvr-s": "360x640",
         "realesrgan": "360x640", "realesr-animevideo": "360x640"}
#: registered weights carried for the GPU machine (Real-ESRGAN x4plus's 33 MB do not fit a call: random there)
CARRIED = {"basicvsr": None, "realesr-animevideo": None}


def extract(carry: Path, pipeline_frames: int) -> None:
    """Real clips and the weights that come from packages, into ``carry`` (a few tens of MB)."""
    import numpy as np

    from models.registry import resolve_weights
    from vsr_pipeline.degrade import degrade_bi
    from vsr_pipeline.media import FrameReader, VideoWriter

    carry.mkdir(parents=True, exist_ok=True)
    for name in ("bigbuckbunny.mp4", "bikes.mp4"):
        shutil.copyfile(VIDEOS / name, carry / name)
    with FrameReader(VIDEOS / "bigbuckbunny.mp4") as reader:
        info = reader.info
        rgb, _ = reader.read(info.frames)
    lr = degrade_bi(rgb, 4)
    order = [*range(len(lr)), *range(len(lr) - 2, 0, -1)]  # forth and back: motion stays continuous
    frames = [lr[order[i % len(order)]] for i in range(pipeline_frames)]
    with VideoWriter.like(carry / "clip_320x180.mp4", info, width=320, height=180, crf=18, preset="medium",
                          copy_streams=False) as writer:
        writer.write(np.stack(frames), list(range(len(frames))))
    for model in CARRIED:
        path = resolve_weights(model, None, 4)
        assert path is not None
        (carry / "weights" / model).mkdir(parents=True, exist_ok=True)
        for part in [path, path.with_suffix(".bin")] if path.suffix == ".param" else [path]:
            shutil.copyfile(part, carry / "weights" / model / part.name)
    size = sum(p.stat().st_size for p in carry.rglob("*") if p.is_file()) / 2**20
    print(f"{carry}: {size:.1f} MiB")


def weights_for(model: str, carry: Path, tmp: Path) -> tuple[str | None, str]:
    """(file, what it is): carried, the registered default here, or random (speed only)."""
    import torch

    from models.registry import WeightsNotFoundError, build_model, get_spec, resolve_weights
    from models.weights import save_safetensors

    found = sorted(p for p in (carry / "weights" / model).glob("*") if p.suffix in (".pth", ".param",
                                                                                    ".safetensors"))
    if found:
        return str(found[0]), f"{get_spec(model).default_weights} (carried)"
    try:
        path = resolve_weights(model, None, 4)
        return (None if path is None else str(path)), str(get_spec(model).default_weights)
    except WeightsNotFoundError:
        torch.manual_seed(0)
        path = tmp / f"{model}_random.safetensors"
        save_safetensors(build_model(model, 4).state_dict(), path)
        return str(path), "random init (speed only)"


def real_lr(carry: Path, frames: int, size: str) -> tuple[Any, Any]:
    """``frames`` frames of bigbuckbunny.mp4 shrunk (MATLAB bicubic) to ``size`` (HxW), forth and back past
    its 132 frames, and the 1280x720 originals of the 4x-shrunk ones (else None)."""
    import numpy as np

    from vsr_pipeline.degrade import degrade_bi
    from vsr_pipeline.media import FrameReader

    h, w = (int(v) for v in size.split("x"))
    with FrameReader(carry / "bigbuckbunny.mp4") as reader:
        rgb, _ = reader.read(min(frames, reader.info.frames))
    factor = rgb.shape[1] // h
    if factor * h == rgb.shape[1] and factor * w == rgb.shape[2]:
        lr = degrade_bi(rgb, factor)
    else:  # sizes other than the (CPU smoke runs): a crop of the 4x-shrunk frames
        factor, lr = 0, degrade_bi(rgb, 4)[:, :h, :w]
    order = [*range(len(lr)), *range(len(lr) - 2, 0, -1)]
    pick = [order[i % len(order)] for i in range(frames)]
    gt = rgb[pick] if factor == 4 else None
    return np.ascontiguousarray(lr[pick]), gt


def sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_model(up: Any, lr: Any, repeats: int, sequences: int) -> tuple[list[float], Any]:
    """Seconds per pass over all of ``lr`` after one warm-up, and the last pass's frames. A recurrent model
    gets ``sequences`` equal sequences in one forward; the others ``up.batch`` frames per call."""
    import numpy as np
    import torch

    from vsr_pipeline.engine import to_frames, to_tensor

    n = len(lr)

    def once() -> tuple[float, Any]:
        sync(up.device)
        start = time.perf_counter()
        if up.spec.temporal == "recurrent" and sequences > 1:
            with torch.inference_mode():
                x = to_tensor(lr, up.device)
                out = to_frames(up.forward(x.reshape(sequences, n // sequences, *x.shape[1:])).flatten(0, 1))
        elif up.spec.temporal == "recurrent":
            out = up.process(slice(0, n), slice(0, n), lr)
        else:
            spans = [(a, min(n, a + up.batch)) for a in range(0, n, up.batch)]
            out = np.concatenate([up.process(slice(a, b), slice(0, b - a), lr) for a, b in spans])
        sync(up.device)
        return time.perf_counter() - start, out

    once()
    runs = [once() for _ in range(repeats)]
    return [r[0] for r in runs], runs[-1][1]


def model_rows(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    import numpy as np
    import torch

    from vsr_pipeline.engine import Engine
    from vsr_pipeline.metrics import psnr_y

    rows = []
    for model in args.models:
        size = args.basicvsr_size if model == "basicvsr" else args.image_size
        frames = args.frames if model == "basicvsr" else args.image_frames
        lr, gt = real_lr(args.carry, frames, size)
        weights, note = weights_for(model, args.carry, tmp)
        fast = "fp16" if args.device.startswith("cuda") else args.precisions[-1]  # auto's choice on CUDA
        compiles = [False, True] if args.compile else [False]
        compiles = compiles if model in args.compile_models else [False]
        variants = [(p, False, 1) for p in args.precisions]
        if model == "basicvsr":  # compiled once, with the most sequences (each shape compiles anew: minutes)
            many = [s for s in args.sequences if args.frames % s == 0]
            variants += [(fast, False, s) for s in many]
            variants += [(fast, True, max([1, *many])) for c in compiles if c]
        else:
            variants += [(fast, True, 1) for c in compiles if c]
        reference = None
        for precision, compile_, sequences in variants:
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            up = Engine(model, weights, 4, args.device, args.threads, args.batch, precision=precision,
                        compile=compile_)
            seconds, out = time_model(up, lr, args.repeats, sequences)
            median = statistics.median(seconds)
            h, w = lr.shape[1:3]
            row: dict[str, Any] = {
                "model": model, "input": f"{w}x{h}", "precision": precision, "compile": compile_,
                "sequences": sequences if up.spec.temporal == "recurrent" else None,
                "batch": None if up.spec.temporal == "recurrent" else up.batch, "frames": len(lr),
                "fps": round(len(lr) / median, 2), "ms_per_frame": round(1000 * median / len(lr), 3),
                "seconds": [round(s, 4) for s in seconds], "weights": note, "device": up.device_name(),
                "peak_mem_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)
                if up.device.type == "cuda" else None,
            }
            if reference is None:
                reference = out
            psnr = np.mean([psnr_y(a, b) for a, b in zip(out, reference, strict=True)])
            row["psnr_vs_fp32_db"] = None if not np.isfinite(psnr) else round(float(psnr), 3)
            if gt is not None:
                gt_psnr = np.mean([psnr_y(a, b, 4) for a, b in zip(out, gt, strict=True)])
                row["psnr_y_gt"] = round(float(gt_psnr), 4)
            print(json.dumps(row), flush=True)
            rows.append(row)
            del up, out
    return rows


def pipeline(args: argparse.Namespace, sequences: int) -> dict[str, Any]:
    """``vsr bench`` of BasicVSR on the carried clip with ``sequences`` chunks per forward pass."""
    from vsr_pipeline.bench import BenchOptions, run_bench

    opts = BenchOptions(model="basicvsr", input=str(args.carry / "clip_320x180.mp4"), device=args.device,
                        frames=args.pipeline_frames, repeats=args.pipeline_repeats, skip_naive=True,
                        sequences=sequences)
    result = run_bench(opts, log=lambda line: print(line, flush=True))
    keys = ("sequences", "chunk", "model_fps", "pipeline_fps", "pipeline_over_model")
    print(json.dumps({k: result[k] for k in keys}), flush=True)
    return result


def best_pipeline(result: dict[str, Any], runs: list[dict[str, Any]]) -> None:
    """``pipeline`` (the run with the highest ``pipeline_fps``), ``pipeline_fps`` and every run."""
    result["pipeline_runs"] = runs
    result["pipeline"] = max(runs, key=lambda r: r["pipeline_fps"])
    result["pipeline_fps"] = result["pipeline"]["pipeline_fps"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--extract", type=Path, help="write the clips and weights to this folder, then stop")
    ap.add_argument("--carry", type=Path, default=ROOT / ".gpu_carry", help="folder made by --extract")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--models", nargs="*", default=list(SIZES), help="none: the pipeline run alone")
    ap.add_argument("--precisions", nargs="+", default=["fp32", "fp16", "bf16"])
    ap.add_argument("--frames", type=int, default=100, help="BasicVSR frames per timed pass (default 100)")
    ap.add_argument("--sequences", type=int, nargs="*", default=[4], help="BasicVSR sequences per forward")
    ap.add_argument("--basicvsr-size", default="180x320", help="BasicVSR's LR size HxW (default 180x320)")
    ap.add_argument("--image-size", default="360x640", help="other models' LR size HxW (default 360x640)")
    ap.add_argument("--image-frames", type=int, default=16, help="other models' frames per pass")
    ap.add_argument("--batch", type=int, default=8, help="frames (windows) per forward (default 8)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    ap.add_argument("--compile-models", nargs="*", default=["basicvsr", "espcn"],
                    help="the models --compile applies to (compiling takes a minute or more each)")
    ap.add_argument("--merge", type=Path, nargs="+", help="join tables of one machine into --out, then stop")
    ap.add_argument("--pipeline-frames", type=int, default=1056, help="0: no pipeline run")
    ap.add_argument("--pipeline-repeats", type=int, default=2)
    ap.add_argument("--pipeline-sequences", type=int, nargs="+", default=[4, 1],
                    help="chunks per forward pass of the pipeline runs (vsr --sequences), one run each")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_table.json")
    args = ap.parse_args()
    if args.extract is not None:
        extract(args.extract, args.pipeline_frames)
        return
    if args.merge:
        merge(args.merge, args.out)
        return
    if not (args.carry / "bigbuckbunny.mp4").exists():
        sys.exit(f"speed_gpu_table: error: {args.carry} lacks bigbuckbunny.mp4 (run --extract first)")
    import tempfile

    import torch

    result: dict[str, Any] = {
        "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
        "torch": torch.__version__,
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    with tempfile.TemporaryDirectory() as tmp:
        result["rows"] = model_rows(args, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")  # the rows, should the pipeline run not end
    runs: list[dict[str, Any]] = []
    for sequences in args.pipeline_sequences if args.pipeline_frames > 0 else []:
        runs.append(pipeline(args, sequences))
        best_pipeline(result, runs)
        args.out.write_text(json.dumps(result, indent=1) + "\n")  # each run as it ends
    print(f"wrote {args.out}")


def merge(parts: list[Path], out: Path) -> None:
    """One table from the parts a device run wrote (benchmarks/gpu_run.sh: two calls), their rows in order;
    the parts must come from the same GPU and torch."""
    tables = [json.loads(p.read_text()) for p in parts]
    if len({(t["gpu"], t["torch"]) for t in tables}) != 1:
        sys.exit(f"speed_gpu_table: error: {', '.join(map(str, parts))} come from different machines")
    result: dict[str, Any] = {"gpu": tables[0]["gpu"], "torch": tables[0]["torch"],
                              "args": [t["args"] for t in tables],
                              "rows": [r for t in tables for r in t["rows"]]}
    for t in tables:
        result.update({k: t[k] for k in ("pipeline", "pipeline_fps", "pipeline_runs") if k in t})
    fastest = [r["fps"] for r in result["rows"] if r["model"] == "basicvsr"]
    result["basicvsr_model_fps_best"] = max(fastest) if fastest else None
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}: {len(result['rows'])} rows, pipeline_fps {result.get('pipeline_fps')}")


if __name__ == "__main__":
    main()
