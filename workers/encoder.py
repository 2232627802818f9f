"""Encoder worker: writes each chunk's HR frames as one segment (a video file, or a folder of PNGs).

A segment appears under its name only when complete (temporary name, then rename), so the ledger
(``vsr_pipeline.ledger``) can trust any segment it names. The driver joins the segments at the end
(``join_segments``): packets copied, no re-encoding.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vsr_pipeline.media import EncodeSettings, ImageFolderWriter, VideoInfo
from vsr_pipeline.media.mux import concat_segments

VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".mov", ".m4v", ".avi", ".webm", ".ts"})


def is_video_path(path: str | Path) -> bool:
    """A path with a video extension is a video; anything else is a folder of PNG frames."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def segment_suffix(output: str | Path) -> str:
    """Suffix of a segment of ``output``: its extension for a video (same muxer), none for a PNG folder."""
    return Path(output).suffix.lower() if is_video_path(output) else ""


class Encoder:
    """Plain class wrapped by ``ray.remote``; one segment per call, independent of the others."""

    def __init__(
        self,
        output: str,
        info: VideoInfo,
        scale: int,
        encode: EncodeSettings | None = None,
        segments: str | None = None,
    ):
        self.output = Path(output)
        self.info = info
        self.width, self.height = info.width * scale, info.height * scale
        self.encode = encode or EncodeSettings()
        self.segments = Path(segments) if segments is not None else self.output.parent
        self.video = is_video_path(output)
        if self.video:  # fail now, not at the first chunk, on a codec/container that cannot work
            check_encoder(self.segments / f".check{self.output.suffix}", info, scale, self.encode)

    def write_segment(
        self, index: int, frames: np.ndarray, pts: Sequence[int | None]
    ) -> tuple[str | None, int]:
        """Encode chunk ``index``'s HR frames uint8 (T, H, W, 3) with their source pts (``None``: leave the
        frame out) as one segment; returns (segment file name or None when no frame is left, frames)."""
        keep = [i for i, p in enumerate(pts) if p is not None]
        if len(keep) != len(pts):
            frames = np.ascontiguousarray(frames[keep])
            pts = [pts[i] for i in keep]
        if not keep:
            return None, 0
        name = f"{index:06d}{segment_suffix(self.output)}"
        path = self.segments / name
        writer: Any
        if self.video:
            writer = self.encode.open_writer(path, self.width, self.height, self.info, overwrite=True)
        else:
            writer = ImageFolderWriter(path, overwrite=True)
        with writer:
            writer.write(frames, pts)  # type: ignore[arg-type]
        return name, len(keep)


def check_encoder(output: str | Path, info: VideoInfo, scale: int, encode: EncodeSettings) -> None:
    """MediaError naming ``output`` when its container cannot hold ``codec`` or the codec refuses the frame
    size or settings (the encoder is opened on one black frame; nothing is left on disk)."""
    w, h = info.width * scale, info.height * scale
    writer = encode.open_writer(output, w, h, info, overwrite=True)
    try:
        writer.write(np.zeros((1, h, w, 3), np.uint8), [0])
    finally:
        writer.abort()


def join_segments(output: str | Path, segments: Sequence[Path], info: VideoInfo, overwrite: bool) -> None:
    """Make ``output`` from the segments in order: packets joined and the input's audio/subtitles copied
    (video), or the PNGs renumbered into one folder; appears atomically."""
    output = Path(output)
    if is_video_path(output):
        concat_segments(segments, output, None if info.is_image_folder else info.path,
                        rotation=info.rotation, overwrite=overwrite)
        return
    writer = ImageFolderWriter(output, overwrite=overwrite)
    try:
        for seg in segments:
            for png in sorted(seg.iterdir()):
                os.replace(png, writer.tmp_path / f"{writer.count:06d}.png")
                writer.count += 1
            shutil.rmtree(seg, ignore_errors=True)
    except BaseException:
        writer.abort()
        raise
    writer.close()
