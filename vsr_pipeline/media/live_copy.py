"""A live stream's audio, copied packet for packet into its growing output.

A pipe or a URL is read once, on the decode thread, so its audio packets cannot be read again from a file
at the end (as ``StreamCopier`` does): the decode thread puts them in a :class:`PacketTap` as it demuxes,
and the writer's :class:`LiveCopier` muxes those whose time has come (up to the last video frame written),
so audio and video interleave. A packet without a timestamp, or whose dts does not increase, is dropped
(counted); a packet the muxer refuses ends the copy with a warning: the video never fails for its audio.
Audio the output cannot hold (a camera's G.711 into MP4) is re-encoded (``audio_transcode``).
"""

from __future__ import annotations

import collections
import logging
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from .audio_transcode import AudioTranscoder, audio_summary, try_transcoder
from .container_codecs import container_holds
from .errors import short_reason
from .stream_copy import copy_refused, stream_like

log = logging.getLogger(__name__)

#: muxers of fragmented MP4/MOV (the live outputs .mp4, .mov): ADTS AAC goes in through ``aac_adtstoasc``
ISO_BMFF_MUXERS = frozenset({"mp4", "mov"})
#: packets a tap holds at most (the oldest go first): minutes of audio; the decode queue keeps the video,
#: and with it the audio, within seconds of the encoder
TAP_PACKETS = 20_000


def audio_key(stream: Any) -> tuple[object, ...]:
    """What must match for a reopened stream's audio to go on in the same output stream."""
    cc = stream.codec_context
    return (cc.name, cc.sample_rate, cc.layout.nb_channels if cc.layout else None)


class PacketTap:
    """Audio packets of a stream, as the decode thread demuxes them, with the connection they came on; each
    connection's shift (seconds added: a reopened URL's timeline goes on from the last frame) is known once
    its first frame is. Thread-safe."""

    def __init__(self) -> None:
        self.templates: list[Any] = []  # the first connection's audio streams (their codec parameters)
        self._keys: list[tuple[object, ...]] = []
        self._packets: collections.deque[tuple[int, int, av.Packet]] = collections.deque()
        self._shifts: list[Fraction | None] = []
        self._lock = threading.Lock()
        self.open = True
        self.dropped = 0  # packets of a connection that never gave a frame
        self._held: Any = None  # the templates' container, while no copier has taken their parameters
        self._adopted = False

    def connect(self, streams: list[Any], name: str) -> tuple[int, dict[int, int]]:
        """The audio ``streams`` of a new connection: the first's become the templates; a later one's are
        mapped by order onto them where codec, rate and channels match (else the copy ends, with a
        warning). Returns the connection's number and input stream index -> template position."""
        keys = [audio_key(s) for s in streams]
        with self._lock:
            conn = len(self._shifts)
            self._shifts.append(Fraction(0) if conn == 0 else None)
        if conn == 0:
            self.templates, self._keys = list(streams), keys
            return conn, {s.index: i for i, s in enumerate(streams)}
        if keys[: len(self._keys)] != self._keys:
            if self._keys:
                log.warning("%s: opened again, its audio differs (%s, was %s): audio is not copied on", name,
                            keys, self._keys)
            self.open = False
            return conn, {}
        return conn, {s.index: i for i, s in enumerate(streams[: len(self._keys)])}

    def hold(self, container: Any) -> bool:
        """Keep ``container`` open when its streams are the templates and no copier has taken them yet (a
        stream of a closed container is freed memory: reading it crashed the process); True if held, and
        then :meth:`release` closes it."""
        with self._lock:
            if self._adopted or not self.templates or self.templates[0].container is not container:
                return False
            self._held = container
            return True

    def release(self) -> None:
        """The templates are no longer needed (a copier took them, or none will): close a held container."""
        with self._lock:
            self._adopted, held, self._held = True, self._held, None
        if held is not None:
            held.close()

    def set_shift(self, conn: int, shift_s: Fraction) -> None:
        with self._lock:
            self._shifts[conn] = shift_s

    def put(self, conn: int, position: int, packet: av.Packet) -> None:
        if not self.open:
            return
        with self._lock:
            if len(self._packets) >= TAP_PACKETS:
                self._packets.popleft()
            self._packets.append((conn, position, packet))

    def take(self, until: Fraction | None) -> list[tuple[int, av.Packet, Fraction]]:
        """(position, packet, shift) for the packets, in arrival order, whose time (pts, else dts, plus
        their connection's shift) is <= ``until`` seconds, all for None; the first later one (or one whose
        connection's shift is not known yet) and those after it stay."""
        out = []
        with self._lock:
            while self._packets:
                conn, position, packet = self._packets[0]
                shift = self._shifts[conn]
                if shift is None:
                    if until is not None:
                        break
                    self._packets.popleft()
                    self.dropped += 1
                    continue
                ts = packet.pts if packet.pts is not None else packet.dts
                if until is not None and ts is not None and ts * Fraction(packet.time_base) + shift > until:
                    break
                self._packets.popleft()
                out.append((position, packet, shift))
        return out


class LiveCopier:
    """Output streams for a tap's templates in ``container`` (those it can hold) and, at each :meth:`pump`,
    the tap's packets up to a time muxed into them; the interface of ``StreamCopier``."""

    def __init__(self, container: av.container.OutputContainer, tap: PacketTap, out_path: Path):
        self._container, self._tap, self._out = container, tap, out_path
        self._streams: dict[int, av.stream.Stream] = {}
        self._last_dts: dict[int, int] = {}
        self._filters: dict[int, Any] = {}  # position -> FFmpeg bitstream filter its packets go through
        #: position -> re-encoder, for audio the container cannot hold (a camera's G.711 into MP4): it
        #: decodes with the template's codec context, so the tap keeps the templates' container open
        self._transcoders: dict[int, AudioTranscoder] = {}
        self.dropped = 0
        self.muxed: dict[int, int] = {}  # position -> packets copied into the output
        # what the summary names, read now: the templates' container is closed at ``tap.release()``
        self._sources = [(s.index, s.codec_context.name) for s in tap.templates]
        for position, s in enumerate(tap.templates):
            name = s.codec_context.name
            refused = f"the {out_path.suffix} container cannot hold it" \
                if not container_holds(container, name) else copy_refused(container, s)
            if refused:
                transcoder = try_transcoder(container, s.codec_context, f"audio stream #{s.index}",
                                            str(out_path), refused)
                if transcoder is not None:
                    self._transcoders[position] = transcoder
                continue
            try:
                adts = name == "aac" and not s.codec_context.extradata
                if adts and container.format.name in ISO_BMFF_MUXERS:
                    # ADTS AAC (MPEG-TS): FFmpeg's MP4 muxer refused its packets in a fragmented file
                    # ("Operation not permitted"); stripped to raw AAC here, the first carries the config,
                    # which reaches the header (written with the first fragment: ``delay_moov``)
                    self._filters[position] = av.BitStreamFilterContext("aac_adtstoasc", s)
                self._streams[position] = stream_like(container, s)
            except (av.FFmpegError, ValueError) as exc:
                log.warning("%s: not copying audio stream #%d (%s): %s", out_path, s.index, name,
                            short_reason(exc))
        if not self._transcoders:
            tap.release()

    @property
    def active(self) -> bool:
        return bool(self._streams or self._transcoders) and self._tap.open

    def pump(self, until: Fraction | None) -> None:
        """Mux the tap's packets whose time is <= ``until`` seconds (all when None)."""
        for position, packet, shift in self._tap.take(until):
            out = self._streams.get(position)
            transcoder = self._transcoders.get(position)
            if (out is None and transcoder is None) or not self.active:
                continue
            if transcoder is not None:
                try:
                    transcoder.add(packet, shift)
                except av.FFmpegError:  # a damaged packet: left out, as a player would
                    self.dropped += 1
                continue
            tb = Fraction(packet.time_base)
            move = round(shift / tb) if shift else 0
            pts = None if packet.pts is None else packet.pts + move
            dts = None if packet.dts is None else packet.dts + move
            last = self._last_dts.get(position)
            if (pts is None and dts is None) or (dts is not None and last is not None and dts <= last):
                self.dropped += 1
                continue
            packet.pts, packet.dts = pts, dts
            try:
                bsf = self._filters.get(position)
                for q in bsf.filter(packet) if bsf is not None else [packet]:
                    q.stream = out
                    self._container.mux(q)
                    self.muxed[position] = self.muxed.get(position, 0) + 1
            except av.FFmpegError as exc:
                log.warning("%s: stopped copying the stream's audio (%s)", self._out, short_reason(exc))
                self._tap.open = False
                return
            if dts is not None:
                self._last_dts[position] = dts

    def finish(self) -> None:
        """Flush the re-encoded audio (after the last :meth:`pump`, before the container is closed)."""
        for transcoder in self._transcoders.values():
            transcoder.finish()

    def summary(self) -> list[dict[str, object]]:
        """What became of each audio stream of the source (``audio_transcode.audio_summary``)."""
        return audio_summary([(k, i, c) for k, (i, c) in enumerate(self._sources)], self._streams, self.muxed,
                             self._transcoders)

    def close(self) -> None:
        if self._transcoders:
            self._transcoders.clear()
            self._tap.release()
        if self.dropped or self._tap.dropped:
            log.warning("%s: %d audio packet(s) without a timestamp, out of order or of a connection that "
                        "gave no frame were left out", self._out, self.dropped + self._tap.dropped)
        self._tap.open = False
