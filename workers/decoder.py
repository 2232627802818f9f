"""Decoder worker: reads a video or image folder sequentially in fixed-size batches of uint8 RGB frames."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from vsr_pipeline.media import FrameReader


class Decoder:
    """Plain class wrapped by ``ray.remote`` in the pipeline; one per input."""

    def __init__(self, path: str, fps: Fraction | None = None):
        self.reader = FrameReader(path, fps=fps)

    def read(self, n: int) -> tuple[np.ndarray, list[int]]:
        """The next ``n`` frames (fewer at the end) and their PTS."""
        return self.reader.read(n)

    def close(self) -> None:
        self.reader.close()
