"""Per-stage costs of the pipeline on this machine, each stage alone, to size a multi-GPU cluster on paper.

    nice -n 5 .venv/bin/python benchmarks/speed_stage_costs.py [--quick] \
        [--out benchmarks/results/stage_costs.json]

Measured (median of 3 timed runs after one warm-up, each stage alone, in one process unless said). The
per-core figures are frames per CPU-second of this process (``time.process_time``) with every library
single-threaded, so other jobs on the shared machine stretch them less than wall time (wall fps is kept too):
- decode: frames/s of ``vsr_pipeline.media.FrameReader.read`` (demux + H.264 decode + the pipeline's
  yuv -> uint8 RGB conversion) on clips made here: the first 60 frames of bigbuckbunny.mp4 (1280x720) resized
  with cv2 INTER_AREA (1920x1080: INTER_CUBIC, upsized) and encoded with libx264 medium crf 18 through
  ``VideoWriter``. Decoder single-threaded (``thread_count=1``: the per-core figure) and with FFmpeg's
  default threads (``thread_type=AUTO``, what the pipeline runs; this machine has 2 cores). Also raw PyAV
  decode without the RGB conversion, single-threaded, to show the conversion's share.
- encode: frames/s of ``VideoWriter.write`` + ``close`` (RGB -> yuv420p + libx264 crf 18) of the x4 outputs
  1280x720, 2560x1440, 5120x2880 (frames: the decoded LR frames upsized x4 with cv2 INTER_CUBIC, smoother than
  a real model's output, so x264 is likely faster here than on real output), presets medium and veryfast,
  x264 ``threads=1`` and OpenCV 1 thread (per core); the RGB -> yuv420p conversion alone is timed too.
- Ray object store: uint8 batches of 8 frames returned by one actor and passed to another on one node
  (``ray.init(num_cpus=2)``): bytes/s of put (the return) + get (the argument, zero-copy on one node, the
  receiver touches one byte per 4 KiB page), one batch at a time and with 4 in flight.

Not measured here, copied with their sources: model costs (docs/benchmarks.md section 9 for the CPU; the
published BasicVSR V100 figure from ../shared/REFERENCES.md). Writes ``--out`` (JSON) and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from vsr_pipeline.media import FrameReader, VideoWriter, rgb_to_frame

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT.parent / "shared" / "data" / "videos" / "bigbuckbunny.mp4"
LR_SIZES = [(320, 180), (640, 360), (1280, 720), (1920, 1080)]
#: HR (x4) sizes encoded and the frames encoded at each (the largest capped: a few s per frame there)
HR_FRAMES = {(1280, 720): 24, (2560, 1440): 12, (5120, 2880): 8}
TB = Fraction(1, 24)


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float, list[float]]:
    """Median wall seconds and median CPU seconds of this process (``time.process_time``: the per-core cost
    of single-threaded work, unlike wall time not stretched by other jobs on a shared machine) of ``fn`` over
    ``repeats`` runs after one untimed warm-up, and every run's wall time."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - start)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), walls


def source_frames(n: int) -> np.ndarray:
    """The first ``n`` frames of the shared clip, uint8 (n, 720, 1280, 3)."""
    reader = FrameReader(CLIP)
    try:
        frames, _ = reader.read(n)
    finally:
        reader.close()
    return frames


def resize_all(frames: np.ndarray, size: tuple[int, int], interp: int) -> np.ndarray:
    """Every frame of (T, H, W, 3) resized to ``size`` = (width, height)."""
    return np.stack([cv2.resize(f, size, interpolation=interp) for f in frames])


def encode(path: Path, frames: np.ndarray, preset: str, threads: int | None) -> None:
    """Encode uint8 (T, H, W, 3) with the pipeline's ``VideoWriter`` (libx264 crf 18)."""
    t, h, w, _ = frames.shape
    cv2.setNumThreads(1)  # the RGB -> YUV conversion (vsr_pipeline.media.colour) runs in OpenCV
    options = {"threads": str(threads)} if threads else None
    with VideoWriter(path, w, h, TB, Fraction(24), crf=18, preset=preset, overwrite=True,
                     options=options) as writer:
        writer.write(frames, list(range(t)))


def decode_rgb(path: Path, threads: int | None) -> int:
    """Frames read by ``FrameReader`` in batches of 8 (``threads`` 1: FFmpeg decoder single-threaded)."""
    cv2.setNumThreads(threads or (os.cpu_count() or 1))  # the YUV -> RGB conversion runs in OpenCV
    reader = FrameReader(path)
    if threads:  # before the first read: the codec opens lazily on the first decode
        cc = reader._container.streams.video[0].codec_context  # type: ignore[union-attr]
        cc.thread_type = "NONE"
        cc.thread_count = threads
    n = 0
    try:
        while True:
            frames, _ = reader.read(8)
            if len(frames) == 0:
                return n
            n += len(frames)
    finally:
        reader.close()


def decode_raw(path: Path) -> int:
    """Frames decoded by PyAV alone (yuv420p, no RGB conversion), single-threaded."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "NONE"
        stream.codec_context.thread_count = 1
        return sum(1 for _ in container.decode(stream))


def measure_media(tmp: Path, n_frames: int, repeats: int) -> tuple[list[dict], list[dict]]:
    """Decode rows (one per LR size) and encode rows (one per HR size and preset)."""
    src = source_frames(n_frames)
    decode_rows, encode_rows = [], []
    lr_frames: dict[tuple[int, int], np.ndarray] = {}
    for w, h in LR_SIZES:
        interp = cv2.INTER_AREA if w <= src.shape[2] else cv2.INTER_CUBIC
        frames = resize_all(src, (w, h), interp) if (w, h) != (src.shape[2], src.shape[1]) else src
        lr_frames[(w, h)] = frames
        path = tmp / f"lr_{w}x{h}.mp4"
        encode(path, frames, "medium", None)
        n = decode_rgb(path, 1)
        row: dict[str, Any] = {"size": f"{w}x{h}", "frames": n, "file_bytes": path.stat().st_size,
                               "kbit_per_s_at_24fps": round(path.stat().st_size * 8 / (n / 24) / 1000)}
        for key, fn in (("rgb_threads1", lambda p=path: decode_rgb(p, 1)),
                        ("rgb_threads_auto", lambda p=path: decode_rgb(p, None)),
                        ("raw_yuv_threads1", lambda p=path: decode_raw(p))):
            med, cpu, runs = timed(fn, repeats)
            row[f"fps_{key}"] = round(n / med, 1)
            row[f"fps_per_cpu_s_{key}"] = round(n / cpu, 1)
            row[f"runs_s_{key}"] = [round(x, 4) for x in runs]
        decode_rows.append(row)
        print(f"decode {w}x{h} per CPU-s (wall): {row['fps_per_cpu_s_rgb_threads1']} "
              f"({row['fps_rgb_threads1']}) incl. RGB, {row['fps_per_cpu_s_raw_yuv_threads1']} "
              f"({row['fps_raw_yuv_threads1']}) raw yuv; threads=auto wall {row['fps_rgb_threads_auto']}",
              flush=True)
    for (w, h), count in HR_FRAMES.items():
        lr = lr_frames[(w // 4, h // 4)]
        hr = resize_all(lr[:count], (w, h), cv2.INTER_CUBIC)
        cv2.setNumThreads(1)
        _, cpu, _ = timed(lambda f=hr: [rgb_to_frame(x, "yuv420p", 1, 1) for x in f], repeats)
        rgb_fps = round(count / cpu, 2)
        print(f"rgb -> yuv420p {w}x{h}: {rgb_fps} per CPU-s", flush=True)
        for preset in ("medium", "veryfast"):
            path = tmp / f"hr_{w}x{h}_{preset}.mp4"
            med, cpu, runs = timed(lambda p=path, f=hr, s=preset: encode(p, f, s, 1), repeats)
            encode_rows.append({"size": f"{w}x{h}", "lr_size": f"{w // 4}x{h // 4}", "preset": preset,
                                "crf": 18, "x264_threads": 1, "frames": count,
                                "rgb_to_yuv_fps_per_cpu_s": rgb_fps, "fps_wall": round(count / med, 3),
                                "fps_per_cpu_s": round(count / cpu, 3), "runs_s": [round(x, 3) for x in runs],
                                "file_bytes": path.stat().st_size})
            print(f"encode {w}x{h} {preset}: {count / cpu:.3f}/CPU-s ({count / med:.3f} wall)", flush=True)
    return decode_rows, encode_rows


def measure_ray(repeats: int, quick: bool) -> list[dict]:
    """Actor -> object store -> actor throughput of uint8 batches of 8 frames, on one node."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_worker_niceness", "0")  # as the pipeline does (Ray's default is nice 15)
    ray.init(address="local", num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             object_store_memory=2 * 1024**3, log_to_driver=False)

    @ray.remote(num_cpus=0)
    class Producer:
        def __init__(self, shape: tuple[int, ...]):
            self.batch = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)

        def emit(self) -> np.ndarray:
            return self.batch  # serialised into the object store (the put)

    @ray.remote(num_cpus=0)
    class Consumer:
        def take(self, frames: np.ndarray) -> int:  # resolved from the store (the get, zero-copy on one node)
            return int(frames.reshape(-1)[::4096].sum())

    rows = []
    try:
        for w, h in [(320, 180), (1280, 720), (2560, 1440)]:
            shape = (8, h, w, 3)
            nbytes = int(np.prod(shape))
            prod, cons = Producer.remote(shape), Consumer.remote()
            ray.get(cons.take.remote(prod.emit.remote()))
            calls = 6 if quick else 12

            def serial(p: Any = prod, c: Any = cons, k: int = calls) -> None:
                for _ in range(k):
                    ray.get(c.take.remote(p.emit.remote()))

            def pipelined(p: Any = prod, c: Any = cons, k: int = calls) -> None:
                pending: list[Any] = []
                for _ in range(k):
                    if len(pending) >= 4:
                        done, pending = ray.wait(pending, num_returns=1)
                        ray.get(done)
                    pending.append(c.take.remote(p.emit.remote()))
                ray.get(pending)

            row: dict[str, Any] = {"frames": f"8 x {w}x{h}x3 uint8", "batch_bytes": nbytes, "calls": calls}
            for key, fn in (("one_at_a_time", serial), ("four_in_flight", pipelined)):
                med, _, runs = timed(fn, repeats)
                row[f"gb_per_s_{key}"] = round(nbytes * calls / med / 1e9, 3)
                row[f"ms_per_batch_{key}"] = round(med / calls * 1000, 2)
                row[f"runs_s_{key}"] = [round(x, 4) for x in runs]
            rows.append(row)
            print(f"ray 8x{w}x{h}: {row['gb_per_s_one_at_a_time']} GB/s one at a time, "
                  f"{row['gb_per_s_four_in_flight']} GB/s 4 in flight", flush=True)
            ray.kill(prod)
            ray.kill(cons)
    finally:
        ray.shutdown()
    return rows


def model_costs() -> dict[str, Any]:
    """Model costs copied from earlier measurements and publications (nothing timed here)."""
    speed = json.loads((ROOT / "benchmarks" / "results" / "model_speed.json").read_text())
    cpu = {m["model"]: m for m in speed["models"] if m["model"] in ("basicvsr", "espcn")}
    return {
        "cpu_measured_elsewhere": {
            "source": "benchmarks/results/model_speed.json (docs/benchmarks.md section 9): "
                      + speed["command"] + "; an upper bound (busy machine)",
            **{k: {"seconds_per_frame": v["seconds_per_frame"], "input": v["input"], "params": v["params"]}
               for k, v in cpu.items()},
        },
        "gpu_assumed": {
            "basicvsr_x4_320x180_v100_ms_per_frame": 63,
            "basicvsr_x4_320x180_tflops_per_frame": 0.33,
            "source": "published (../shared/REFERENCES.md, 'Published cost'); not measured here",
        },
        "espcn_x4_gflops_per_frame_320x180": round(2 * cpu["espcn"]["params"] * 320 * 180 / 1e9, 2),
        "espcn_flops_note": "2 x params x LR pixels (every ESPCN layer runs at LR size; bias terms included, "
                            "a slight over-count); computed, not measured",
    }


#: Figures the on-paper model assumes (not measured here), each with its source.
ASSUMED: dict[str, Any] = {
    "basicvsr_ms_per_frame_320x180": (63.0, "published, V100, LR 320x180 -> x4 (../shared/REFERENCES.md)"),
    "basicvsr_ms_per_frame_1280x720": (63.0 * 16, "the published 63 ms scaled by 16x the LR pixels (every "
                                       "BasicVSR layer and SpyNet run at LR size); an extrapolation"),
    "espcn_ms_per_frame_320x180": ("63 x 4.29 / 330", "the published BasicVSR 63 ms x the ESPCN / BasicVSR "
                                   "FLOPs ratio; optimistic: a 37k-parameter net is memory-bound on a GPU"),
    "host_cores_per_gpu": (1, "the upscaler actor's own process (feeding the GPU, uint8 in/out, its "
                           "object-store put), a guess"),
    "nic_gb_per_s": (12.5, "100 Gb/s Ethernet at line rate; 25 Gb/s (3.1 GB/s) is also common"),
    "gpus_per_node": (8, "the brief"),
}


def paper_model(costs: dict[str, Any], cores: tuple[int, ...] = (32, 64)) -> str:
    """Markdown tables: for 1..64 GPUs, the cores and bytes/s each stage needs and what binds first."""
    dec = {r["size"]: r["fps_per_cpu_s_rgb_threads1"] for r in costs["decode"]}
    enc = {(r["size"], r["preset"]): r["fps_per_cpu_s"] for r in costs["encode"]}
    # one actor's put + get rate: the better of the two modes (on a loaded machine both are lower bounds)
    put = {r["frames"].split(" x ")[1].split("x3")[0]:
           max(r["gb_per_s_one_at_a_time"], r["gb_per_s_four_in_flight"]) for r in costs["object_store"]}
    espcn_ms = 63.0 * costs["model"]["espcn_x4_gflops_per_frame_320x180"] / 330.0
    per_node, host = ASSUMED["gpus_per_node"][0], ASSUMED["host_cores_per_gpu"][0]
    nic = ASSUMED["nic_gb_per_s"][0]
    cases = [("BasicVSR x4, 320x180 -> 1280x720", 63.0, "320x180", "1280x720"),
             ("BasicVSR x4, 1280x720 -> 5120x2880", 63.0 * 16, "1280x720", "5120x2880"),
             ("ESPCN x4, 320x180 -> 1280x720", espcn_ms, "320x180", "1280x720"),
             ("ESPCN x4, 1280x720 -> 5120x2880", espcn_ms * 16, "1280x720", "5120x2880")]
    out = []
    for title, ms, lr, hr in cases:
        w, h = map(int, hr.split("x"))
        hr_bytes = w * h * 3
        r = 1000.0 / ms  # output frames/s of one GPU (assumed)
        d, e_med, e_vf = dec[lr], enc[(hr, "medium")], enc[(hr, "veryfast")]
        c = 1 / d + 1 / e_med  # CPU-s per output frame for decode + encode (medium)
        put_gbs = put["1280x720" if hr == "1280x720" else "2560x1440"]
        r_put = put_gbs * 1e9 / hr_bytes  # one upscaler actor's puts of its HR output, frames/s
        out.append(f"**{title}**: {r:.1f} frames/s per GPU (assumed, {ms:.1f} ms), decode {d:.0f} and encode "
                   f"{e_med:.2f} (medium) / {e_vf:.2f} (veryfast) frames per CPU-s (measured), "
                   f"{hr_bytes / 1e6:.1f} MB per HR frame, one actor's puts {r_put:.0f} frames/s (measured "
                   f"{put_gbs} GB/s).\n")
        head = ("| GPUs | nodes | GPU-bound frames/s | decode cores | encode cores medium / veryfast "
                "| HR GB/s across the network (all nodes) | HR GB/s into one node |")  # at the GPU-bound rate
        sep = "|---|---|---|---|---|---|---|"
        for n in cores:
            head += f" {n} cores/node: frames/s, bottleneck |"
            sep += "---|"
        out += [head, sep]
        for g in (1, 2, 4, 8, 16, 32, 64):
            k = -(-g // per_node)  # nodes
            f_gpu = g * min(r, r_put)
            # Decoders and encoders are num_cpus=0 actors: Ray puts each on a random node, so a video's HR
            # frames (from upscalers anywhere in the pool) reach its encoder's node with probability 1/k.
            cross = f_gpu * hr_bytes * (k - 1) / k
            row = (f"| {g} | {k} | {f_gpu:.1f}{' (put-bound)' if r_put < r else ''} | {f_gpu / d:.2f} | "
                   f"{f_gpu / e_med:.1f} / {f_gpu / e_vf:.1f} | {cross / 1e9:.2f} | {cross / k / 1e9:.2f} |")
            for n in cores:
                limits = {"upscaler put" if r_put < r else "GPU": f_gpu,
                          "CPU (encode)": k * (n - host * min(g, per_node)) / c}
                if k > 1:
                    limits["network"] = nic * 1e9 * k * k / ((k - 1) * hr_bytes)
                name = min(limits, key=lambda x: limits[x])
                row += f" {limits[name]:.0f}, {name} |"
            out.append(row)
        out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 timed run, 24 frames: a smoke test")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "stage_costs.json")
    ap.add_argument("--table", action="store_true", help="measure nothing: print the on-paper scaling tables "
                    "(docs/scaling.md) from --out")
    args = ap.parse_args()
    if args.table:
        print(paper_model(json.loads(args.out.read_text())))
        print("Assumed (not measured here):")
        for key, (value, source) in ASSUMED.items():
            print(f"- {key}: {value} ({source})")
        return
    repeats = 1 if args.quick else 3
    load_before = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        decode_rows, encode_rows = measure_media(Path(tmp), 24 if args.quick else 60, repeats)
    ray_rows = measure_ray(repeats, args.quick)
    result = {
        "command": "nice -n 5 .venv/bin/python benchmarks/speed_stage_costs.py" + (" --quick" * args.quick),
        "machine": {"cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                    "pyav": av.__version__, "ffmpeg_libavcodec": av.library_versions.get("libavcodec"),
                    "note": "shared machine (other people's tests and a training job run alongside): "
                            "absolute figures are lower bounds of a quiet core"},
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "seconds": round(time.perf_counter() - started, 1),
        "repeats": repeats,
        "decode": decode_rows,
        "encode": encode_rows,
        "object_store": ray_rows,
        "bytes_per_frame": {f"{w}x{h}": {"lr_in": w * h * 3, "hr_out_x4": 16 * w * h * 3}
                            for w, h in LR_SIZES},
        "model": model_costs(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out} in {result['seconds']} s; load {result['load_average_before']} -> "
          f"{result['load_average_after']}")


if __name__ == "__main__":
    main()
