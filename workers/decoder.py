"""Decoder worker: reads a video or image folder sequentially in fixed-size batches of uint8 RGB frames."""

from __future__ import annotations

from dataclasses import asdict
from fractions import Fraction
from typing import Any

import numpy as np

from vsr_pipeline.media import FrameReader


class Decoder:
    """Plain class wrapped by ``ray.remote`` in the pipeline; one per input."""

    def __init__(self, path: str, fps: Fraction | None = None, on_corrupt: str = "fail"):
        self.reader = FrameReader(path, fps=fps, on_corrupt=on_corrupt)

    def read(self, n: int) -> tuple[np.ndarray, list[int | None]]:
        """The next ``n`` frames (fewer at the end) and their PTS (``None``: a lost frame to leave out)."""
        return self.reader.read(n)

    def skip(self, n: int) -> int:
        """Decode and drop the next ``n`` frames (chunks a resumed job has already done); returns how many."""
        return len(self.reader.read(n)[1])

    def corrupt(self) -> list[dict[str, Any]]:
        """Frames found undecodable so far (index, pts, time_s, reason)."""
        return [asdict(c) for c in self.reader.corrupt]

    def close(self) -> None:
        self.reader.close()
