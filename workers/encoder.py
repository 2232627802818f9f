"""Encoder worker: writes each chunk's HR frames as one segment (a video file, or a folder of PNGs).

A segment appears under its name only when complete (temporary name, then rename), so the ledger
(``vsr_pipeline.ledger``) can trust any segment it names. The driver joins the segments at the end
(``join_segments``): packets copied, no re-encoding.

Each chunk's call carries its job's :class:`SegmentTarget`, so an encoder actor holds no job of its own: an
idle one another job used (``vsr_pipeline.warm_actors``), or one Ray restarted (its constructor's arguments
are the first job's), writes where and how the chunk's job asks.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vsr_pipeline.cluster import actor_restarted
from vsr_pipeline.heap import release_free_memory
from vsr_pipeline.media import EncodeSettings, ImageFolderWriter, VideoInfo
from vsr_pipeline.media.mux import concat_segments, segment_options
from vsr_pipeline.media.output_names import VIDEO_EXTENSIONS, is_video_path
from vsr_pipeline.media.trim import Span

__all__ = ["VIDEO_EXTENSIONS", "Encoder", "SegmentTarget", "check_encoder", "is_video_path", "join_segments",
           "segment_suffix"]


def segment_suffix(output: str | Path) -> str:
    """Suffix of a segment of ``output``: its extension for a video (same muxer), none for a PNG folder."""
    return Path(output).suffix.lower() if is_video_path(output) else ""


@dataclass(frozen=True)
class SegmentTarget:
    """Where and how one job's segments are written: the final ``output`` (its extension picks the muxer, or
    PNG folders), the input's ``info``, the ``scale``, the ``encode`` settings, and the ``segments`` folder
    (default: the output's)."""

    output: str
    info: VideoInfo
    scale: int
    encode: EncodeSettings = field(default_factory=EncodeSettings)
    segments: str | None = None
    #: where the output's pixels lie in larger HR frames (``--crop``'s context, dropped here): ``(x, y)``
    cut: tuple[int, int] | None = None

    @property
    def folder(self) -> Path:
        return Path(self.segments) if self.segments is not None else Path(self.output).parent


class Encoder:
    """Plain class wrapped by ``ray.remote``; one segment per call, independent of the others. ``target``:
    the job of calls that name none."""

    def __init__(self, target: SegmentTarget | None = None):
        self.target = target
        self._checked: SegmentTarget | None = None
        if target is not None:
            self.check(target)

    def check(self, target: SegmentTarget) -> bool:
        """MediaError now, not at the first chunk, when ``target``'s codec, container or settings cannot
        work on this node (checked once per target); True."""
        if target != self._checked:
            if is_video_path(target.output):
                check_encoder(target.folder / f".check{Path(target.output).suffix}", target.info,
                              target.scale, target.encode)
            self._checked = target
        return True

    def idle(self) -> bool:
        """Before waiting idle for another job: return the heap's free memory to the OS; whether Ray restarted
        this actor after its process died (then it is not kept; False outside Ray)."""
        release_free_memory()
        return actor_restarted()

    def write_segment(
        self, index: int, frames: np.ndarray, pts: Sequence[int | None], target: SegmentTarget | None = None
    ) -> tuple[str | None, int]:
        """Encode chunk ``index``'s HR frames (T, H, W, 3), uint8 or uint16 (10 bits), with their source pts
        (``None``: leave the frame out) as one segment of ``target``'s job (default: the constructor's);
        returns (segment file name or None when no frame is left, frames)."""
        target = target or self.target
        if target is None:
            raise ValueError("write_segment needs a target: this encoder was made without one")
        self.check(target)
        if target.cut is not None:
            (x, y), s = target.cut, target.scale
            frames = frames[:, y : y + target.info.height * s, x : x + target.info.width * s]
        keep = [i for i, p in enumerate(pts) if p is not None]
        if len(keep) != len(pts) or not frames.flags.c_contiguous:
            frames = np.ascontiguousarray(frames[keep])
            pts = [pts[i] for i in keep]
        if not keep:
            return None, 0
        name = f"{index:06d}{segment_suffix(target.output)}"
        path = target.folder / name
        writer: Any
        if is_video_path(target.output):
            w, h = target.info.width * target.scale, target.info.height * target.scale
            writer = target.encode.open_writer(path, w, h, target.info, overwrite=True,
                                               container_options=segment_options(path))
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
        writer.write(np.zeros((1, h, w, 3), np.uint16 if writer.bit_depth > 8 else np.uint8), [0])
    finally:
        writer.abort()


def join_segments(output: str | Path, segments: Sequence[Path], info: VideoInfo, overwrite: bool,
                  span: Span | None = None) -> dict[str, list[dict[str, object]]]:
    """Make ``output`` from the segments in order: packets joined and the input's audio/subtitles copied
    (video), or the PNGs renumbered into one folder; appears atomically. Returns what became of each
    ``audio`` and ``subtitles`` stream and attachment (``StreamCopier.summary``, ``subtitle_summary``,
    ``attachments``; none for PNGs).
    ``span``: the part of the input the job read (its audio and subtitles only)."""
    output = Path(output)
    streams: dict[str, list[dict[str, object]]] = {"audio": [], "subtitles": [], "attachments": []}
    if is_video_path(output):
        concat_segments(segments, output, None if info.is_image_folder else info.path,
                        rotation=info.rotation, overwrite=overwrite, audio=streams["audio"],
                        subtitles=streams["subtitles"], span=span, attachments=streams["attachments"])
        return streams
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
    return streams
