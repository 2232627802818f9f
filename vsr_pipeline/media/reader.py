"""``FrameReader``: sequential decoding into uint8 RGB batches with each frame's own pts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from .colour import frame_to_rgb
from .errors import MediaError, short_reason
from .images import list_images, read_images
from .probe import VideoInfo, open_input, probe


class FrameReader:
    """Decode a video file (or read an image folder) in batches.

    ``read(n)`` returns ``(frames, pts)``: frames (t, H, W, 3) uint8 RGB C-contiguous, pts a list of ints
    in ``info.time_base`` (for image folders pts = index). t < n only at the end, t == 0 at EOF.
    Colours are converted with the matrix/range of the stream's tags (see :mod:`.colour`); frames
    without pts get their dts, else the previous pts plus one frame duration.
    """

    def __init__(self, path: str | os.PathLike[str], fps: Fraction | float | int | None = None):
        self.path = Path(path)
        self.info: VideoInfo = probe(self.path, fps=fps)
        self._index = 0
        self._container = None
        self._frames: Iterator[av.VideoFrame] | None = None
        self._images: list[Path] = []
        if self.info.is_image_folder:
            self._images = list_images(self.path)
            return
        self._container = open_input(self.path)
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        self._frames = self._container.decode(stream)
        step = (1 / (self.info.fps * self.info.time_base)) if self.info.fps else Fraction(1)
        self._step = max(1, round(step))
        self._last_pts: int | None = None

    def _next_frame(self) -> av.VideoFrame | None:
        assert self._frames is not None
        try:
            return next(self._frames, None)
        except av.FFmpegError as exc:
            raise MediaError(f"{self.path}: decoding failed after frame {self._index} "
                             f"({short_reason(exc)})") from None

    def read(self, n: int) -> tuple[np.ndarray, list[int]]:
        """Up to ``n`` next frames and their pts."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        info = self.info
        if info.is_image_folder:
            paths = self._images[self._index : self._index + n]
            pts = list(range(self._index, self._index + len(paths)))
            self._index += len(paths)
            if not paths:
                return np.empty((0, info.height, info.width, 3), np.uint8), []
            frames = read_images(paths)
            if frames.shape[1:3] != (info.height, info.width):
                raise MediaError(f"{paths[0]}: size differs from the folder's {info.width}x{info.height}")
            return frames, pts
        if self._frames is None:
            raise ValueError("reader is closed")
        out: np.ndarray | None = None
        pts_out: list[int] = []
        while len(pts_out) < n:
            frame = self._next_frame()
            if frame is None:
                break
            rgb = frame_to_rgb(frame, info.colorspace, info.color_range)
            if out is None:
                out = np.empty((n, *rgb.shape), np.uint8)
            elif rgb.shape != out.shape[1:]:
                raise MediaError(f"{self.path}: frame {self._index} is {rgb.shape[1]}x{rgb.shape[0]}, "
                                 f"expected {out.shape[2]}x{out.shape[1]} (resolution changes mid-stream)")
            out[len(pts_out)] = rgb
            pts = frame.pts if frame.pts is not None else frame.dts
            if pts is None:
                last = self._last_pts
                pts = last + self._step if last is not None else self._index * self._step
            self._last_pts = int(pts)
            pts_out.append(int(pts))
            self._index += 1
        if out is None:
            return np.empty((0, info.height, info.width, 3), np.uint8), []
        return (out if len(pts_out) == n else np.ascontiguousarray(out[: len(pts_out)])), pts_out

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        """Frames one by one as ((H, W, 3) array, pts)."""
        while True:
            frames, pts = self.read(1)
            if not pts:
                return
            yield frames[0], pts[0]

    def close(self) -> None:
        """Release the decoder and the file."""
        self._frames = None
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
