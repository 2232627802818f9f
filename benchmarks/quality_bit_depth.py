"""What a 10-bit output keeps that an 8-bit one loses, on real footage through a real 10-bit codec, and what
it costs in time.

    python benchmarks/quality_bit_depth.py [--clip bigbuckbunny] [--model espcn] [--frames 12] [--repeats 3]
        [--json PATH] [--image PATH]

The input: the first ``--frames`` frames of a real clip (../shared/data/videos), MATLAB bicubic x4 down in
float (so the LR holds more than 8 bits), written as 10-bit BT.709 4:2:0 with x264 at crf 23 (a real codec's
loss, as a 10-bit camera or master would give). The pipeline then upscales it x4 with ``--model`` (fp32, so
the reference below is exact) twice: ``--bit-depth 10`` and ``--bit-depth 8``, both to lossless FFV1 so the
output's own quantisation is all that differs.

Reported per output:
- ``y_rms`` / ``y_max``: its luma against the model's float output on the same decoded 10-bit LR frames (what
  the model computed before any rounding), in 10-bit levels (Y' = 64 + 876 (0.2126 R + 0.7152 G + 0.0722 B));
- ``levels_flat``: distinct luma values in the flattest 64x64 block (lowest float-output std): a smooth
  gradient quantised to 8 bits shows as few wide bands;
- ``psnr_y_gt``: the standard PSNR (BT.601 Y, border 4) against the clip's own 8-bit frames: the metric that
  cannot see the difference (the GT is 8-bit; the model's error dwarfs either quantisation).
Time: the whole job (``upscale``) with the default x264 crf 18 encode, 8 then 10 bits alternating,
``--repeats`` each (0: not timed), medians and their ratio, Ray started once in this process.
``--bf16 MODEL``: instead, how far MODEL's bf16 forward pass (what ``--precision auto`` picks on a CPU with
bf16 units, for the models measured safe) lands from fp32, in 10-bit levels, on 5 frames of bikes.mp4 (a
192x128 crop, MATLAB bicubic x4 down): bf16 keeps 8 significant bits, so an output computed wholly in bf16
would be an 8-bit output in disguise. On a CPU without bf16 units it is emulated (slow, same numbers).
``--image``: the flattest block of frame 0 from both outputs and the float reference, contrast stretched
around its mean (x8) so the bands are visible, side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
KR, KB = 0.2126, 0.0722  # BT.709


def make_lr10(clip: Path, frames: int, out: Path) -> np.ndarray:
    """Write the 10-bit LR clip; returns the 8-bit ground-truth HR frames (cropped to a multiple of 4)."""
    from vsr_pipeline.degrade import crop_to_multiple, imresize
    from vsr_pipeline.media import FrameReader, rgb_to_frame

    with FrameReader(clip) as reader:
        hr = crop_to_multiple(reader.read(frames)[0], 4)
    lr = np.stack([imresize(f.astype(np.float64) / 255, 1 / 4) for f in hr])
    lr16 = np.round(np.clip(lr, 0, 1) * 65535).astype(np.uint16)
    with av.open(str(out), "w") as c:
        s = c.add_stream("libx264", rate=25, options={"crf": "23", "preset": "medium"})
        s.width, s.height, s.pix_fmt = lr16.shape[2], lr16.shape[1], "yuv420p10le"
        cc = s.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 1, 1, 1, 1
        for i, f in enumerate(lr16):
            vf = rgb_to_frame(f, "yuv420p10le", 1, 1)
            vf.color_primaries, vf.color_trc, vf.pts = 1, 1, i
            c.mux(s.encode(vf))
        c.mux(s.encode(None))
    return hr


def float_reference(model: str, lr10: Path) -> np.ndarray:
    """The model's float output luma (10-bit levels, BT.709 limited) on the decoded 10-bit LR frames."""
    import torch

    from vsr_pipeline.engine import Engine, to_tensor
    from vsr_pipeline.media import FrameReader

    engine = Engine(model, None, 4, device="cpu", precision="fp32")
    with FrameReader(lr10, deep=True) as r:
        lr = r.read(r.info.frames)[0]
    cpu = torch.device("cpu")
    with torch.inference_mode():
        if engine.spec.temporal == "recurrent":  # the clip is one chunk of the pipeline's (<= 50 frames)
            hr = engine.model(to_tensor(lr, cpu)[None])[0]
        else:
            hr = torch.cat([engine.model(to_tensor(f[None], cpu)) for f in lr])
    rgb = hr.clamp(0, 1).double().numpy()
    return 64 + 876 * (KR * rgb[:, 0] + (1 - KR - KB) * rgb[:, 1] + KB * rgb[:, 2])


def y_levels(path: Path) -> np.ndarray:
    """Raw luma samples of every frame, in 10-bit levels (8-bit samples x4)."""
    with av.open(str(path)) as c:
        frames = list(c.decode(video=0))
    deep = frames[0].format.name.endswith("le")
    dtype = np.uint16 if deep else np.uint8
    ys = [np.frombuffer(f.planes[0], dtype).reshape(f.height, -1)[:, : f.width] for f in frames]
    return np.stack(ys).astype(np.float64) * (1 if deep else 4)


def flattest_block(ref: np.ndarray, size: int = 64) -> tuple[int, int]:
    """Top-left corner of the ``size`` block of frame 0 whose float luma varies least (and is not clipped)."""
    best, where = np.inf, (0, 0)
    h, w = ref.shape[1:]
    for y in range(0, h - size + 1, size // 2):
        for x in range(0, w - size + 1, size // 2):
            block = ref[0, y : y + size, x : x + size]
            if 100 < block.mean() < 900 and block.std() < best:
                best, where = block.std(), (y, x)
    return where


def bf16_levels(model: str) -> dict[str, object]:
    """MODEL's bf16 output against its fp32 output, in 10-bit levels (mean, 99th percentile, max)."""
    import torch

    from vsr_pipeline.degrade import imresize
    from vsr_pipeline.engine import Engine
    from vsr_pipeline.media import FrameReader

    with FrameReader(ROOT.parent / "shared" / "data" / "videos" / "bikes.mp4") as r:
        hr = r.read(5)[0]
    lr = np.stack([imresize(f[:128, :192].astype(np.float64) / 255, 1 / 4) for f in hr])
    x = torch.from_numpy(lr).float().permute(0, 3, 1, 2)
    x = x[None] if Engine(model, None, 4, device="cpu").spec.temporal == "recurrent" else x
    out = {}
    with torch.inference_mode():
        for p in ("fp32", "bf16"):
            out[p] = Engine(model, None, 4, device="cpu", precision=p).forward(x.clone()).float().clamp(0, 1)
    d = (out["fp32"] - out["bf16"]).abs() * 1023
    return {"model": model, "bf16_vs_fp32_levels10": {"mean": round(float(d.mean()), 3),
            "p99": round(float(d.quantile(0.99)), 3), "max": round(float(d.max()), 3)},
            "capability": torch.backends.cpu.get_cpu_capability(), "date": time.strftime("%Y-%m-%d")}


def main() -> None:
    import ray
    import torch

    from vsr_pipeline import UpscaleOptions, release_warm_upscalers, upscale
    from vsr_pipeline.media import FrameReader
    from vsr_pipeline.metrics import psnr_y

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clip", default="bigbuckbunny", help="a clip of ../shared/data/videos (no extension)")
    ap.add_argument("--model", default="espcn")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--image", type=Path)
    ap.add_argument("--bf16", metavar="MODEL", help="measure MODEL's bf16 output in 10-bit levels instead")
    args = ap.parse_args()
    if args.bf16:
        print(json.dumps(bf16_levels(args.bf16)))
        return
    clip = ROOT.parent / "shared" / "data" / "videos" / f"{args.clip}.mp4"
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, _node_ip_address="127.0.0.1",
             logging_level="ERROR")
    result: dict[str, object] = {"clip": args.clip, "model": args.model, "frames": args.frames}
    with tempfile.TemporaryDirectory() as tmp:
        lr10 = Path(tmp) / "lr10.mkv"
        gt = make_lr10(clip, args.frames, lr10)
        result["lr_size"] = f"{gt.shape[2] // 4}x{gt.shape[1] // 4}"
        ref = float_reference(args.model, lr10)
        by, bx = flattest_block(ref)
        outputs: dict[str, np.ndarray] = {}
        for bits in (10, 8):
            out = Path(tmp) / f"o{bits}.mkv"
            upscale(lr10, out, UpscaleOptions(model=args.model, scale=4, codec="ffv1", bit_depth=bits,
                                              precision="fp32", progress=False, overwrite=True))
            y = y_levels(out)
            err = y - ref
            with FrameReader(out) as r:
                sr = r.read(args.frames)[0]
            flat = y[0, by : by + 64, bx : bx + 64]
            result[f"bits{bits}"] = {
                "y_rms": round(float(np.sqrt((err**2).mean())), 3),
                "y_max": round(float(np.abs(err).max()), 2),
                "levels_flat": len(np.unique(flat)),
                "psnr_y_gt": round(float(np.mean([psnr_y(a, b, 4) for a, b in zip(sr, gt, strict=True)])), 3),
            }
            outputs[str(bits)] = flat
        result["flat_block"] = {"y": by, "x": bx, "levels_float_range": round(float(np.ptp(
            ref[0, by : by + 64, bx : bx + 64])), 2)}
        if args.image:
            import cv2

            centre = ref[0, by : by + 64, bx : bx + 64].mean()
            tiles = [ref[0, by : by + 64, bx : bx + 64], outputs["10"], outputs["8"]]
            shown = [np.clip((t - centre) * 8 / 4 + 128, 0, 255).astype(np.uint8) for t in tiles]
            big = [cv2.resize(s, (256, 256), interpolation=cv2.INTER_NEAREST) for s in shown]
            gap = np.full((256, 8), 255, np.uint8)
            cv2.imwrite(str(args.image), np.hstack([big[0], gap, big[1], gap, big[2]]))
        seconds: dict[str, list[float]] = {"8": [], "10": []}
        for k in range(args.repeats):
            for bits in (8, 10):
                start = time.perf_counter()
                upscale(lr10, Path(tmp) / f"t{bits}_{k}.mp4", UpscaleOptions(model=args.model, scale=4,
                        bit_depth=bits, progress=False, overwrite=True))
                seconds[str(bits)].append(time.perf_counter() - start)
                print(f"{bits}-bit job {k}: {seconds[str(bits)][-1]:.2f} s", flush=True)
    release_warm_upscalers()
    ray.shutdown()
    if args.repeats > 0:
        med = {k: round(statistics.median(v), 3) for k, v in seconds.items()}
        runs = {k: [round(x, 3) for x in v] for k, v in seconds.items()}
        result.update({"job_median_s": med, "job_runs_s": runs,
                       "ten_over_eight_time": round(med["10"] / med["8"], 3)})
    result.update({"capability": torch.backends.cpu.get_cpu_capability(), "cpus": os.cpu_count(),
                   "torch": torch.__version__, "av": av.__version__, "date": time.strftime("%Y-%m-%d")})
    print(json.dumps(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
