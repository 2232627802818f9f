"""What each output chroma layout and codec keeps of the model's output, what it weighs and what it costs.

    python benchmarks/quality_chroma_layouts.py [--clip bigbuckbunny] [--model espcn] [--frames 24]
        [--repeats 3] [--json PATH]

The input: the first ``--frames`` frames of a real clip (../shared/data/videos), MATLAB bicubic x4 down and
written with x264 at crf 18, 4:2:0 8-bit (what users bring). The pipeline upscales it x4 with ``--model``
to a PNG folder (the reference: the model's 8-bit RGB output, full chroma resolution) and to each output
below, every one through the same job (``vsr_pipeline.upscale``; only ``--codec``, ``--chroma``,
``--bit-depth`` and the container differ). Each output is decoded (8-bit RGB, our matrix) and compared with
the reference frame by frame:

- ``psnr_rgb``: PSNR over R, G, B; ``psnr_y``, ``psnr_cb``, ``psnr_cr``: PSNR of BT.601 Y, Cb, Cr (8-bit,
  studio range): the chroma columns show what 4:2:0 and 4:2:2 throw away of an output whose colour is at
  full resolution;
- ``mbit_s``: the file's video bit rate at the clip's frame rate;
- ``seconds``: median of ``--repeats`` whole jobs (Ray started once; outputs in turn, so drift spreads over
  all) and ``time_ratio`` against the first row (x264 4:2:0, the default).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Layout:
    name: str
    codec: str
    ext: str
    chroma: str | None = None
    bit_depth: int | None = None


LAYOUTS = (
    Layout("x264 crf18 4:2:0 (default)", "libx264", ".mp4"),
    Layout("x264 crf18 4:4:4", "libx264", ".mkv", "444"),
    Layout("x264 crf18 4:2:2 10-bit", "libx264", ".mkv", "422", 10),
    Layout("x265 crf18 4:4:4 10-bit", "libx265", ".mkv", "444", 10),
    Layout("SVT-AV1 crf18 4:2:0 10-bit", "libsvtav1", ".mkv", None, 10),
    Layout("ProRes HQ 4:2:2 10-bit (auto)", "prores_ks", ".mov"),
    Layout("ProRes 4444 10-bit", "prores_ks", ".mov", "444"),
    Layout("DNxHR HQ 4:2:2 (auto)", "dnxhd", ".mov"),
    Layout("FFV1 4:2:0", "ffv1", ".mkv", "420"),
    Layout("FFV1 4:4:4", "ffv1", ".mkv", "444"),
)


def make_lr(clip: Path, frames: int, out: Path) -> None:
    from vsr_pipeline.degrade import crop_to_multiple, imresize, to_uint8
    from vsr_pipeline.media import FrameReader

    with FrameReader(clip) as reader:
        hr = crop_to_multiple(reader.read(frames)[0], 8)
    lr = np.stack([to_uint8(imresize(f.astype(np.float64) / 255, 1 / 4) * 255) for f in hr])
    x264_file(lr, out, 18)


def x264_file(frames: np.ndarray, out: Path, crf: int) -> Path:
    """RGB ``frames`` (T, H, W, 3) uint8 to ``out``: 4:2:0 by FFmpeg's scaler (as ``ffmpeg -pix_fmt
    yuv420p``), libx264 at ``crf``, 25 fps."""
    with av.open(str(out), "w") as c:
        s = c.add_stream("libx264", rate=25, options={"crf": str(crf)})
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuv420p")
            vf.pts = i
            c.mux(s.encode(vf))
        c.mux(s.encode(None))
    return out


def ycbcr(rgb: np.ndarray) -> np.ndarray:
    """BT.601 studio-range Y, Cb, Cr (float64) of uint8 RGB, the MATLAB ``rgb2ycbcr`` convention."""
    m = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]]) / 255
    return rgb.astype(np.float64) @ m.T + np.array([16.0, 128.0, 128.0])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)


def compare(out: Path, ref: np.ndarray) -> dict[str, float]:
    from vsr_pipeline.media import FrameReader

    with FrameReader(out) as r:
        got = r.read(r.info.frames)[0]
    assert got.shape == ref.shape, (got.shape, ref.shape)
    a, b = ycbcr(got), ycbcr(ref)
    return {"psnr_rgb": psnr(got, ref), "psnr_y": psnr(a[..., 0], b[..., 0]),
            "psnr_cb": psnr(a[..., 1], b[..., 1]), "psnr_cr": psnr(a[..., 2], b[..., 2])}


def video_bytes(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(p.size for p in c.demux(video=0) if p.size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="bigbuckbunny")
    ap.add_argument("--model", default="espcn")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import ray

    from vsr_pipeline import UpscaleOptions, upscale

    clip = ROOT.parent / "shared" / "data" / "videos" / f"{args.clip}.mp4"
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        lr = tmp / "lr.mp4"
        make_lr(clip, args.frames, lr)
        base = UpscaleOptions(model=args.model, scale=4, precision="fp32", batch=4, progress=False,
                              overwrite=True)
        upscale(lr, tmp / "ref", base)
        import cv2

        ref = np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
                        for p in sorted((tmp / "ref").glob("*.png"))])
        seconds: dict[str, list[float]] = {lay.name: [] for lay in LAYOUTS}
        results: dict[str, dict] = {}
        for _ in range(max(1, args.repeats)):
            for lay in LAYOUTS:
                out = tmp / f"out_{LAYOUTS.index(lay)}{lay.ext}"
                opts = UpscaleOptions(**{**base.__dict__, "codec": lay.codec, "chroma": lay.chroma,
                                         "bit_depth": lay.bit_depth})
                t0 = time.perf_counter()
                res = upscale(lr, out, opts)
                seconds[lay.name].append(time.perf_counter() - t0)
                results[lay.name] = {"pix_fmt": res.pix_fmt, **compare(out, ref),
                                     "mbit_s": video_bytes(out) * 8 / (len(ref) / 25) / 1e6}
    ray.shutdown()
    first = statistics.median(seconds[LAYOUTS[0].name])
    rows = []
    for lay in LAYOUTS:
        med = statistics.median(seconds[lay.name])
        rows.append({"layout": lay.name, "codec": lay.codec, **results[lay.name], "seconds": med,
                     "seconds_all": seconds[lay.name], "time_ratio": med / first})
    print(f"{'layout':32} {'pix_fmt':12} {'RGB':>6} {'Y':>6} {'Cb':>6} {'Cr':>6} {'Mbit/s':>7} {'s':>6} "
          "ratio")
    for r in rows:
        print(f"{r['layout']:32} {r['pix_fmt']:12} {r['psnr_rgb']:6.2f} {r['psnr_y']:6.2f} "
              f"{r['psnr_cb']:6.2f} {r['psnr_cr']:6.2f} {r['mbit_s']:7.2f} {r['seconds']:6.2f} "
              f"{r['time_ratio']:.2f}")
    if args.json:
        from vsr_pipeline.precision import cpu_has_bf16

        cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
        name = next((ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines()
                     if ln.startswith("model name")), "unknown")
        cpu = {"model": name, "cores": os.cpu_count(), "bf16_units": cpu_has_bf16()}
        args.json.write_text(json.dumps({"clip": args.clip, "model": args.model, "frames": args.frames,
                                         "lr": f"{ref.shape[2] // 4}x{ref.shape[1] // 4}", "cpu": cpu,
                                         "repeats": args.repeats, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
