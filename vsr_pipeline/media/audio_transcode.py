"""Audio an output container cannot hold, re-encoded instead of left out.

Copying packet for packet (``stream_copy``) keeps audio bit-exact, but many sources' audio has no place in
the output chosen: a camera's G.711 (``pcm_mulaw``/``pcm_alaw``) or an old camcorder's PCM/ADPCM in MP4,
MPEG-TS or Matroska, WMA from .wmv, Vorbis from WebM in MP4, AAC in WebM. Those streams are decoded and
encoded again (:class:`AudioTranscoder`) with the first encoder of :data:`AUDIO_ENCODERS` the container
holds (AAC, or Opus for WebM), at the source's sample rate where the encoder takes it, keeping each
packet's time (and a reopened stream's shift), so the audio stays in step with the video.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from fractions import Fraction
from typing import Any

import av

from .container_codecs import container_holds
from .errors import short_reason

log = logging.getLogger(__name__)

#: encoders tried in order for audio the output cannot hold as it is (FFmpeg's own AAC; Opus for WebM)
AUDIO_ENCODERS = ("aac", "libopus", "mp2")
#: bit rate per channel of the re-encoded audio, and at most in all
BIT_RATE_PER_CHANNEL, MAX_BIT_RATE = 64_000, 384_000
#: channel layouts kept as they are (beyond them: downmixed to stereo)
KEPT_LAYOUTS = frozenset({"mono", "stereo", "2.1", "3.0", "quad", "4.0", "5.0", "5.1", "5.0(side)",
                          "5.1(side)", "6.1", "7.1"})


def audio_encoder_for(container: av.container.OutputContainer) -> str | None:
    """The first of :data:`AUDIO_ENCODERS` this PyAV has and ``container`` holds (None: none)."""
    for name in AUDIO_ENCODERS:
        if name in av.codecs_available and container_holds(container, name):
            return name
    return None


def encoder_rate(encoder: str, rate: int) -> int:
    """``rate`` where the encoder takes it, else its lowest rate above it, else its highest."""
    rates = sorted(av.Codec(encoder, "w").audio_rates or ())
    if not rates or rate in rates:
        return rate
    return next((r for r in rates if r >= rate), rates[-1])


def output_layout(decoder: Any, encoder: str) -> str:
    """The source's channel layout where kept (:data:`KEPT_LAYOUTS`; one of unnamed order: the usual one for
    its channel count), else stereo; MP2: mono or stereo."""
    channels = decoder.layout.nb_channels if decoder.layout else 0
    name = decoder.layout.name if decoder.layout else ""
    if name not in KEPT_LAYOUTS:
        name = {1: "mono", 2: "stereo", 6: "5.1", 8: "7.1"}.get(channels, "stereo")
    return name if encoder != "mp2" or name == "mono" else "stereo"


class AudioTranscoder:
    """Decodes packets of ``decoder`` (the source stream's codec context) and encodes them into a new audio
    stream of ``container`` with ``encoder``. :meth:`add` takes a packet and the seconds to add to its time;
    :meth:`finish` flushes (before the container is closed)."""

    def __init__(self, container: av.container.OutputContainer, decoder: Any, encoder: str):
        self._container, self._decoder = container, decoder
        self.source_rate = int(decoder.sample_rate or 48000)
        rate = encoder_rate(encoder, self.source_rate)
        layout = output_layout(decoder, encoder)
        self.stream = container.add_stream(encoder, rate=rate)
        self.stream.layout = layout
        channels = av.AudioLayout(layout).nb_channels
        self.stream.bit_rate = min(MAX_BIT_RATE, BIT_RATE_PER_CHANNEL * channels)
        self.stream.time_base = Fraction(1, rate)
        self.rate, self.layout, self.encoder = rate, layout, encoder
        self._resampler = av.AudioResampler(format="fltp" if encoder != "mp2" else "s16", layout=layout,
                                            rate=rate)
        self._next: int | None = None  # the next sample's pts, in 1/rate
        self.frames = 0
        self.packets = 0
        self._finished = False

    def add(self, packet: av.Packet, shift_s: Fraction = Fraction(0)) -> None:
        """Decode ``packet`` and encode what it holds, timed from its pts (else dts) plus ``shift_s``; a
        packet without a time goes on from the previous one's end."""
        ts = packet.pts if packet.pts is not None else packet.dts
        start = None if ts is None else round((ts * Fraction(packet.time_base) + shift_s) * self.rate)
        for frame in self._decoder.decode(packet):
            for out in self._resampler.resample(frame):
                self._encode(out, start)
                start = None

    def _encode(self, frame: av.AudioFrame, start: int | None) -> None:
        # a packet more than a millisecond after the last one's end leaves the gap the source has (lost
        # packets); within it (the rounding of the source's times) or before it (overlapping packets, which
        # the encoder and muxer would refuse as going backwards) the sound goes on where it was
        if start is not None and (self._next is None or (start - self._next) * 1000 > self.rate):
            self._next = start
        if self._next is None:
            self._next = 0
        frame.pts, frame.time_base = self._next, Fraction(1, self.rate)
        self._next += frame.samples
        self.frames += 1
        self._mux(self.stream.encode(frame))

    def _mux(self, packets: list[av.Packet]) -> None:
        for p in packets:
            self._container.mux(p)
            self.packets += 1

    def finish(self) -> None:
        """Encode what the resampler and encoder still hold (once; later calls do nothing)."""
        if self._finished:
            return
        self._finished = True
        for out in self._resampler.resample(None):
            self._encode(out, None)
        self._mux(self.stream.encode(None))


def try_transcoder(container: av.container.OutputContainer, decoder: Any, what: str, out_name: str,
                   why: str) -> AudioTranscoder | None:
    """An :class:`AudioTranscoder` for ``decoder``'s audio into ``container``, logged (``what`` names the
    stream, ``why`` says why it is not copied), or None with a warning where no encoder fits or it cannot
    be set up."""
    encoder = audio_encoder_for(container)
    if encoder is None:
        log.warning("%s: not copying %s (%s): %s, and no audio encoder here fits it", out_name, what,
                    decoder.name, why)
        return None
    try:
        transcoder = AudioTranscoder(container, decoder, encoder)
    except (av.FFmpegError, ValueError) as exc:
        log.warning("%s: not copying %s (%s): %s, and re-encoding failed (%s)", out_name, what, decoder.name,
                    why, short_reason(exc))
        return None
    log.info("%s: %s (%s) re-encoded as %s %d Hz %s, %d kb/s: %s", out_name, what, decoder.name,
             av.Codec(encoder, "w").canonical_name, transcoder.rate, transcoder.layout,
             transcoder.stream.bit_rate // 1000, why)
    return transcoder


def audio_summary(sources: Sequence[tuple[int, int, str]], copying: Collection[int], muxed: Mapping[int, int],
                  transcoders: Mapping[int, AudioTranscoder]) -> list[dict[str, object]]:
    """Per source audio stream ``(key, stream index, codec)``: its index and codec, how it was written
    (``copy`` where ``copying`` holds its key, the codec it was re-encoded as, or None: left out) and the
    packets written (``muxed`` of the copied ones, by key)."""
    rows: list[dict[str, object]] = []
    for key, index, codec in sources:
        transcoder = transcoders.get(key)
        written = "copy" if key in copying else \
            av.Codec(transcoder.encoder, "w").canonical_name if transcoder is not None else None
        packets = transcoder.packets if transcoder is not None else muxed.get(key, 0)
        rows.append({"stream": index, "codec": codec, "written_as": written, "packets": packets})
    return rows
