"""Old and odd formats a restoration or surveillance user brings, through ``vsr upscale`` into MP4, MPEG-TS
and Matroska: does the job succeed, and does the audio come along (copied, or re-encoded where the output
cannot hold it)? Each source is made here from the real demo clip (Big Buck Bunny, its sound included), 12
frames: DV (4:1:1, PCM), FLV (Sorenson H.263, MP3), an old digital camera's AVI (MJPEG, 8-bit PCM), a DVD's
VOB (MPEG-2, AC-3), QuickTime (Cinepak, IMA ADPCM), 3GP (H.263, AAC), a capture card's AVI (HuffYUV, PCM),
an XviD AVI (MPEG-4 part 2, MP3).

    python benchmarks/reliability_old_formats.py --json benchmarks/results/old_formats.json
    python benchmarks/reliability_old_formats.py --code /tmp/old_checkout --json ...   # another checkout
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT.parent / "shared" / "data" / "videos" / "bigbuckbunny.mp4"
FRAMES = 12
#: (file, muxer, video codec, pixel format, size, audio codec, sample rate, layout, frame rate)
CASES = [
    ("dv.dv", "dv", "dvvideo", "yuv411p", (720, 480), "pcm_s16le", 48000, "stereo", Fraction(30000, 1001)),
    ("flash.flv", "flv", "flv", "yuv420p", (320, 240), "libmp3lame", 44100, "stereo", Fraction(25)),
    ("camera.avi", "avi", "mjpeg", "yuvj422p", (320, 240), "pcm_u8", 8000, "mono", Fraction(25)),
    ("dvd.vob", "vob", "mpeg2video", "yuv420p", (320, 240), "ac3", 48000, "stereo", Fraction(25)),
    ("cinepak.mov", "mov", "cinepak", "rgb24", (320, 240), "adpcm_ima_qt", 22050, "mono", Fraction(15)),
    ("phone.3gp", "3gp", "h263", "yuv420p", (176, 144), "aac", 8000, "mono", Fraction(15)),
    ("capture.avi", "avi", "huffyuv", "yuv422p", (320, 240), "pcm_s16le", 48000, "stereo", Fraction(25)),
    ("xvid.avi", "avi", "mpeg4", "yuv420p", (320, 240), "libmp3lame", 44100, "stereo", Fraction(25)),
]
OUTPUTS = ("mp4", "ts", "mkv")


def make_source(path: Path, muxer: str, vcodec: str, pix: str, size: tuple[int, int], acodec: str, rate: int,
                layout: str, fps: Fraction) -> None:
    with av.open(str(DEMO)) as c, av.open(str(path), "w", format=muxer) as o:
        v = o.add_stream(vcodec, rate=fps)
        v.width, v.height, v.pix_fmt = size[0], size[1], pix
        if vcodec == "mpeg4":
            v.codec_tag = "XVID"
        a = o.add_stream(acodec, rate=rate)
        a.layout = layout
        resampler = av.AudioResampler(format=a.codec_context.codec.audio_formats[0].name, layout=layout,
                                      rate=rate)
        for i, f in enumerate(c.decode(video=0)):
            if i == FRAMES:
                break
            g = f.reformat(width=size[0], height=size[1], format=pix)
            g.pts, g.time_base = i, 1 / fps
            o.mux(v.encode(g))
        o.mux(v.encode())
        c.seek(0)
        for f in c.decode(audio=0):
            if f.time > FRAMES / fps:
                break
            f.pts = None
            for r in resampler.resample(f):
                o.mux(a.encode(r))
        o.mux(a.encode())


def streams_of(path: Path) -> tuple[int, list[str]]:
    with av.open(str(path)) as c:
        audio = [s.codec_context.name for s in c.streams.audio]
        return sum(1 for _ in c.decode(video=0)), audio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", default=str(ROOT), help="checkout whose vsr_pipeline runs (default: this)")
    parser.add_argument("--json")
    args = parser.parse_args()
    env = {**os.environ, "RAY_ADDRESS": "local", "PYTHONPATH": args.code}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, *spec in CASES:
            src = Path(tmp) / name
            make_source(src, *spec)  # type: ignore[arg-type]
            _, source_audio = streams_of(src)
            for ext in OUTPUTS:
                out = Path(tmp) / f"out_{name}.{ext}"
                run = subprocess.run([sys.executable, "-m", "vsr_pipeline.cli", "upscale", str(src), "-o",
                                      str(out), "--model", "bicubic", "--scale", "2", "--no-progress"],
                                     capture_output=True, text=True, env=env, cwd=args.code, timeout=600)
                row: dict[str, object] = {"source": name, "audio_in": source_audio, "output": ext,
                                          "exit": run.returncode}
                if run.returncode == 0:
                    row["frames"], row["audio_out"] = streams_of(out)
                else:
                    row["error"] = next((ln for ln in run.stderr.splitlines() if "error" in ln), "")[:200]
                row["notes"] = [ln.split(": ", 2)[-1][:160] for ln in run.stderr.splitlines()
                                if ln.startswith("WARNING") or "re-encoded" in ln]
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"code": args.code, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
