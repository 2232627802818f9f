"""Copying a source's audio and subtitle streams, tags and chapters into an output, packet for packet
(``StreamCopier``), and what an output container can hold."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from .audio_transcode import AudioTranscoder, audio_summary, try_transcoder
from .container_codecs import container_holds
from .errors import short_reason
from .probe import main_video, open_input
from .subtitle_transcode import SubtitleTranscoder, try_subtitle_transcoder
from .trim import Span

log = logging.getLogger(__name__)


def stream_like(container: av.container.OutputContainer, template: av.stream.Stream) -> av.stream.Stream:
    """A stream of ``container`` with ``template``'s codec parameters, for copying its packets. PyAV looks up
    an encoder named like the template's decoder; where there is none (AV1 read by libdav1d) the parameters
    are copied without one (``opaque``)."""
    try:
        return container.add_stream_from_template(template)
    except av.codec.codec.UnknownCodecError:
        return container.add_stream_from_template(template, opaque=True)





def copy_refused(container: av.container.OutputContainer, template: av.stream.Stream) -> str | None:
    """Why ``container``'s muxer refuses ``template``'s packets as they are, or None: a header with a copy
    of the stream and one packet is written in memory by the same muxer. FFmpeg's codec query says yes to
    what its muxer then refuses: PCM of an unnamed channel layout in MP4 ("unsupported channel layout")
    failed a whole job at its final join. Not probed: AAC in ADTS (no extradata), which the muxers take
    through their own ``aac_adtstoasc`` filter, reading the first packet's header (a made-up one has none)."""
    cc = template.codec_context
    if cc is not None and cc.name == "aac" and not cc.extradata:
        return None
    probe = av.open(io.BytesIO(), mode="w", format=container.format.name)
    try:
        stream = stream_like(probe, template)
        # PCM: whole samples of every channel (1, 2, 3, 4 or 8 bytes: 24-bit stereo into MOV was refused
        # for a 4-byte packet); others small (an ADTS frame, which MPEG-TS makes of AAC, holds < 8 KiB)
        channels = cc.channels if cc is not None and cc.type == "audio" else 1
        packet = av.Packet(bytes(96 * channels if cc is not None and cc.name.startswith("pcm_") else 4))
        packet.pts = packet.dts = 0
        packet.time_base = stream.time_base or template.time_base or Fraction(1, 1000)
        packet.stream = stream
        probe.mux(packet)
        probe.close()
        return None
    except (av.FFmpegError, ValueError) as exc:
        with contextlib.suppress(Exception):
            probe.close()
        return f"the {container.format.name} muxer refuses a copy of it ({short_reason(exc)})"


#: muxers that hold attachments (fonts of ASS subtitles, cover art): Matroska's; WebM's takes none
ATTACHMENT_MUXERS = frozenset({"matroska"})


def copy_attachments(src: av.container.InputContainer, container: av.container.OutputContainer,
                     out_path: Path) -> list[dict[str, object]]:
    """Put ``src``'s attachments (a Matroska rip's fonts, which its ASS subtitles are styled with; cover
    art) into ``container`` before its header is written, where its muxer holds them (a warning naming
    them where it cannot: the subtitles then fall back to other fonts). Per attachment: its name,
    mimetype, bytes and whether it was ``written``."""
    found = [s for s in src.streams if s.type == "attachment"]
    if not found:
        return []
    held = container.format.name in ATTACHMENT_MUXERS
    out = []
    for s in found:
        name, data = s.name or f"attachment{s.index}", s.data
        mimetype = s.mimetype or "application/octet-stream"
        written = held and bool(data)
        if written:
            try:
                container.add_attachment(name, mimetype, data)
            except (av.FFmpegError, ValueError) as exc:
                log.warning("%s: not copying attachment %s (%s)", out_path, name, short_reason(exc))
                written = False
        out.append({"name": name, "mimetype": mimetype, "bytes": len(data or b""), "written": written})
    if not held:
        names = ", ".join(str(a["name"]) for a in out[:5]) + (", ..." if len(out) > 5 else "")
        log.warning("%s: %d attachment(s) of the input (%s) not copied: the %s container cannot hold them "
                    "(.mkv can); subtitles styled with its fonts will be shown in others", out_path, len(out),
                    names, out_path.suffix or "output")
    return out


#: tags not copied from the source (compared in lower case): the muxer writes its own, they name the
#: source's format, or they are statistics of the source's video stream (mkvmerge's ``_STATISTICS_*`` set)
NOT_COPIED_TAGS = frozenset({"encoder", "major_brand", "minor_version", "compatible_brands", "duration",
                             "number_of_frames", "number_of_bytes", "bps", "handler_name", "vendor_id"})


def copy_tags(source: dict[str, str], target: dict[str, str]) -> None:
    """Put ``source``'s tags into ``target``, less :data:`NOT_COPIED_TAGS` and ``_statistics_*``."""
    for key, value in source.items():
        low = key.lower()
        if low not in NOT_COPIED_TAGS and not low.startswith("_statistics"):
            target[key] = value


class StreamCopier:
    """Copies the audio and subtitle streams of ``src_path`` into ``container`` packet for packet, and
    what FFmpeg copies by default with them: the container's tags (title, creation_time, comment,
    location, ...), each copied stream's tags (language, title) and the video stream's onto the output's
    (already added) video stream, less :data:`NOT_COPIED_TAGS` (:func:`copy_tags`; the output format keeps
    those it has a place for), the chapters (a DVD rip's, an editor's markers) and the attachments (a
    rip's fonts: :func:`copy_attachments`).

    Audio the output container cannot hold is re-encoded (``audio_transcode``: AAC, or Opus for WebM), text
    subtitles converted (``subtitle_transcode``: mov_text, ASS or WebVTT); bitmap subtitles it cannot hold
    are skipped with a warning. :meth:`pump` muxes the packets up to a time
    (seconds), so copied packets interleave with the video written so far; :meth:`finish` flushes the
    re-encoded audio before the container is closed.
    """

    def __init__(self, container: av.container.OutputContainer, src_path: Path, out_path: Path,
                 span: Span | None = None):
        self._container = container
        self._span = span  # only packets of this part, moved back with its frames (``--start``/``--end``)
        self._out = out_path
        self._src: av.container.InputContainer | None = open_input(src_path)
        copy_tags(self._src.metadata, container.metadata)
        for video in container.streams.video:
            copy_tags(main_video(self._src).metadata, video.metadata)
        chapters = self._src.chapters()
        if chapters:
            container.set_chapters(chapters)
        self.attachments = copy_attachments(self._src, container, out_path)
        self._iter: Iterator[av.Packet] | None = None
        self._pending: av.Packet | None = None
        self._stream_map: dict[int, av.stream.Stream] = {}
        self._transcoders: dict[int, AudioTranscoder] = {}
        self._subtitles: dict[int, SubtitleTranscoder] = {}
        self._bad_audio = self._bad_subtitles = 0
        self._audio: list[tuple[int, str]] = []  # the source's audio streams: index, codec
        self._subtitle_streams: list[tuple[int, str]] = []  # and its subtitle streams
        self.muxed: dict[int, int] = {}  # source stream index -> packets copied
        chosen = []
        for s in self._src.streams:
            if s.type not in ("audio", "subtitle") or s.codec_context is None:
                continue
            name = s.codec_context.name
            (self._audio if s.type == "audio" else self._subtitle_streams).append((s.index, name))
            # the muxer probe for audio only: subtitles are copied as before it (a made-up packet is no
            # valid subtitle event, and none was found refused at the join)
            held = container_holds(container, name)
            refused = f"the {out_path.suffix} container cannot hold it" if not held \
                else copy_refused(container, s) if s.type == "audio" else None
            if refused:  # audio re-encoded, text subtitles converted, where that can be done
                what, out = f"{s.type} stream #{s.index}", str(out_path)
                made: AudioTranscoder | SubtitleTranscoder | None = \
                    try_transcoder(container, s.codec_context, what, out, refused) if s.type == "audio" \
                    else try_subtitle_transcoder(container, s, what, out, refused)
                if made is not None:
                    into: dict[int, Any] = self._transcoders if s.type == "audio" else self._subtitles
                    into[s.index] = made
                    copy_tags(s.metadata, made.stream.metadata)
                    chosen.append(s)
                continue
            try:
                self._stream_map[s.index] = stream_like(container, s)
                copy_tags(s.metadata, self._stream_map[s.index].metadata)
            except (av.FFmpegError, ValueError) as exc:
                log.warning("%s: not copying %s stream #%d (%s): %s", out_path, s.type, s.index, name,
                            short_reason(exc))
                continue
            chosen.append(s)
        if chosen:
            self._iter = self._src.demux(*chosen)
        else:
            self.close()

    @property
    def active(self) -> bool:
        return self._iter is not None

    def pump(self, until: Fraction | None) -> None:
        """Mux copied packets whose time is <= ``until`` seconds (all when None)."""
        while self._iter is not None:
            pkt = self._pending
            if pkt is None:
                try:
                    pkt = next(self._iter, None)
                except av.FFmpegError as exc:
                    log.warning("%s: stopped copying streams at a bad packet (%s)", self._out,
                                short_reason(exc))
                    pkt = None
                if pkt is None:
                    self._iter = None
                    return
                if not pkt.size:
                    continue
            ts = pkt.pts if pkt.pts is not None else pkt.dts
            at = None if ts is None else ts * Fraction(pkt.time_base)
            if at is not None and self._span is not None:
                if self._pending is None and not self._span.t_from <= at < (
                        self._span.t_to if self._span.t_to is not None else at + 1):
                    if not self._straddles(pkt, at):
                        continue  # outside the part: not written
                    at = self._span.t_from
                at -= self._span.shift_s  # the part's clock (a held packet passed the window check before)
            if until is not None and at is not None and at > until:
                self._pending = pkt
                return
            self._pending = None
            if self._span is not None and self._span.shift:
                self._move_back(pkt)
            if pkt.stream_index in self._subtitles:
                self._convert_subtitle(pkt)
                continue
            transcoder = self._transcoders.get(pkt.stream_index)
            if transcoder is None:
                index, pkt.stream = pkt.stream_index, self._stream_map[pkt.stream_index]
                self._container.mux(pkt)
                self.muxed[index] = self.muxed.get(index, 0) + 1
                continue
            try:
                transcoder.add(pkt)
            except av.FFmpegError as exc:  # a damaged audio packet: left out, as a player would
                self._bad_audio += 1
                if self._bad_audio == 1:
                    log.warning("%s: an audio packet cannot be decoded (%s): left out", self._out,
                                short_reason(exc))

    def _straddles(self, pkt: av.Packet, at: Fraction) -> bool:
        """A subtitle cue shown when the part begins (it starts before, ends after): kept, from the part's
        first frame on, for the rest of its time (as FFmpeg's -ss does)."""
        assert self._span is not None
        tb, start = Fraction(pkt.time_base), self._span.t_from
        if pkt.stream.type != "subtitle" or not pkt.duration or not at < start < at + pkt.duration * tb:
            return False
        cut = round((start - at) / tb)
        pkt.pts = None if pkt.pts is None else pkt.pts + cut
        pkt.dts = None if pkt.dts is None else pkt.dts + cut
        pkt.duration -= cut
        return True

    def _move_back(self, pkt: av.Packet) -> None:
        """Shift a packet of the part back by its first frame's time (its pts and dts, in its own base)."""
        assert self._span is not None
        delta = round(self._span.shift_s / Fraction(pkt.time_base))
        pkt.pts = None if pkt.pts is None else pkt.pts - delta
        pkt.dts = None if pkt.dts is None else pkt.dts - delta

    def _convert_subtitle(self, pkt: av.Packet) -> None:
        index = pkt.stream_index
        try:
            self._subtitles[index].add(pkt)
        except av.FFmpegError as exc:  # a damaged cue: left out, as a player would
            self._bad_subtitles += 1
            if self._bad_subtitles == 1:
                log.warning("%s: a subtitle cue cannot be converted (%s): left out", self._out,
                            short_reason(exc))
            return
        self.muxed[index] = self._subtitles[index].converted

    def finish(self) -> None:
        """Flush the re-encoded audio (after the last :meth:`pump`, before the container is closed)."""
        for transcoder in self._transcoders.values():
            transcoder.finish()

    def summary(self) -> list[dict[str, object]]:
        """What became of each audio stream of the source (``audio_transcode.audio_summary``)."""
        return audio_summary([(i, i, c) for i, c in self._audio], self._stream_map, self.muxed,
                             self._transcoders)

    def subtitle_summary(self) -> list[dict[str, object]]:
        """Per subtitle stream of the source: its index and codec, how it was written (``copy``, the codec it
        was converted to, None: left out) and the packets (cues) written."""
        return [{"stream": index, "codec": codec,
                 "written_as": "copy" if index in self._stream_map else
                 self._subtitles[index].encoder if index in self._subtitles else None,
                 "packets": self.muxed.get(index, 0)} for index, codec in self._subtitle_streams]

    def close(self) -> None:
        self._pending = None
        if self._src is not None:
            self._src.close()
            self._src = None
