"""Compare an upscaled video with its source: frame count, PTS sequence, duration, copied audio packets.

    python benchmarks/reliability_check_timing.py SOURCE OUTPUT [--json]

Exits 1 when any property differs. PTS are compared as exact fractions of a second
(source pts * source time base == output pts * output time base).
"""

from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction
from itertools import pairwise

import av


def video_pts(path: str) -> tuple[list[Fraction], Fraction, tuple[int, int]]:
    with av.open(path) as c:
        s = c.streams.video[0]
        pts = sorted(Fraction(f.pts) * s.time_base for f in c.decode(s))
        return pts, s.time_base, (s.codec_context.width, s.codec_context.height)


def audio_packets(path: str) -> list[tuple[Fraction, bytes]]:
    with av.open(path) as c:
        if not c.streams.audio:
            return []
        s = c.streams.audio[0]
        return [(Fraction(p.pts) * s.time_base, bytes(p)) for p in c.demux(s) if p.size]


def compare(source: str, output: str) -> dict:
    src_pts, src_tb, src_size = video_pts(source)
    out_pts, out_tb, out_size = video_pts(output)
    frame = (
        min(b - a for a, b in pairwise(src_pts)) if len(src_pts) > 1 else Fraction(0)
    )
    src_dur = src_pts[-1] - src_pts[0] + frame
    out_dur = out_pts[-1] - out_pts[0] + frame
    src_audio, out_audio = audio_packets(source), audio_packets(output)
    report = {
        "frames": [len(src_pts), len(out_pts)],
        "size": [list(src_size), list(out_size)],
        "time_base": [str(src_tb), str(out_tb)],
        "pts_equal": src_pts == out_pts,
        "duration_s": [float(src_dur), float(out_dur)],
        "duration_within_one_frame": abs(src_dur - out_dur) <= frame,
        "audio_packets": [len(src_audio), len(out_audio)],
        "audio_packets_identical": src_audio == out_audio,
    }
    report["ok"] = (
        len(src_pts) == len(out_pts)
        and report["pts_equal"]
        and report["duration_within_one_frame"]
        and report["audio_packets_identical"]
    )
    return report


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source")
    p.add_argument("output")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    report = compare(args.source, args.output)
    if args.json:
        print(json.dumps(report))
    else:
        for k, v in report.items():
            print(f"{k:<28} {v}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
