"""CPU seconds per frame that decoding the input and encoding the output take on this machine: the work the
upscaler's threads must leave cores for (``vsr_pipeline.autotune.choose_threads``).

Measured on the job's own first ``PROBE_FRAMES`` frames: decoded as the decoder does (``FrameReader``),
enlarged to the output size with OpenCV's bicubic (a stand-in for the model's output: the model is not run
here; x264 spent 0.083 CPU-s per 2560x1088 frame on bicubic frames of bikes.mp4 against 0.089-0.103 on
ESPCN's output of the same frames, so this reads a little low), encoded as the encoder does (the job's
``EncodeSettings``, or PNGs for a folder output). CPU time of the whole process, so x264's own threads
count. Cached with the other probes (``autotune.cache_path``) per machine, encode settings and frame sizes,
not per input: content changes the encoder's cost by tens of percent, the thread decision it feeds
changes only where the encoder's share is large.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from vsr_pipeline.media import EncodeSettings, FrameReader, ImageFolderWriter, VideoInfo

#: input frames decoded and encoded to measure their cost (fewer for outputs over ``PROBE_PIXELS``)
PROBE_FRAMES = 8
#: output pixels of ``PROBE_FRAMES`` frames of 2560x1088: a larger output gets proportionally fewer frames
#: (at least 2), so the probe's time stays near a second (x264 medium at 8K takes seconds per frame)
PROBE_PIXELS = PROBE_FRAMES * 2560 * 1088


def probe_frames(width: int, height: int) -> int:
    """Frames to measure at ``width`` x ``height`` output."""
    return max(2, min(PROBE_FRAMES, PROBE_PIXELS // max(1, width * height)))


def enlarge(frames: np.ndarray, scale: int) -> np.ndarray:
    """(T, H, W, 3) uint8 or uint16 -> (T, H*scale, W*scale, 3) with OpenCV's bicubic."""
    import cv2

    return np.stack([cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) for f in frames])


def time_decode_encode(input_path: str | Path, info: VideoInfo, scale: int, encode: EncodeSettings,
                       suffix: str, frames: int | None = None) -> dict[str, float]:
    """CPU seconds per frame (every thread of this process) to decode the first ``frames`` frames of
    ``input_path`` (opening and probing the file not counted) and to encode them at ``scale`` times the size
    into a ``suffix`` video with ``encode`` (``suffix`` "": PNGs). ``frames`` default: ``probe_frames``."""
    fps = info.fps if info.is_image_folder else None
    frames = frames or probe_frames(info.width * scale, info.height * scale)
    deep = encode.bits_for(info, info.width * scale, info.height * scale) > 8  # as the job: uint16 frames

    def cpu() -> float:
        return time.process_time()

    with FrameReader(input_path, fps=fps, on_corrupt="repeat", deep=deep) as reader:
        start = cpu()
        lr, _ = reader.read(frames)
        decode = cpu() - start
    if len(lr) == 0:
        raise ValueError(f"{input_path}: no frame to measure")
    hr = enlarge(lr, scale)
    if deep and hr.dtype == np.uint8:  # an 8-bit input written at 10 bits
        hr = hr.astype(np.uint16) * 257
    with tempfile.TemporaryDirectory(prefix="vsr-encode-probe-") as tmp:
        writer: Any = (encode.open_writer(Path(tmp) / f"probe{suffix}", hr.shape[2], hr.shape[1], info,
                                          overwrite=True)
                       if suffix else ImageFolderWriter(Path(tmp) / "probe", overwrite=True))
        start = cpu()
        with writer:
            writer.write(hr, list(range(len(hr))))
        encoded = cpu() - start
    n = len(lr)
    return {"decode": round(decode / n, 5), "encode": round(encoded / n, 5)}
