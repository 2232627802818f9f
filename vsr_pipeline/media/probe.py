"""``probe``: what a video file (or image folder) holds, as a frozen :class:`VideoInfo`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
from av.container import InputContainer

from .errors import MediaError, short_reason
from .hdr_metadata import HdrStatic, hdr_static
from .images import image_bits, image_size, list_images
from .ingest import is_interlaced


@dataclass(frozen=True)
class StreamSummary:
    """One non-video stream of a container."""

    index: int
    type: str  # "audio" | "subtitle"
    codec: str
    time_base: Fraction | None
    start_time: int | None  # in time_base
    language: str | None = None
    sample_rate: int | None = None
    channels: int | None = None
    layout: str | None = None


@dataclass(frozen=True)
class ColourTags:
    """Colour tags as PyAV exposes them (FFmpeg AVColor* ints); 2 = unspecified, range 0 = unspecified."""

    color_range: int = 0
    color_primaries: int = 2
    color_trc: int = 2
    colorspace: int = 2
    #: HDR10 mastering-display and light-level metadata (``media.hdr_metadata``); None: none
    hdr: HdrStatic | None = None


@dataclass(frozen=True)
class VideoInfo:
    """A video's (or an image folder's) geometry, timing, colour and companion streams."""

    path: str
    width: int
    height: int
    frames: int  # exact count of video frames
    fps: Fraction  # average (or guessed) rate
    time_base: Fraction  # the video stream's; every pts is in it
    duration_s: float
    codec: str
    pix_fmt: str
    bit_depth: int
    color_range: int = 0
    color_primaries: int = 2
    color_trc: int = 2
    colorspace: int = 2
    rotation: int = 0  # display rotation in degrees, counter-clockwise (PyAV's VideoFrame.rotation)
    start_pts: int = 0  # pts of the first frame
    has_audio: bool = False
    audio: tuple[StreamSummary, ...] = field(default=())
    subtitles: tuple[StreamSummary, ...] = field(default=())
    container: str = ""
    is_image_folder: bool = False
    #: the stream's field order says interlaced, or its first frame is flagged so (``media.ingest``)
    interlaced: bool = False
    #: pixel width over height where pixels are not square (DV, DVD, anamorphic captures: 10/11, 32/27, ...);
    #: None for square or unknown. Upscaling by the same factor both ways keeps it; the output carries it.
    sample_aspect_ratio: Fraction | None = None
    #: HDR10 static metadata of the first frame (``media.hdr_metadata``); None: none
    hdr: HdrStatic | None = None

    @property
    def colour(self) -> ColourTags:
        """The colour tags (and HDR10 metadata), to hand to :class:`VideoWriter`."""
        return ColourTags(self.color_range, self.color_primaries, self.color_trc, self.colorspace, self.hdr)


def open_input(path: str | os.PathLike[str], format: str | None = None) -> InputContainer:
    """Open a media file for reading (``format``: FFmpeg's demuxer, where it is known; else probed), or
    raise MediaError naming the file and the problem."""
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{p}: no such file")
    if p.is_dir():
        raise MediaError(f"{p}: is a folder, not a video file")
    if p.stat().st_size == 0:
        raise MediaError(f"{p}: empty file (0 bytes)")
    try:
        return av.open(str(p), mode="r", format=format, metadata_errors="replace")  # bad tags: not fatal
    except av.FFmpegError as exc:
        raise MediaError(f"{p}: not a readable media file ({short_reason(exc)})") from None
    except OSError as exc:
        raise MediaError(f"{p}: cannot open ({short_reason(exc)})") from None


def bit_depth_of(pix_fmt: str) -> int:
    """Bits per sample of the first component (8 when unknown)."""
    try:
        return int(av.VideoFormat(pix_fmt).components[0].bits)
    except (ValueError, IndexError, av.FFmpegError):
        return 8


def _rate(stream: av.video.stream.VideoStream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate)
    return None


def _summaries(container: InputContainer) -> tuple[tuple[StreamSummary, ...], tuple[StreamSummary, ...]]:
    audio, subs = [], []
    for s in container.streams:
        if s.type not in ("audio", "subtitle"):
            continue
        cc = s.codec_context
        kw: dict[str, object] = {}
        if s.type == "audio" and cc is not None:
            kw = {"sample_rate": cc.sample_rate or None, "channels": cc.layout.nb_channels or None,
                  "layout": cc.layout.name or None}
        summary = StreamSummary(
            index=s.index, type=s.type, codec=cc.name if cc is not None else "unknown",
            time_base=Fraction(s.time_base) if s.time_base else None, start_time=s.start_time,
            language=s.metadata.get("language"), **kw,  # type: ignore[arg-type]
        )
        (audio if s.type == "audio" else subs).append(summary)
    return tuple(audio), tuple(subs)


def main_video(container: InputContainer) -> av.video.stream.VideoStream:
    """The video stream this package reads from an input: the one FFmpeg picks by default
    (``av_find_best_stream``: not a cover picture, then the most frames and the highest bit rate), so a
    thumbnail or preview stream ahead of the video is passed over. MediaError when there is none."""
    stream = container.streams.best("video") if container.streams.video else None
    if stream is None:
        raise MediaError(f"{container.name}: no video stream")
    return stream  # type: ignore[return-value]


def count_video_packets(container: InputContainer, stream: av.video.stream.VideoStream) -> int:
    """Number of video packets with data, by demuxing only (no decoding)."""
    n = 0
    for packet in container.demux(stream):
        if packet.size:
            n += 1
    return n


def video_pts(path: str | os.PathLike[str]) -> list[int] | None:
    """The pts of every video packet with data, in display order (sorted), by demuxing only; None where one
    has no pts (the reader numbers such frames itself)."""
    with open_input(path) as container:
        stream = main_video(container)
        pts = [p.pts for p in container.demux(stream) if p.size]
    return None if any(p is None for p in pts) else sorted(pts)  # type: ignore[type-var]


def stream_sar(stream: av.video.stream.VideoStream) -> Fraction | None:
    """The stream's sample (pixel) aspect ratio as FFmpeg guesses it (the container's, else the codec's),
    or None when it is square or unknown."""
    for sar in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio):
        if sar and sar.numerator > 0 and sar.denominator > 0:
            return None if sar == 1 else Fraction(sar)
    return None


def probe(path: str | os.PathLike[str], fps: Fraction | float | int | None = None) -> VideoInfo:
    """Describe a video file, or a folder of images (``fps`` applies to folders only; None -> 25).

    The first frame is decoded (to check the file decodes and to read rotation and the actual pixel
    format). The frame count is the MP4/MOV sample count; for other containers video packets with data
    are counted by demuxing (no decoding).
    """
    p = Path(path)
    if p.is_dir():
        return probe_image_folder(p, fps)
    with open_input(p) as container:
        if not container.streams.video:
            raise MediaError(f"{p}: no video stream")
        fmt = container.format.name
        if fmt.endswith("_pipe") or fmt == "image2":
            kind = fmt.removesuffix("_pipe").upper()
            raise MediaError(f"{p}: is a {kind} image, not a video (to upscale images, give a folder)")
        vs = main_video(container)
        vs.thread_type = "AUTO"
        cc = vs.codec_context
        if vs.time_base is None:
            raise MediaError(f"{p}: video stream has no time base")
        tb = Fraction(vs.time_base)
        try:
            first = next(container.decode(vs), None)
        except av.FFmpegError as exc:
            raise MediaError(f"{p}: video is not decodable ({short_reason(exc)})") from None
        if first is None:
            raise MediaError(f"{p}: video stream has no frames")
        # Only MP4/MOV sample tables are exact; other headers can be absent (MKV/WebM) or count index
        # slots that carry no frame (sparse AVI), so count packets with data by demuxing instead.
        frames = vs.frames if container.format.name.startswith("mov,") else 0
        if not frames:
            with open_input(p) as c2:
                frames = count_video_packets(c2, main_video(c2))
        if not frames:
            raise MediaError(f"{p}: video stream has no frames")
        fps_v = _rate(vs)
        if vs.duration:
            duration = float(vs.duration * tb)
        elif container.duration:
            duration = container.duration / 1_000_000
        else:
            duration = float(frames / fps_v) if fps_v else 0.0
        if fps_v is None:
            fps_v = Fraction(frames) / Fraction(duration) if duration else Fraction(25)
        audio, subs = _summaries(container)
        start = vs.start_time if vs.start_time is not None else (first.pts or 0)
        return VideoInfo(
            path=str(p), width=first.width or cc.width, height=first.height or cc.height, frames=frames,
            fps=fps_v, time_base=tb, duration_s=duration, codec=cc.name, pix_fmt=first.format.name,
            bit_depth=bit_depth_of(first.format.name),
            color_range=int(first.color_range or cc.color_range or 0),
            color_primaries=int(first.color_primaries), color_trc=int(first.color_trc),
            colorspace=int(first.colorspace), rotation=int(first.rotation or 0), start_pts=int(start),
            has_audio=bool(audio), audio=audio, subtitles=subs, container=container.format.name,
            interlaced=is_interlaced(vs, first), sample_aspect_ratio=stream_sar(vs), hdr=hdr_static(first),
        )


def probe_image_folder(
    folder: str | os.PathLike[str], fps: Fraction | float | int | None = None
) -> VideoInfo:
    """A folder of images as a video: frames = image count, time_base = 1/fps (default 25), pts = index."""
    paths = list_images(folder)
    fps_f = Fraction(25 if fps is None else fps).limit_denominator(1_000_000)
    if fps_f <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    w, h = image_size(paths[0])
    for q in paths[1:]:
        if image_size(q) != (w, h):
            raise MediaError(f"{q}: size {image_size(q)[0]}x{image_size(q)[1]} differs from {w}x{h} "
                             f"of {paths[0].name}")
    bits = image_bits(paths[0])  # 16: the frames are read deep where the output keeps more than 8 bits
    return VideoInfo(
        path=str(folder), width=w, height=h, frames=len(paths), fps=fps_f, time_base=1 / fps_f,
        duration_s=float(len(paths) / fps_f), codec=paths[0].suffix.lower().lstrip("."),
        pix_fmt="rgb48le" if bits > 8 else "rgb24", bit_depth=bits, container="image_folder",
        is_image_folder=True,
    )
