"""Issue 8, evidences 1 and 2: `vsr batch` on a real two-node Ray cluster on this machine.

Cuts 20 clips from ../shared/data/videos (bigbuckbunny with its AAC audio, bikes, tree; downscaled so the CPU
can run them, keyframe every 8 frames so decoders really seek) and adds one corrupt file (a clip cut short).
Starts a Ray cluster of two nodes (``ray.cluster_utils.Cluster``), each declaring one GPU so the GPU placement
runs (one upscaler per GPU; on this CPU-only machine the actors then compute on the CPU), and runs the CLI:

    vsr batch CLIPS... corrupt.mp4 -o OUT --address ADDR --model M --scale 4 --decoders 2 --json

Checks every good output (frame count, every frame's PTS, size, audio packets byte for byte), that the
corrupt file alone failed, the upscalers' nodes and busy share; and, for every clip, that 1 and 3 seeking
decoders give exactly the sequential decode. Writes benchmarks/results/batch_cluster.json.

    python benchmarks/scaling_batch_cluster.py [--model vespcn] [--frames 16] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = ROOT.parent / "shared" / "data" / "videos"
#: (source, clips, width): bigbuckbunny has the audio
SOURCES = [("bigbuckbunny.mp4", 6, 160), ("bikes.mp4", 10, 160), ("tree.avi", 4, 160)]


def cut_clips(out: Path, frames: int) -> list[Path]:
    """``frames``-frame clips of every source, each starting at pts 0, H.264 (keyframe every 8 frames), AAC
    audio re-encoded for the clip's span where the source has audio."""
    clips = []
    for name, count, width in SOURCES:
        with av.open(str(VIDEOS / name)) as src:
            vs = src.streams.video[0]
            decoded = [f.to_ndarray(format="rgb24") for f in src.decode(vs)]
        h, w = decoded[0].shape[:2]
        height = round(h * width / w / 2) * 2
        rate = Fraction(vs.average_rate or 25).limit_denominator(1001)
        step = max(frames, (len(decoded) - frames) // max(1, count - 1))
        for k in range(count):
            start = min(k * step, len(decoded) - frames)
            path = out / f"{Path(name).stem}_{k:02d}.mp4"
            write_clip(path, decoded[start : start + frames], width, height, rate, VIDEOS / name,
                       start / float(rate))
            clips.append(path)
    return clips


def write_clip(path: Path, rgb: list[np.ndarray], width: int, height: int, rate: Fraction, source: Path,
               t0: float) -> None:
    with av.open(str(path), "w") as dst:
        v = dst.add_stream("libx264", rate=rate)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.options = {"crf": "18", "x264-params": "keyint=8:min-keyint=8:scenecut=0"}
        with av.open(str(source)) as src:
            audio = src.streams.audio[0] if src.streams.audio else None
            a = dst.add_stream("aac", rate=audio.rate) if audio is not None else None
            if a is not None:
                a.layout = audio.layout.name
            for i, frame in enumerate(rgb):
                small = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
                vf = av.VideoFrame.from_ndarray(small, format="rgb24")
                vf.pts = i
                vf.time_base = 1 / rate
                dst.mux(v.encode(vf))
            dst.mux(v.encode())
            if a is not None:
                t1 = t0 + len(rgb) / float(rate)
                resampler = av.AudioResampler(format="fltp", layout=audio.layout.name, rate=audio.rate)
                n = 0
                for af in src.decode(audio):
                    t = float(af.pts * af.time_base)
                    if t + af.samples / af.sample_rate <= t0 or t >= t1:
                        continue
                    for out in resampler.resample(af):
                        out.pts = n
                        n += out.samples
                        dst.mux(a.encode(out))
                dst.mux(a.encode())


def video_pts(path: Path) -> list[Fraction]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return sorted(Fraction(p.pts) * s.time_base for p in c.demux(s) if p.size)


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size] if c.streams.audio else []


def frame_size(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return s.codec_context.width, s.codec_context.height


def decoders_equal(clip: Path, decoders: int, batch: int = 4) -> bool:
    """Frames and pts of ``decoders`` seeking decoders (plain classes) == the sequential decode."""
    from vsr_pipeline.media import FrameReader
    from vsr_pipeline.media.seek import scan
    from workers.decoder import Decoder, assign_batches

    reader = FrameReader(clip)
    ref, ref_pts = reader.read(reader.info.frames)
    index = scan(clip)
    owners = assign_batches(len(ref), batch, decoders, index.keyframes)
    pool = [Decoder(str(clip)) for _ in range(decoders)]
    got = [pool[o].read_batch(b, batch) for b, o in enumerate(owners)]
    frames = np.concatenate([g[0] for g in got])
    pts = [p for g in got for p in g[1]]
    return pts == ref_pts and np.array_equal(frames, ref)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="vespcn")
    ap.add_argument("--frames", type=int, default=16, help="frames per clip")
    ap.add_argument("--preset", default="veryfast", help="x264 preset of the outputs")
    ap.add_argument("--jobs", type=int, help="videos in flight (default: vsr batch's)")
    ap.add_argument("--decoders", type=int, default=2, help="seeking decoders per video")
    ap.add_argument("--chunk", type=int, help="core frames per chunk (default: vsr batch's)")
    ap.add_argument("--keep", type=Path, help="keep the clips and outputs in this folder")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "batch_cluster.json")
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    work = args.keep or Path(tempfile.mkdtemp(prefix="vsr-batch-cluster-"))
    work.mkdir(parents=True, exist_ok=True)
    clips_dir, out_dir = work / "clips", work / "out"
    shutil.rmtree(out_dir, ignore_errors=True)
    clips_dir.mkdir(exist_ok=True)
    clips = cut_clips(clips_dir, args.frames)
    corrupt = clips_dir / "corrupt.mp4"
    data = clips[0].read_bytes()
    corrupt.write_bytes(data[: len(data) // 2])  # cut short: no index (moov) at the end
    print(f"{len(clips)} clips + 1 corrupt in {clips_dir}", file=sys.stderr)

    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 1})
    cluster.add_node(num_cpus=1, num_gpus=1)
    cluster.wait_for_nodes()
    try:
        cmd = [sys.executable, "-m", "vsr_pipeline.cli", "batch", *map(str, clips), str(corrupt), "-o",
               str(out_dir), "--address", cluster.address, "--model", args.model, "--scale", "4",
               "--decoders", str(args.decoders), "--preset", args.preset, "--json"]
        cmd += ["--jobs", str(args.jobs)] if args.jobs else []
        cmd += ["--chunk", str(args.chunk)] if args.chunk else []
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - t0
    finally:
        cluster.shutdown()
    sys.stderr.write(proc.stderr[-3000:])
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    checks = []
    for v in summary["videos"]:
        src, out = Path(v["input"]), Path(v["output"])
        if src == corrupt:
            checks.append({"input": src.name, "status": v["status"], "error": v["error"],
                           "as_expected": v["status"] == "failed" and not out.exists()})
            continue
        sw, sh = frame_size(src)
        ok = {
            "input": src.name,
            "status": v["status"],
            "frames": v["frames"] == len(video_pts(src)) == len(video_pts(out)),
            "pts": video_pts(out) == video_pts(src),
            "size": frame_size(out) == (4 * sw, 4 * sh),
            "audio_packets": len(audio_packets(src)),
            "audio": audio_packets(out) == audio_packets(src),
            "decoders_1_3_equal_sequential": decoders_equal(src, 1) and decoders_equal(src, 3),
        }
        ok["as_expected"] = v["status"] == "ok" and all(ok[k] for k in ("frames", "pts", "size", "audio",
                                                                          "decoders_1_3_equal_sequential"))
        checks.append(ok)
    result = {
        "command": " ".join(["vsr", *cmd[3:]]).replace(str(clips_dir), "CLIPS").replace(str(out_dir), "OUT"),
        "exit_code": proc.returncode,
        "wall_s": round(wall, 1),
        "nodes": 2,
        "node_resources": {"num_cpus": 1, "num_gpus": 1},
        "summary": {k: summary[k] for k in ("ok", "failed", "skipped", "frames", "seconds", "fps", "device",
                                            "upscalers", "placement", "upscaler_busy_s", "upscaler_nodes",
                                            "upscaler_frames", "upscaler_calls",
                                            "busy_share", "startup_s", "exit_code")},
        "all_as_expected": all(c["as_expected"] for c in checks),
        "distinct_upscaler_nodes": len(set(summary["upscaler_nodes"])),
        "checks": checks,
        "loadavg": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for name in ("report", "plot"):
        if summary.get(name):
            shutil.copy(summary[name], args.out.with_name(f"batch_cluster{Path(summary[name]).suffix}"))
    print(json.dumps({k: result[k] for k in ("exit_code", "wall_s", "all_as_expected",
                                             "distinct_upscaler_nodes")} | result["summary"], indent=1))
    return 0 if result["all_as_expected"] else 1


if __name__ == "__main__":
    sys.exit(main())
