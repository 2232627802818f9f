"""Text subtitles an output container cannot hold, converted instead of left out.

A phone's or an editor's MP4 carries ``mov_text``, which Matroska, WebM and MPEG-TS do not hold; a rip's
MKV carries SubRip or ASS, which MP4 and MOV do not. As FFmpeg's tools do, each cue is decoded to an ASS
event (libavcodec's common form for text subtitles) and encoded again with the first encoder of
:data:`TEXT_SUBTITLE_ENCODERS` the container holds: ``mov_text`` for MP4/MOV, ``ass`` for Matroska (the
Matroska muxer's own default), ``webvtt`` for WebM. Times are kept to the millisecond, text, line breaks
and italic/bold too; positioning and colours survive only where the target format has them (mov_text keeps
none). Bitmap subtitles (DVD, Blu-ray, DVB) cannot become text: they stay left out, as before. MPEG-TS
holds no text subtitles at all.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from typing import Any

import av

from .container_codecs import container_holds
from .errors import short_reason

log = logging.getLogger(__name__)

#: encoders tried in order for text subtitles the output cannot hold as they are
TEXT_SUBTITLE_ENCODERS = ("mov_text", "ass", "webvtt", "subrip")
MS, US = Fraction(1, 1000), Fraction(1, 1_000_000)  # cue durations; ``SubtitleSet.pts`` (AV_TIME_BASE)


def is_text_subtitle(codec: str) -> bool:
    """Whether ``codec`` (a decoder's name) gives text cues (ASS events), not pictures."""
    try:
        return bool(av.Codec(codec, "r").text_sub)
    except (av.FFmpegError, ValueError):
        return False


def subtitle_encoder_for(container: av.container.OutputContainer) -> str | None:
    """The first of :data:`TEXT_SUBTITLE_ENCODERS` this PyAV has and ``container`` holds (None: none)."""
    for name in TEXT_SUBTITLE_ENCODERS:
        if name in av.codecs_available and container_holds(container, name):
            return name
    return None


class SubtitleTranscoder:
    """One source text subtitle stream decoded and encoded again into a new stream of ``container``.

    ``add(packet)`` muxes the packet's cue (none for an empty one, e.g. MP4's gap samples), timed from the
    packet's pts (plus the cue's own start offset) and lasting as the decoder says (else the packet's
    duration). ``converted`` counts the cues written."""

    def __init__(self, container: av.container.OutputContainer, source: Any, encoder: str):
        self._container = container
        self._decoder = source.codec_context
        self._decoder.open()  # fills ``subtitle_header``: the ASS header the encoders are opened with
        # a trial encoder first, alone: one that cannot start (an ASS stream with no header: mov_text's
        # "Invalid data") is refused before a stream is added to the output, so the stream is left out with
        # a warning; added, it failed the output's header and the whole job ("joining segments failed")
        trial = av.CodecContext.create(encoder, "w")
        trial.subtitle_header = self._decoder.subtitle_header
        trial.time_base = MS
        trial.open()
        self.stream = container.add_stream(encoder)
        # encoding into a decoder's context crashes libavcodec: only this new stream's context encodes
        self._encoder = self.stream.codec_context
        self._encoder.subtitle_header = self._decoder.subtitle_header
        self._encoder.time_base = MS
        self.stream.time_base = MS
        self.encoder = encoder
        self.converted = 0

    def add(self, packet: av.Packet) -> None:
        """Convert and mux one source packet (``av.FFmpegError`` for one that cannot be decoded)."""
        if packet.pts is None or packet.time_base is None:
            return
        cues = self._decoder.decode2(packet)
        if cues is None or not len(cues):
            return
        start_us = round(packet.pts * packet.time_base / US) + cues.start_display_time * 1000
        length_ms = int(cues.end_display_time) - int(cues.start_display_time)
        if not 0 < length_ms < 2**31 and packet.duration:  # no end from the decoder: the packet's
            length_ms = round(packet.duration * packet.time_base / MS)
        cues.pts, cues.start_display_time, cues.end_display_time = start_us, 0, max(length_ms, 0)
        out = self._encoder.encode_subtitle(cues)
        if not out.size:  # a cue with no text the encoder keeps
            return
        # the encoder gives pts in microseconds and the duration in milliseconds, and no time base
        out.time_base, out.pts, out.dts, out.duration = US, start_us, start_us, max(length_ms, 0) * 1000
        out.stream = self.stream
        self._container.mux(out)
        self.converted += 1


def try_subtitle_transcoder(container: av.container.OutputContainer, source: Any, what: str, out: str,
                            why: str) -> SubtitleTranscoder | None:
    """A transcoder for a text subtitle stream ``container`` cannot hold as it is (``why``), with one INFO
    line saying so; None, with a warning, where there is none (a bitmap stream, no text format the
    container holds, an encoder that does not open)."""
    codec = source.codec_context.name
    encoder = subtitle_encoder_for(container) if is_text_subtitle(codec) else None
    if encoder is None:
        reason = "" if is_text_subtitle(codec) else " (pictures, not text)"
        log.warning("%s: not copying %s (%s%s): %s", out, what, codec, reason, why)
        return None
    try:
        transcoder = SubtitleTranscoder(container, source, encoder)
    except (av.FFmpegError, ValueError) as exc:
        log.warning("%s: not copying %s (%s): %s; converting it to %s failed (%s)", out, what, codec, why,
                    encoder, short_reason(exc))
        return None
    log.info("%s: %s (%s) converted to %s: %s", out, what, codec, encoder, why)
    return transcoder
