"""Release step (maintainers, in a source checkout): ship a trained run into ``models/zoo``: copy its best
weights, score them with `vsr eval` on the benchmark sets, write the model card and a JSON record.

    python -m vsr_pipeline.train.release espcn_x4 [espcn_x3 ...] [--datasets set5 set14] [--quick]
    python -m vsr_pipeline.train.release espcn_x4_stage2:espcn_x4     # run name : shipped name

Run from the repository's root (``--repo`` says otherwise): it writes into the checkout, never into an
installed package.
Reads ``runs/<run>/`` (config.yaml, best.safetensors, checkpoints/*/state.json, metrics.jsonl). Writes
``models/zoo/<dir>/<name>.safetensors``, ``models/zoo/<dir>/<name>.md`` and
``benchmarks/results/train_<name>.json`` (``<name>`` is the run's unless given after a colon).
A fine-tune of a package's published weights (``init:``) ships only its differences from them
(``models/weight_delta.py``), as 4-bit groups unless ``--bits 16``.
The benchmark sets only *measure* the shipped file: model selection used the held-out training
photographs/clips (best validation PSNR), never these sets.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path

import yaml

ROOT = Path.cwd()
ZOO_DIR = {"espcn": "espcn", "fsrcnn": "fsrcnn", "vespcn": "vespcn", "edvr-s": "edvr", "basicvsr": "basicvsr",
           "realesr-animevideo": "srvgg"}
TARGETS = {  # issue 5 targets (Y-PSNR, BI)
    ("espcn", 4, "set5"): 30.3, ("espcn", 3, "set5"): 32.5, ("espcn", 2, "set5"): 36.0,
    ("vespcn", 4, "vid4"): 25.0,
}


def run_eval(model: str, weights: Path, scale: int, dataset: str) -> dict:
    """`vsr eval ... --json` in this process (one Ray session serves every evaluation of the script)."""
    import contextlib
    import io

    from vsr_pipeline.cli import main as vsr_main

    args = ["eval", "--model", model, "--weights", str(weights.relative_to(ROOT)), "--dataset",
            f"../shared/data/benchmarks/{dataset}", "--scale", str(scale), "--degradation", "bi", "--json",
            "--no-progress"]
    t0 = time.perf_counter()
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = vsr_main(args)
    if code != 0:
        raise SystemExit(f"vsr eval failed on {dataset} (exit {code})")
    result = json.loads(buf.getvalue().strip().splitlines()[-1])
    result["eval_wall_s"] = round(time.perf_counter() - t0, 1)
    result["command"] = " ".join(["vsr", *args])
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="+", help="run names (runs/<name>), or RUN:NAME to ship under NAME")
    ap.add_argument("--datasets", nargs="+", default=None)
    ap.add_argument("--repo", type=Path, default=Path.cwd(), help="the source checkout (default: here)")
    ap.add_argument("--runs", type=Path, default=None, help="folder of training runs (default: REPO/runs)")
    ap.add_argument("--notes", default="", help="extra paragraph for the card (restarts, deviations)")
    ap.add_argument("--quick", action="store_true", help="Set5 only / no eval for video (smoke run)")
    ap.add_argument("--alpha", type=float, default=1.0,
                    help="a fine-tune of published weights: ship base + ALPHA * (tuned - base) (weight-space "
                    "interpolation, benchmarks/quality_weight_interpolation.py chooses it)")
    ap.add_argument("--bits", type=int, choices=(4, 16), default=4,
                    help="a fine-tune of published weights: store its differences as 4-bit groups (default; "
                    "under a third of float16's size, models/weight_delta.py) or float16")
    args = ap.parse_args()
    global ROOT
    ROOT = args.repo.resolve()
    if not (ROOT / "models" / "zoo").is_dir():
        raise SystemExit(f"release: {ROOT} is not a vsr-pipeline checkout (no models/zoo); pass --repo")
    args.runs = args.runs or ROOT / "runs"
    os.chdir(ROOT)
    import ray

    ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
    for name in args.names:
        ship(name, args)


def ship(run_and_name: str, args: argparse.Namespace) -> None:
    """Copy, evaluate and document one run (``RUN`` or ``RUN:NAME``)."""
    run_name, _, name = run_and_name.partition(":")
    name = name or run_name
    run = args.runs / run_name
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    model, scale = cfg["model"], int(cfg["scale"])
    states = sorted(run.glob("checkpoints/step_*/state.json"))
    state = json.loads(states[-1].read_text())
    video = cfg["data"]["frames"] > 1
    datasets = args.datasets or (["vid4"] if video else ["set5", "set14"])
    if args.quick:
        datasets = [] if video else ["set5"]
    dst_dir = ROOT / "models" / "zoo" / ZOO_DIR[model]
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / f"{name}.safetensors"
    base = _published_base(model, str(cfg.get("init", "")))
    if base is None:
        shutil.copyfile(run / "best.safetensors", dst)
        stored = "safetensors"
    else:  # a fine-tune of someone else's weights: only our differences are shipped
        from safetensors.torch import load_file

        from models.ncnn import NcnnState, ncnn_names
        from models.registry import resolve_weights
        from models.weight_delta import DEFAULT_GROUP, MIN_QUANTISED, write_delta
        from models.weights import read_state_dict

        base_path = resolve_weights(model, cfg["init"], scale)
        assert base_path is not None
        tuned = load_file(run / "best.safetensors")
        published = read_state_dict(base_path)
        if isinstance(published, NcnnState):  # ncnn weights: the differences kept under the base's names
            from models.registry import build_model

            names = ncnn_names(build_model(model, scale, **cfg.get("arch", {})), published)
            tuned = {names[k]: v for k, v in tuned.items()}
        if args.alpha != 1.0:
            tuned = {k: published[k] + args.alpha * (v - published[k]) if v.is_floating_point() else v
                     for k, v in tuned.items()}
        counts = write_delta(tuned, published, base_path, base, dst, {"model": model, "scale": str(scale),
                             "config": run_name, "alpha": str(args.alpha)}, bits=args.bits)
        if args.bits == 4:
            how = (f"4-bit differences (groups of {DEFAULT_GROUP} numbers, each with a float16 scale and "
                   f"offset; the {counts['changed'] - counts['quantised']} tensors under {MIN_QUANTISED} "
                   "numbers in float16)")
        else:
            how = "float16 differences"
        stored = (f"{how} from the published `{cfg['init']}` weights ({base}), "
                  f"{args.alpha} times the fine-tune's, in "
                  f"{counts['changed']} tensors, {counts['numbers']:,} numbers; the other "
                  f"{counts['unchanged']} tensors are the base's")
    results = {d: run_eval(model, dst, scale, d) for d in datasets}
    import torch

    from models.registry import build_model, count_params

    params = count_params(build_model(model, scale, **cfg.get("arch", {})))
    torch_threads = cfg.get("threads") or torch.get_num_threads()
    registered = _registered_name(model, scale, dst)
    record = {
        "name": name, "model": model, "scale": scale, "params": params, "stored": stored,
        "weights": str(dst.relative_to(ROOT)), "size_bytes": dst.stat().st_size, "steps": state["step"],
        "best_val_psnr": state["best_psnr"],
        "best_step": state["best_step"], "train_wall_s": round(state["elapsed_s"], 1),
        "hardware": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores shared with "
                    f"other jobs, torch {torch.__version__}, {torch_threads} thread(s)",
        "results": {d: {k: r[k] for k in ("psnr_y", "ssim_y", "bicubic_psnr_y", "bicubic_ssim_y", "command",
                                          "eval_wall_s") if k in r} for d, r in results.items()},
    }
    (ROOT / "benchmarks" / "results" / f"train_{name}.json").write_text(json.dumps(record, indent=1))
    rows = []
    for d, r in results.items():
        target = TARGETS.get((model, scale, d))
        met = target is not None and r["psnr_y"] >= target
        verdict = "" if target is None else f" | {target:.2f} ({'met' if met else 'missed'})"
        rows.append(f"| {d} | {r['psnr_y']:.2f} / {r['ssim_y']:.4f} | {r['bicubic_psnr_y']:.2f} / "
                    f"{r['bicubic_ssim_y']:.4f}{verdict or ' | -'} |")
    o, dcfg = cfg["optim"], cfg["data"]
    mc = " + VESPCN motion-compensation terms" if cfg["loss"].get("motion") else ""
    clips = ("clips " + ", ".join(f"`{v}`" for v in dcfg["videos"])
             + (f" (area-downscaled {dcfg['clip_scale']}x)" if dcfg.get("clip_scale", 1) != 1 else "") + "; "
             if dcfg["videos"] else "")
    paths = (f"synthetic camera paths (up to {dcfg['max_shift']} HR px per frame) over the photographs; "
             if video else "")
    packages = "mate-backgrounds, plasma-workspace-wallpapers and\n  lomiri-wallpapers-20.04"
    if any("photos-extra" in str(p) for p in dcfg["photos"]):
        packages = ("mate-backgrounds, plasma-workspace-wallpapers,\n  lomiri-wallpapers-20.04 and "
                    "lomiri-wallpapers-16.04")
    card = f"""# {name}: {model} x{scale}, trained by us

`{dst.relative_to(ROOT)}` ({dst.stat().st_size / 1e6:.2f} MB, {stored}, {params:,} parameters).
Loaded by: `vsr upscale --model {model} --scale {scale} --weights {registered} ...`.

## Measured (Y-PSNR / SSIM, BI x{scale}, protocol of docs/evaluation.md)

| set | this model | bicubic | issue-5 target |
|---|---|---|---|
{chr(10).join(rows) or '| (not evaluated) | | | |'}

Commands: {'; '.join(f'`{r["command"]}`' for r in results.values()) or '-'}

## Training

- Command: `python -m vsr_pipeline.train.data_prep && vsr train configs/train/{run_name}.yaml`
- Steps: {state['step']} (batch {o['batch']}, LR patches {dcfg['patch']}x{dcfg['patch']},
  {dcfg['frames']} frame(s)), Adam {o['lr']} with {o['schedule']} decay to {o['min_lr']}; loss
  {cfg['loss']['pixel']}{mc}; warm start: {cfg.get('warm_start') or 'none'}.
- Shipped weights: best validation PSNR {state['best_psnr']:.2f} dB at step {state['best_step']}
  (held-out crops, see data).
- Wall time: {state['elapsed_s'] / 60:.0f} min on {record['hardware']}.
- Data: photographs from the Debian packages {packages} (list: `vsr_pipeline/train/data_prep.py`), kept
  at long sides
  {dcfg['levels']}, crops whose HR grey standard deviation is below {dcfg['min_std']} redrawn;
  {clips}{paths}held out for validation: {', '.join(dcfg['val_photos'] + dcfg['val_videos'])}.
  Degradation: {_degradation_text(cfg)}. No benchmark image (Set5, Set14, Vid4) was used for training or
  model selection.
{args.notes}
"""
    (dst_dir / f"{name}.md").write_text(card)
    print(json.dumps(record, indent=1))


def _published_base(model: str, init: str) -> str | None:
    """The package location of ``init`` when it names a model's registered weights from a package (the run
    is then a fine-tune of someone else's weights), else None."""
    from models.registry import get_spec

    location = get_spec(model).weights.get(init, "")
    return location if location.startswith("pkg:") else None


def _registered_name(model: str, scale: int, dst: Path) -> str:
    """The registry's name for the shipped file (its path when it is not registered yet)."""
    from models.registry import get_spec

    rel = dst.relative_to(ROOT / "models" / "zoo").as_posix()
    names = [n for n, loc in get_spec(model).weights.items() if loc.replace("{scale}", str(scale)) == rel]
    return names[0] if names else str(dst.relative_to(ROOT))


def _degradation_text(cfg: dict) -> str:
    """The training degradation in words."""
    d = cfg["degradation"]
    parts = []
    if d.get("blur_prob"):
        parts.append(f"Gaussian blur of the HR, sigma {d['blur'][0]}-{d['blur'][1]} (p {d['blur_prob']})")
    parts.append("MATLAB-style bicubic (BI)" if d["kind"] == "bi" else f"BD (sigma {d['bd_sigma']})")
    parts.append("rounded to uint8")
    if d.get("noise_prob"):
        parts.append(f"Gaussian noise sigma 0-{d['noise']} (p {d['noise_prob']})")
    if d.get("jpeg_prob"):
        parts.append(f"JPEG quality {d['jpeg'][0]}-{d['jpeg'][1]} (p {d['jpeg_prob']})")
    if d.get("h264_prob"):
        parts.append(f"H.264 over the window, CRF {d['h264'][0]}-{d['h264'][1]}, x264 preset "
                     f"{'/'.join(d.get('h264_presets', ['ultrafast']))} (p {d['h264_prob']})")
    if d.get("mpeg4_prob"):
        parts.append(f"else MPEG-4 part 2, qscale {d['mpeg4'][0]}-{d['mpeg4'][1]} (p {d['mpeg4_prob']})")
    return ", ".join(parts)


if __name__ == "__main__":
    main()
