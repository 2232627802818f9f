"""Audio/video sync of every output kind: `vsr upscale` (bicubic x2) of clips with audio into each container
and video codec, whole and in 5-frame chunks, and as a live stream from stdin; for each output the A/V
error (its video start minus its audio start, less the source's: 0 when in sync), the largest difference
of a frame's time from its source frame's after the output's one constant shift (0 when every frame keeps
its time; MPEG-1/2 write a frame rate they take: up to half a period), and the frame and audio packet
counts.

    PYTHONPATH=. python benchmarks/reliability_av_sync.py --json benchmarks/results/av_sync.json

The clips: the real demo clip (assets/bbb_demo_160x90.mp4: H.264 + 48 kHz AAC from an FFmpeg export, 50
frames at 25 fps) and a phone-style clip (32x24, 1/90000, ~30 fps with jitter, 48 kHz AAC whose priming
sits before 0: tests/test_segment_timing.py's). Rows where FFmpeg or vsr refuse the combination say so.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av

from tests.conftest import ROOT, make_clip, textured_frames
from tests.test_segment_timing import JITTER, first_times, frame_times

#: (container, codec) pairs vsr writes with the source's AAC copied (WebM takes no AAC: not copied there)
OUTPUTS = [("mp4", "libx264"), ("mp4", "libx265"), ("mp4", "mpeg4"), ("mkv", "libx264"), ("mkv", "libx265"),
           ("mkv", "mpeg2video"), ("mkv", "ffv1"), ("mov", "libx264"), ("mov", "prores_ks"),
           ("ts", "libx264"), ("ts", "libx265"), ("ts", "mpeg2video"), ("ts", "mpeg4")]
LIVE = ["mkv", "ts", "mp4"]


def run(args: list[str], stdin: bytes | None = None) -> str | None:
    """None when ``vsr ARGS`` succeeded, else its error line."""
    done = subprocess.run([sys.executable, "-m", "vsr_pipeline.cli", *args], input=stdin, capture_output=True,
                          cwd=ROOT)
    if done.returncode == 0:
        return None
    lines = [ln for ln in done.stderr.decode().splitlines() if "error" in ln] or ["?"]
    return lines[-1].strip()


def audio_packets(path: Path) -> int:
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return 0
        return sum(1 for p in c.demux(c.streams.audio[0]) if p.size)


def measure(src: Path, out: Path) -> dict[str, object]:
    a, b = first_times(src), first_times(out)
    times_in, times_out = frame_times(src), frame_times(out)
    row: dict[str, object] = {"frames": len(times_out), "audio_packets": audio_packets(out)}
    if "audio" in b:
        row["av_error_ms"] = round(float((b["video"] - b["audio"]) - (a["video"] - a["audio"])) * 1000, 3)
    if len(times_in) == len(times_out):
        shift = times_out[0] - times_in[0]  # 0: both from their first frame
        row["frame_time_error_ms"] = round(max(float(abs(y - x - shift)) for x, y in
                                               zip(times_in, times_out, strict=True)) * 1000, 3)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, help="write the rows here")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        clips = {"real: bbb_demo_160x90.mp4": ROOT / "assets" / "bbb_demo_160x90.mp4",
                 "phone-style VFR + AAC": make_clip(d / "phone.mp4", textured_frames(len(JITTER), 32, 24),
                                                    pts=JITTER, time_base=Fraction(1, 90000), audio=True)}
        for name, src in clips.items():
            for ext, codec in OUTPUTS:
                for chunk in ("default", "5"):
                    out = d / f"{src.stem}_{codec}_{chunk}.{ext}"
                    extra = ["--chunk", chunk] if chunk != "default" else []
                    row: dict[str, object] = {"clip": name, "output": ext, "codec": codec, "chunk": chunk}
                    err = run(["upscale", str(src), "-o", str(out), "--model", "bicubic", "--scale", "2",
                               "--codec", codec, "--no-progress", *extra])
                    row.update({"error": err} if err else measure(src, out))
                    print(json.dumps(row), flush=True)
                    rows.append(row)
            ts = d / f"{src.stem}.ts"  # a live stream: the clip remuxed to MPEG-TS, piped in
            with av.open(str(src)) as c, av.open(str(ts), "w") as o:
                streams = {s.index: o.add_stream_from_template(s) for s in c.streams
                           if s.type in ("video", "audio")}
                for p in c.demux():
                    if p.size and p.stream_index in streams:
                        p.stream = streams[p.stream_index]
                        o.mux(p)
            for ext in LIVE:
                out = d / f"{src.stem}_live.{ext}"
                row = {"clip": name, "output": ext, "codec": "libx264", "chunk": "live (stdin)"}
                err = run(["upscale", "-", "-o", str(out), "--model", "bicubic", "--scale", "2",
                           "--no-progress"], stdin=ts.read_bytes())
                row.update({"error": err} if err else measure(ts, out))
                print(json.dumps(row), flush=True)
                rows.append(row)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
