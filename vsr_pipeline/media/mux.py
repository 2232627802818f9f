"""``concat_segments``: join encoded video segments into one file without re-encoding, copying audio.

Each segment is a complete file with one video stream encoded with the same encoder and settings (the
pipeline writes one per chunk). Their packets are copied in order into one output whose video stream is
the first segment's (same codec parameters and extradata), with every pts kept: the segments carry the
source's pts, so the joined file has exactly the timestamps a single encode would have. Audio and
subtitle streams of ``copy_streams_from`` are copied packet for packet, interleaved by time. The output
appears under its name only when complete (``.NAME.partial.EXT`` renamed).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av

from .errors import MediaError, short_reason
from .probe import open_input
from .stream_copy import StreamCopier, stream_like
from .trim import Span
from .writer import exact_timing_options, partial_path

#: seconds an MPEG-TS segment is written later than its frames' pts, and moved back when joined: the TS
#: muxer moves a file later where its first dts would be negative (a B-frame delay at pts 0), which it did
#: to the first segment only: the joint went back in time and the video came out 1-2 frames late against
#: the audio. Offset, no segment is moved; the join's one muxer moves every stream alike where it must.
TS_SEGMENT_OFFSET_S = 10


def segment_options(path: str | os.PathLike[str]) -> dict[str, str]:
    """Muxer options of a segment file ``path`` (an MPEG-TS one is written :data:`TS_SEGMENT_OFFSET_S`
    later)."""
    return {"output_ts_offset": str(TS_SEGMENT_OFFSET_S)} if Path(path).suffix.lower() == ".ts" else {}


def open_segment(path: str | os.PathLike[str]) -> av.container.InputContainer:
    """A segment file, opened with the demuxer that wrote it: FFmpeg's probe could not tell an MPEG-TS
    segment of a few hundred bytes of video (2 frames at 64x48) for one ("End of file"): the join failed."""
    return open_input(path, format="mpegts" if Path(path).suffix.lower() == ".ts" else None)


def _segment_offset(path: str | os.PathLike[str], time_base: Fraction) -> int:
    """What :func:`segment_options` added to the pts of segment ``path``, in ``time_base``."""
    return round(TS_SEGMENT_OFFSET_S / Fraction(time_base)) if segment_options(path) else 0


def _codec_key(stream: av.video.stream.VideoStream) -> tuple[object, ...]:
    cc = stream.codec_context
    return (cc.name, cc.width, cc.height, cc.format.name if cc.format else None, bytes(cc.extradata or b""))


def concat_segments(
    segments: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    copy_streams_from: str | os.PathLike[str] | None = None,
    rotation: int = 0,
    overwrite: bool = False,
    audio: list[dict[str, object]] | None = None,
    subtitles: list[dict[str, object]] | None = None,
    span: Span | None = None,
    attachments: list[dict[str, object]] | None = None,
) -> int:
    """Write the video packets of ``segments`` (in order) and the audio/subtitles of ``copy_streams_from``
    to ``output``; returns the number of video packets (frames). Segments must share codec parameters
    (MediaError naming the first that differs). ``audio``, ``subtitles`` and ``attachments``, lists, get
    what became of each audio and subtitle stream and attachment (``StreamCopier.summary``,
    ``subtitle_summary``, ``attachments``). ``span``: only the audio and
    subtitles of that part of the source, moved back with its frames (``--start``/``--end``)."""
    out = Path(output)
    if not segments:
        raise MediaError(f"{out}: no segments to join")
    if out.exists() and not overwrite:
        raise MediaError(f"{out}: output exists (pass overwrite to replace it)")
    tmp = partial_path(out)
    first = open_segment(segments[0])
    key = _codec_key(first.streams.video[0])
    try:
        container = av.open(str(tmp), mode="w",
                            container_options=exact_timing_options(out, first.streams.video[0].time_base))
    except (av.FFmpegError, ValueError, OSError) as exc:
        first.close()
        raise MediaError(f"{out}: cannot create output ({short_reason(exc)})") from None
    copier: StreamCopier | None = None
    frames = 0
    try:
        template = first.streams.video[0]
        video = stream_like(container, template)
        video.time_base = template.time_base
        if template.codec_tag.strip("\x00 "):  # the same muxer's: a new stream has none, and MOV then tagged
            video.codec_tag = template.codec_tag  # every ProRes as HQ (apch), which editors go by
        # the frame rate, for a timecode track (MOV): x264's stream says 1/time base (12800 fps), and the
        # muxer refused the source's timecode ("fps 12800 is too large"); ProRes's says none, and it was lost
        rate = template.guessed_rate or template.average_rate
        if rate:
            video.codec_context.framerate = rate
        if rotation:
            video.set_display_rotation(rotation)
        if copy_streams_from is not None:
            copier = StreamCopier(container, Path(copy_streams_from), out, span)
        last_dts: int | None = None
        for i, seg in enumerate(segments):
            src = first if i == 0 else open_segment(seg)
            try:
                vs = src.streams.video[0]
                if _codec_key(vs) != key:
                    raise MediaError(f"{seg}: segment's codec parameters differ from the first segment's")
                offset = _segment_offset(seg, video.time_base)
                for pkt in _with_dts([p for p in src.demux(vs) if p.size]):
                    if pkt.time_base != video.time_base:
                        pkt.pts = _rescale(pkt.pts, pkt.time_base, video.time_base)
                        pkt.dts = _rescale(pkt.dts, pkt.time_base, video.time_base)
                        pkt.time_base = video.time_base
                    if offset:
                        pkt.pts = None if pkt.pts is None else pkt.pts - offset
                        pkt.dts = None if pkt.dts is None else pkt.dts - offset
                    # B-frame delay: a segment's first dts lies before its first pts; keep dts increasing
                    # across the joint (decoding order is the packet order either way).
                    if pkt.dts is not None and last_dts is not None and pkt.dts <= last_dts:
                        pkt.dts = last_dts + 1
                        if pkt.pts is not None and pkt.pts < pkt.dts:
                            raise MediaError(f"{seg}: cannot join: timestamps overlap the previous segment")
                    last_dts = pkt.dts
                    if copier is not None and pkt.dts is not None:
                        copier.pump(Fraction(pkt.dts) * Fraction(video.time_base))
                    pkt.stream = video
                    container.mux(pkt)
                    frames += 1
            finally:
                src.close()
        if copier is not None:
            copier.pump(None)
            copier.finish()
            if audio is not None:
                audio.extend(copier.summary())
            if subtitles is not None:
                subtitles.extend(copier.subtitle_summary())
            if attachments is not None:
                attachments.extend(copier.attachments)
        container.close()
    except BaseException as exc:
        with contextlib.suppress(Exception):
            container.close()
        tmp.unlink(missing_ok=True)
        if isinstance(exc, av.FFmpegError):
            raise MediaError(f"{out}: joining segments failed ({short_reason(exc)})") from None
        raise
    finally:
        if copier is not None:
            copier.close()
        with contextlib.suppress(Exception):
            first.close()
    if out.exists() and not overwrite:
        tmp.unlink(missing_ok=True)
        raise MediaError(f"{out}: output appeared while writing; not replaced")
    os.replace(tmp, out)
    return frames


def _with_dts(packets: list[av.Packet]) -> list[av.Packet]:
    """The packets of one segment (decoding order) with a dts on every one.

    Matroska stores no dts: packets read back from an .mkv segment carry none (B-frames' reordered ones)
    and the muxer then refuses them. A dts sequence is made the way encoders make it: the presentation
    times in sorted order, shifted back by the reordering delay (the smallest shift that keeps every dts
    at or before its pts), so dts increase and pts are untouched."""
    if not packets or all(p.dts is not None for p in packets) or any(p.pts is None for p in packets):
        return packets
    order = sorted(int(p.pts) for p in packets)
    delay = max(0, *(t - int(p.pts) for t, p in zip(order, packets, strict=True)))
    for t, p in zip(order, packets, strict=True):
        p.dts = t - delay
    return packets


def _rescale(ts: int | None, src: Fraction, dst: Fraction) -> int | None:
    return None if ts is None else round(Fraction(ts) * Fraction(src) / Fraction(dst))
