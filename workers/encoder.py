"""Encoder worker: writes HR frames, in order, to a video file (audio copied) or a PNG folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vsr_pipeline.media import ImageFolderWriter, VideoInfo, VideoWriter

VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".mov", ".m4v", ".avi", ".webm", ".ts"})


def is_video_path(path: str | Path) -> bool:
    """A path with a video extension is a video; anything else is a folder of PNG frames."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


class Encoder:
    """Plain class wrapped by ``ray.remote``; calls from one caller execute in order."""

    def __init__(
        self,
        output: str,
        info: VideoInfo,
        scale: int,
        codec: str = "libx264",
        crf: int = 18,
        preset: str = "medium",
        overwrite: bool = False,
    ):
        self.frames = 0
        self.video = is_video_path(output)
        self.writer: Any
        if self.video:
            self.writer = VideoWriter.like(
                output,
                info,
                width=info.width * scale,
                height=info.height * scale,
                codec=codec,
                crf=crf,
                preset=preset,
                overwrite=overwrite,
            )
        else:
            self.writer = ImageFolderWriter(output, overwrite=overwrite)

    def write(self, frames: np.ndarray, pts: list[int]) -> int:
        """Write HR frames uint8 (T, H, W, 3) with their source PTS; returns frames written so far."""
        self.writer.write(frames, pts)
        self.frames += len(frames)
        return self.frames

    def close(self) -> int:
        """Finish the file and move it under its final name."""
        self.writer.close()
        return self.frames

    def abort(self) -> None:
        """Drop everything written; nothing appears under the output's name."""
        self.writer.abort()
