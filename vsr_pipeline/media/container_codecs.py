"""What codecs an output container can hold (FFmpeg's codec query, and the MPEG muxers it says nothing of)."""

from __future__ import annotations

import av

#: what MPEG-TS (.ts, .m2ts) and MPEG-PS hold that FFmpeg's codec query does not say (their muxers have no
#: codec table, so PyAV's ``supported_codecs`` lists only their default codecs), by codec name
MPEG_STREAM_CODECS = frozenset({"h264", "hevc", "mpeg1video", "mpeg2video", "mpeg4", "aac", "mp2", "mp3",
                                "ac3", "eac3", "opus", "dvb_subtitle", "dvd_subtitle"})


def container_holds(container: av.container.OutputContainer, codec: str) -> bool:
    """Whether ``container`` can hold ``codec`` (an encoder or codec name)."""
    if codec in container.supported_codecs:
        return True
    if container.format.name not in ("mpegts", "mpeg", "vob", "dvd"):
        return False
    try:
        name = av.Codec(codec, "w").canonical_name
    except (av.FFmpegError, ValueError):
        try:
            name = av.Codec(codec, "r").canonical_name
        except (av.FFmpegError, ValueError):
            return False
    return name in MPEG_STREAM_CODECS
