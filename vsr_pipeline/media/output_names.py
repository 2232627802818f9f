"""What an output name asks for: a video file by its extension, or a folder of PNG frames.

``vsr`` writes video as ``.mp4``, ``.mkv``, ``.mov``, ``.m4v``, ``.webm`` or ``.ts``; any other name is a
folder of PNGs. A name whose extension is a file type FFmpeg writes (``out.mpg``, ``out.flv``,
``out.wav``, ``out.png``) is neither, and is refused rather than made a folder that looks like a file.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import av

#: extensions of the videos vsr writes (``.avi`` is read, and refused as an output by the job's checks)
VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".mov", ".m4v", ".avi", ".webm", ".ts"})
WRITTEN = (".mp4", ".mkv", ".mov", ".m4v", ".webm", ".ts")
#: MPEG program streams and elementary streams: MPEG-2 video goes into a transport stream or Matroska
MPEG_PS = frozenset({".mpg", ".mpeg", ".vob", ".m2v", ".m1v", ".m2p", ".dvd", ".m2t", ".m2ts", ".mts"})


def is_video_path(path: str | os.PathLike[str]) -> bool:
    """A path with a video extension is a video; anything else is a folder of PNG frames."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


@functools.cache
def ffmpeg_file_types() -> frozenset[str]:
    """Every extension (".flv") that one of FFmpeg's muxers names, as PyAV's build lists them."""
    found: set[str] = set()
    for name in av.formats_available:
        try:
            fmt = av.ContainerFormat(name)
        except (ValueError, av.FFmpegError):
            continue
        if fmt.is_output:
            found |= {f".{e.strip().lower()}" for e in fmt.extensions if e.strip()}
    return frozenset(found)


def output_name_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` names no output vsr writes (a file type other than its videos), else None."""
    suffix = Path(path).suffix.lower()
    if not suffix or suffix in VIDEO_EXTENSIONS or suffix not in ffmpeg_file_types():
        return None
    hint = "; MPEG-2 video: --codec mpeg2video into .ts or .mkv" if suffix in MPEG_PS else ""
    return (f"{Path(path).name}: {suffix} is a file type vsr does not write (video: {', '.join(WRITTEN)}; "
            f"PNG frames: a folder, named without such an extension){hint}")
