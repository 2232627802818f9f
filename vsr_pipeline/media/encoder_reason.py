"""Why an encoder would not open, in FFmpeg's own words, asked of a child process.

PyAV's exception says only "Invalid argument"; FFmpeg logs the reason ("MPEG-1/2 does not support 7/1
fps", "Error setting option profile to value bogus."). Catching that log in this process would mean turning
on PyAV's log callback, which takes the GIL from FFmpeg's own threads: with another thread decoding
meanwhile (``vsr batch`` plans one video while it decodes another), a frame-threaded H.264 decoder's thread
waited for the GIL while the thread holding it waited in ``avcodec_free_context`` for that thread, and the
batch hung. So the failed open is repeated in a fresh Python process, where logging is safe, and its error
lines come back; only ever on a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding the vsr_pipeline package


def encoder_reason(cc: Any, options: dict[str, str], timeout: float = 60.0) -> str | None:
    """FFmpeg's last error line when the encoder of codec context ``cc`` (its name, size, pixel format, time
    base and rate) opens with ``options`` and encodes one black frame, or None (it opened there, or the
    child could not say)."""
    tb, rate = Fraction(cc.time_base), Fraction(cc.framerate or 25)
    spec = {"codec": cc.name, "width": cc.width, "height": cc.height, "pix_fmt": cc.pix_fmt,
            "options": options, "time_base": [tb.numerator, tb.denominator],
            "rate": [rate.numerator, rate.denominator]}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")]))}
    code = "from vsr_pipeline.media.encoder_reason import main; main()"
    try:
        done = subprocess.run([sys.executable, "-c", code], input=json.dumps(spec), capture_output=True,
                              text=True, timeout=timeout, env=env, check=False)
        said = json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
    return said[-1] if said else None


def main() -> None:
    """Child: open the encoder ``stdin``'s JSON describes, encode one frame, print FFmpeg's errors as JSON."""
    import av
    import av.logging

    spec: dict[str, Any] = json.loads(sys.stdin.read())
    av.logging.set_level(av.logging.ERROR)
    with av.logging.Capture() as logs:
        try:
            cc = av.CodecContext.create(spec["codec"], "w")
            cc.width, cc.height, cc.pix_fmt = spec["width"], spec["height"], spec["pix_fmt"]
            cc.time_base = Fraction(*spec["time_base"])
            cc.framerate = Fraction(*spec["rate"])
            cc.options = spec["options"]
            frame = av.VideoFrame(spec["width"], spec["height"], spec["pix_fmt"])
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            frame.pts = 0
            cc.encode(frame)
            cc.encode(None)
        except (av.FFmpegError, ValueError):
            pass
    said = [m.strip() for level, _, m in logs if level <= av.logging.ERROR and m.strip()]
    print(json.dumps(said))
