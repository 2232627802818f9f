"""A live stream's source: stdin or a URL opened once, decoded front to back on a thread of its own.

``StreamDecoder`` puts ``("start", VideoInfo)``, then ``(rgb (H, W, 3) uint8, pts)`` per frame, then ``END``
(or an exception) on a bounded queue; timestamps are repaired and interlaced frames deinterlaced as the file
reader does (``vsr_pipeline.media.ingest``), and stdin's bytes are hashed as they pass (``StdinPipe``) for the
job's manifest. ``vsr_pipeline.streaming`` cuts the frames into chunks for the scheduler.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import logging
import queue
import sys
import threading
from collections.abc import Iterator
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

import av
import numpy as np

from vsr_pipeline.errors import UsageError
from vsr_pipeline.media import MediaError, VideoInfo, frame_to_rgb
from vsr_pipeline.media.crop import crop_frames, output_offset, resolve_crop, stored_region, with_context
from vsr_pipeline.media.errors import short_reason
from vsr_pipeline.media.frame_order import decode_order_pts
from vsr_pipeline.media.hdr_metadata import hdr_static
from vsr_pipeline.media.ingest import Deinterlacer, TimestampRepair, frame_step, is_interlaced, stream_rate
from vsr_pipeline.media.live_copy import PacketTap
from vsr_pipeline.media.probe import bit_depth_of, main_video, stream_sar

log = logging.getLogger(__name__)

#: URL schemes FFmpeg's protocols open (``-`` is stdin).
STREAM_SCHEMES = frozenset({
    "http", "https", "rtsp", "rtsps", "rtmp", "rtmps", "rtmpt", "rtp", "srt", "udp", "tcp", "pipe", "hls",
    "mms", "mmsh", "mmst", "ftp", "sftp", "tls", "unix",
})
#: Demuxer options: no wait for 20 frames to estimate the frame rate before the first is handed out (a live
#: stream would start that much later); the rate comes from the codec's headers, else 25. No duration from
#: the last pts: over http(s) with ranges the MPEG-TS demuxer sought the end of the file for it and back,
#: which FFmpeg's reconnect did by asking for the file again from byte 0, and without reconnect (a failed
#: one; the tests' stand-in for rtsp) lost every packet (0 of 48 frames, every time:
#: tests/test_stream_audio.py::test_a_ts_over_http_with_ranges_is_read_once_and_whole).
PROBE_OPTIONS = {"fpsprobesize": "0", "skip_estimate_duration_from_pts": "1"}
#: http(s): FFmpeg reopens a connection that drops or fails mid-stream and reads on (from the byte where it
#: stopped where the server takes a Range, else from where a live server is now): tried at once, then after
#: 1 s (``reconnect_delay_max`` 2: delays 0, 1, 3, ... up to it). Without it a dropped connection ended the
#: job with an I/O error; a URL that refuses the first connection now takes about 1 s to fail.
HTTP_RECONNECT = {"reconnect": "1", "reconnect_streamed": "1", "reconnect_on_network_error": "1",
                  "reconnect_delay_max": "2"}
#: rtsp: RTP interleaved on the RTSP connection (TCP) first, instead of FFmpeg's default UDP, as camera
#: recorders switch to (ZoneMinder issue #323: artefacts on 10 cameras over UDP, gone with TCP): over UDP a
#: lost packet is a smeared or grey frame, and NAT or a firewall between camera and host drops UDP
#: altogether. ``prefer_tcp`` still falls back to UDP for a camera that refuses TCP (461); forcing TCP
#: failed there ("Protocol not supported"). Both: tests/test_rtsp.py
RTSP_OPTIONS = {"rtsp_flags": "prefer_tcp"}
#: seconds before a failed URL is opened again, times the attempt (``StreamDecoder.reopens``)
REOPEN_DELAY_S = 1.0
#: a reopened URL whose first pts is ahead of the last frame's by at most this many seconds keeps its pts
KEEP_CLOCK_S = 300

#: the frame rate of a stream that declares none that is plausible (an RTSP camera whose SPS has no timing:
#: its rates are the RTP clock, 90000); its pts are kept all the same, this sizes the keyframe interval and
#: the step that repairs a missing pts
LIVE_DEFAULT_FPS = 25

#: frames looked at for a pts when a stream's first frame has none (``first_pts_from_later``)
FIRST_PTS_LOOKAHEAD = 8

END = object()


class StreamDropped(Exception):
    """A live stream came to an end it does not have (``live_stream_ended``): a failure, like a read error."""


def live_stream_ended(source: str, container: av.container.InputContainer) -> bool:
    """Whether reaching the end of ``container`` means the connection dropped: an RTSP stream whose session
    description gives no length (a camera's; a recording's, as an NVR plays one back, has ``a=range`` with
    an end). FFmpeg's RTSP client reads a connection the server closed as the end of the stream, exactly
    as a BYE ("Failed reading RTSP data: End of file", then EOF): a camera that dropped ended the job as
    if done (tests/test_rtsp.py)."""
    return urlsplit(source).scheme.lower() in ("rtsp", "rtsps") and not container.duration


def first_pts_from_later(first: av.VideoFrame, frames: Iterator[Any], step: int) -> Iterator[Any]:
    """``frames`` (``first`` the first of them, without a pts), ``first`` given the first later pts minus
    ``step`` per frame between, where one of the next :data:`FIRST_PTS_LOOKAHEAD` has a pts. FFmpeg's RTSP
    client gives the first packet of a session no pts: repaired to 0 (the previous frame + one, after a
    reopen), which put a reopened camera's frames on the old session's clock."""
    head = []
    for item in frames:
        head.append(item)
        if len(head) > FIRST_PTS_LOOKAHEAD or (isinstance(item, av.VideoFrame) and item.pts is not None):
            break
    later = head[-1]
    if len(head) > 1 and isinstance(later, av.VideoFrame) and later.pts is not None:
        first.pts = later.pts - (len(head) - 1) * step
    return itertools.chain(head, frames)


class StdinPipe:
    """stdin for PyAV: ``read(n)`` returns the bytes that have arrived (at least one, ``b""`` at the end)
    instead of blocking until ``n`` (a live pipe would stall until PyAV's 32 KiB buffer filled)."""

    def __init__(self, raw: Any):
        self.raw = raw
        self.sha256 = hashlib.sha256()  # of every byte read: the stream's provenance (vsr_pipeline.manifest)
        self.bytes = 0

    def read(self, n: int) -> bytes:
        data = bytes(self.raw.read1(n))
        self.sha256.update(data)
        self.bytes += len(data)
        return data


def redact_url(source: str) -> str:
    """``source`` as it may be shown, logged or recorded: a URL's password replaced by ``***`` (a camera's
    ``rtsp://admin:PASSWORD@host/...``); anything else unchanged."""
    parts = urlsplit(source)
    if parts.password is None:
        return source
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()


def is_stream_source(s: str) -> bool:
    """``-`` (stdin) or a URL with an FFmpeg network/pipe protocol (``http://``, ``rtsp://``, ``pipe:``)."""
    if s == "-":
        return True
    scheme = urlsplit(s).scheme.lower()
    return (scheme in STREAM_SCHEMES and "://" in s) or scheme == "pipe"


def check_stdin() -> None:
    """stdin must be a pipe or file that holds data (UsageError / MediaError, one line)."""
    stdin = sys.stdin.buffer
    if stdin.isatty():
        raise UsageError("input - reads a video from stdin, but stdin is a terminal; pipe one in "
                         "(cat clip.ts | vsr upscale - -o out.mkv)")
    if not stdin.peek(1):  # type: ignore[attr-defined]
        raise MediaError("stdin: empty input (no bytes)")


def open_source(source: str, timeout: float, stdin: StdinPipe | None = None) -> av.container.InputContainer:
    """Open stdin (through ``stdin``) or the URL for sequential reading (MediaError, one line, on failure)."""
    name = "stdin" if source == "-" else redact_url(source)
    try:
        if source == "-":
            stdin = stdin or StdinPipe(sys.stdin.buffer)
            return av.open(stdin, mode="r", options=PROBE_OPTIONS, metadata_errors="replace")
        scheme = urlsplit(source).scheme.lower()
        extra = HTTP_RECONNECT if scheme in ("http", "https") else RTSP_OPTIONS if scheme == "rtsp" else {}
        return av.open(source, mode="r", options=PROBE_OPTIONS | extra, timeout=(timeout, timeout),
                       metadata_errors="replace")
    except av.FFmpegError as exc:
        hint = " (an MP4 must be fragmented to be read from a pipe; MPEG-TS or MKV stream as is)" \
            if source == "-" and "moov" in str(exc) else ""
        reason = f"no answer in {timeout:g} s" if isinstance(exc, av.error.ExitError) else short_reason(exc)
        raise MediaError(f"{name}: cannot open as a video stream ({reason}){hint}") from None
    except OSError as exc:
        raise MediaError(f"{name}: cannot open ({short_reason(exc)})") from None


class StreamDecoder(threading.Thread):
    """Opens the source and decodes its first video stream. Puts on ``out``: ``("start", VideoInfo)``, then
    ``(rgb (H, W, 3) uint8, pts)`` per frame (uint16 for a source of more than 8 bits with ``deep``), then
    ``END``, or an exception instead. Pts that are missing,
    repeat or go backwards are repaired as the file reader does (``media.ingest.TimestampRepair``, counted
    in ``timestamps``); where the pts cannot be display times (an AVI with B-frames:
    :func:`.media.frame_order.decode_order_pts`) each frame gets the lowest packet pts not yet given, as
    the file reader numbers them (``renumbered`` counts the frames changed); interlaced frames are
    deinterlaced unless ``deinterlace`` is False (one frame of delay). Opening and reading happen here,
    never in the caller's thread, so Ctrl-C there is never swallowed inside PyAV's read callback (which
    would read as end of stream). A URL whose reading fails after it gave frames (a camera that drops) is
    opened again up to ``reopens`` times; its frames go on from the last one's pts (``_reopened_at``)."""

    def __init__(self, source: str, timeout: float, out: queue.Queue[Any], stop: threading.Event,
                 on_corrupt: str, deinterlace: bool = True, reopens: int = 0, deep: bool = False,
                 crop: tuple[int, ...] | None = None, end: float | None = None, field_match: bool = False):
        super().__init__(daemon=True, name="vsr-stream-decode")
        #: a URL whose reading fails after frames came is opened again up to this many times (``reopened``)
        self.reopens, self.reopened = reopens, 0
        self.info: VideoInfo | None = None
        self._tags: tuple[int, int] | None = None
        self._good: np.ndarray | None = None
        self._offset = 0  # added to a reopened connection's pts: its timeline goes on from the last frame
        self.source, self.timeout, self.out, self.stop_event = source, timeout, out, stop
        self.name_shown = "stdin" if source == "-" else redact_url(source)
        self.on_corrupt = on_corrupt
        self.deinterlace = deinterlace
        self.field_match = deinterlace and field_match  # telecined film (``ingest.Deinterlacer``)
        self.deep = deep
        #: ``--crop``: only this region goes on (``media.crop``; resolved at the first frame: ``region``,
        #: and ``crop`` with its X and Y filled in); ``info`` then has its size
        self.crop, self.region = crop, None
        self.cut: tuple[int, int, int, int] | None = None
        self._size: tuple[int, int] | None = None  # the stream's first decoded size
        #: ``--end``: the stream is read up to this many seconds after its first frame (``reached_end``)
        self.end, self.reached_end = end, False
        self._first_pts: int | None = None
        self.deinterlaced = False
        self.timestamps = TimestampRepair(1)
        self.bad_packets = 0
        self.renumbered = 0
        self.renumbered_first: int | None = None
        self.repeated = 0  # lost frames the previous frame stood in for
        self.concealed = 0  # frames decoded from damaged data (``FrameReader.concealed``)
        self.resized = 0  # frames of another size than the first, scaled to it (``_same_size``)
        self.pipe = StdinPipe(sys.stdin.buffer) if source == "-" else None
        #: the stream's audio packets, for the writer to copy (``media.live_copy``)
        self.tap = PacketTap()
        self._conn = 0  # this connection's number (the tap's)
        self._audio: dict[int, int] = {}  # its audio stream index -> the tap's position
        #: per frame handed on: (pts as read or None, pts given, a stand-in for a lost frame, the shift added
        #: to its connection's pts: 0 but for a URL opened again)
        self.mapping: list[tuple[int | None, int, bool, int]] = []

    def frames(self, container: av.container.InputContainer, stream: Any) -> Any:
        """Decoded frames, and for a packet that fails to decode its pts (an int, or None): with
        ``on_corrupt`` repeat the previous frame stands in at that pts, with skip it is left out, with fail
        it is a MediaError. Frames of a stream whose pts are not display times take the lowest pts of
        the packets demuxed so far that no frame has taken."""
        slots: list[int] | None = [] if decode_order_pts(container, stream) else None
        given = 0
        audio = [s for s in container.streams.audio if s.index in self._audio]
        for packet in container.demux(stream, *audio):
            if packet.stream_index != stream.index:  # audio: to the tap, for the writer
                if packet.size:
                    self.tap.put(self._conn, self._audio[packet.stream_index], packet)
                continue
            if slots is not None and packet.size and packet.pts is not None:
                heapq.heappush(slots, int(packet.pts))
            try:
                for frame in stream.decode(packet):
                    if slots:
                        pts = heapq.heappop(slots)
                        if frame.pts != pts:
                            if self.renumbered_first is None:
                                self.renumbered_first = given
                            self.renumbered += 1
                            frame.pts = pts
                    given += 1
                    if frame.is_corrupt:  # decoded from damaged data, repaired by the decoder (MPEG-1/2/4)
                        self.concealed += 1
                        if self.concealed == 1:
                            log.warning("%s: frame %d was decoded from damaged data, repaired by the "
                                        "decoder (later ones are counted: concealed_frames)", self.name_shown,
                                        given - 1)
                    yield frame
            except av.FFmpegError as exc:
                if packet.size == 0:
                    return
                if self.on_corrupt == "fail":
                    raise MediaError(f"{self.name_shown}: a packet cannot be decoded ({short_reason(exc)}); "
                                     f"--on-corrupt repeat or skip carries on") from None
                self.bad_packets += 1
                if self.bad_packets == 1:
                    log.warning("%s: a packet cannot be decoded (%s): %s", self.name_shown,
                                short_reason(exc), "previous frame repeated" if self.on_corrupt == "repeat"
                                else "frame left out")
                given += 1
                yield heapq.heappop(slots) if slots else packet.pts

    def run(self) -> None:
        while True:
            try:
                container = open_source(self.source, self.timeout, self.pipe)
            except MediaError as exc:  # a URL that does not open again counts as an attempt too
                if self._may_reopen(exc):
                    continue
                self._put(exc)
                return
            try:
                try:
                    self._decode(container)
                finally:
                    if not self.tap.hold(container):  # its audio streams are the writer's templates
                        container.close()
                return
            except av.FFmpegError as exc:
                failure = MediaError(f"{self.name_shown}: reading the stream failed ({self._reason(exc)})")
            except StreamDropped as exc:
                failure = MediaError(str(exc))
            except Exception as exc:
                self._put(exc)
                return
            if not self._may_reopen(failure):
                self._put(failure)
                return

    def _reason(self, exc: av.FFmpegError) -> str:
        """Why reading failed, in one phrase: a read that waited out the timeout (PyAV's interrupt: FFmpeg's
        "Immediate exit requested", which said nothing to a user) as how long nothing came."""
        if isinstance(exc, av.error.ExitError):
            return f"no data for {self.timeout:g} s"
        return short_reason(exc)

    def _may_reopen(self, failure: MediaError) -> bool:
        """Whether to open the URL again after ``failure`` (a read that failed, or a reopen that did not
        connect): only a URL (stdin cannot be read again) that gave frames before, ``reopens`` times, each
        after ``REOPEN_DELAY_S`` x the attempt (the wait ends at a stop)."""
        if self.pipe is not None or self.info is None or self.reopened >= self.reopens:
            return False
        self.reopened += 1
        log.warning("%s; opening it again (%d of %d)", failure, self.reopened, self.reopens)
        return not self.stop_event.wait(REOPEN_DELAY_S * self.reopened)

    def _decode(self, container: av.container.InputContainer) -> None:
        name = self.name_shown
        if not container.streams.video:
            raise MediaError(f"{name}: no video stream")
        if container.streams.subtitles:
            log.warning("%s: subtitles are not copied from a stream input", name)
        self._conn, self._audio = self.tap.connect(list(container.streams.audio), name)
        stream = main_video(container)
        stream.thread_type = "SLICE"  # frame threads would hold back one frame per thread
        items = self.frames(container, stream)
        # lost frames before the first decodable one have no frame to stand in for them: left out
        first = next((f for f in items if isinstance(f, av.VideoFrame)), None)
        if first is None:
            raise MediaError(f"{name}: the video stream has no decodable frame")
        interlaced = is_interlaced(stream, first)
        frames: Iterator[av.VideoFrame | int | None] = itertools.chain([first], items)
        if first.pts is None:
            frames = first_pts_from_later(first, frames, frame_step(stream_rate(stream) or LIVE_DEFAULT_FPS,
                                                                     stream.time_base))
        if self.deinterlace and (interlaced or self.field_match):
            frames = Deinterlacer(Fraction(stream.time_base or Fraction(1, 90000)), name,
                                  self.field_match).filter(frames)
            self.deinterlaced = True
        if self.info is not None:  # opened again: the timeline going on
            self._reopened_at(stream, first)
            self.tap.set_shift(self._conn, self._offset * self.info.time_base)
        for frame in frames:
            if not isinstance(frame, av.VideoFrame):  # a lost frame: its packet's pts, or None
                if self.on_corrupt == "repeat" and self._good is not None:
                    self.repeated += 1
                    fixed = self.timestamps.fix(None if frame is None else frame + self._offset, count=False)
                    if self._past_end(fixed):
                        return
                    self.mapping.append((frame, fixed, True, self._offset))
                    if not self._put((self._good, fixed)):
                        return
                continue
            if self._tags is None:
                self._tags = (int(frame.colorspace), int(frame.color_range or 0))
                self._size = (frame.width, frame.height)
                self._set_region(frame)
                rgb = crop_frames(frame_to_rgb(frame, *self._tags, self.deep), self.region)
                self.info = stream_info(redact_url(self.source), container, stream, rgb, frame, interlaced)
                self.timestamps = TimestampRepair(frame_step(stream_rate(stream) or self.info.fps,
                                                             self.info.time_base))
                self._put(("start", self.info))
            read = frame.pts if frame.pts is not None else frame.dts
            pts = self.timestamps.fix(None if read is None else read + self._offset)
            if self._past_end(pts):
                return
            self.mapping.append((read, pts, False, self._offset))
            rgb = frame_to_rgb(self._same_size(frame), *self._tags, self.deep)
            self._good = crop_frames(rgb, self.region)
            if not self._put((self._good, pts)):
                return
        if live_stream_ended(self.source, container):
            raise StreamDropped(f"{name}: the stream ended, but a live RTSP stream (no length in its "
                                f"description) has no end: the camera or the connection dropped")
        self._put(END)

    def _past_end(self, pts: int) -> bool:
        """Whether a frame at ``pts`` lies ``end`` seconds or more after the first: then the stream is over
        (``END`` is queued, as at a clean end) and ``reached_end`` says why."""
        assert self.info is not None
        self._first_pts = pts if self._first_pts is None else self._first_pts
        if self.end is None or (pts - self._first_pts) * self.info.time_base < Fraction(str(self.end)):
            return False
        self.reached_end = True
        self._put(END)
        return True

    def _same_size(self, frame: av.VideoFrame) -> av.VideoFrame:
        """``frame`` at the stream's first size: a frame of another (a camera reconfigured mid-stream, a
        reopened URL that serves another size) is scaled to it, bicubic, as FFmpeg's own tools do; counted
        in ``resized``, a warning at the first. Before, the model's batch met frames of two sizes
        ("internal error: all input arrays must have the same shape") and the job died."""
        assert self._size is not None
        if (frame.width, frame.height) == self._size:
            return frame
        width, height = self._size
        self.resized += 1
        if self.resized == 1:
            log.warning("%s: frame %d is %dx%d, the stream began at %dx%d: such frames are scaled to %dx%d",
                        self.name_shown, len(self.mapping) - 1, frame.width, frame.height, width, height,
                        width, height)
        return frame.reformat(width=width, height=height, interpolation="BICUBIC")

    def _set_region(self, first: av.VideoFrame) -> None:
        """Resolve ``crop`` on the stream's first frame (``UsageError`` where it reaches past the picture):
        the frames given are the region with its context (``media.crop.with_context``), ``cut`` says where
        the region lies in them (x, y, width, height)."""
        if not self.crop:
            return
        size = (first.width, first.height, int(first.rotation or 0))
        try:
            self.crop = resolve_crop(self.crop, *size)
        except ValueError as exc:
            raise UsageError(f"{self.name_shown}: --crop {exc}") from None
        context = with_context(self.crop, *size)  # type: ignore[arg-type]
        self.region, inner = stored_region(context, *size), stored_region(self.crop, *size)
        self.cut = (*output_offset(self.crop, context, *size, 1), inner.width, inner.height)

    def _reopened_at(self, stream: Any, first: av.VideoFrame) -> None:
        """A reopened URL's first frame: its time base must be the first connection's (MediaError
        otherwise; a size of its own is scaled, ``_same_size``). Its pts are kept where they are ahead of
        the last frame given by up to ``KEEP_CLOCK_S``, else shifted to follow it, one frame duration on."""
        assert self.info is not None
        tb = Fraction(stream.time_base or Fraction(1, 90000))
        if tb != self.info.time_base:
            raise MediaError(f"{self.name_shown}: opened again, the stream's time base is {tb}, was "
                             f"{self.info.time_base}; not joined")
        read = first.pts if first.pts is not None else first.dts
        last = self.timestamps.last
        if read is None or last is None:
            return
        ahead = (int(read) - last) * tb
        # a source whose own clock went on over the outage (a live server's timeline) keeps its pts: the
        # outage shows as the gap it was; one whose pts start again (an rtsp session) or jump far follows on
        self._offset = 0 if 0 < ahead <= KEEP_CLOCK_S else last + self.timestamps.step - int(read)

    def _put(self, item: Any) -> bool:
        """Queue ``item``; False when the job was stopped first."""
        while not self.stop_event.is_set():
            try:
                self.out.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False


def stream_info(source: str, container: av.container.InputContainer, s: Any, first: np.ndarray,
                 first_frame: av.VideoFrame, interlaced: bool = False) -> VideoInfo:
    """A VideoInfo for the stream (frames 0: unknown), from its first frame (``first``: it as RGB)."""
    rate = stream_rate(s) or LIVE_DEFAULT_FPS
    return VideoInfo(
        path=source, width=first.shape[1], height=first.shape[0], frames=0, fps=Fraction(rate),
        time_base=Fraction(s.time_base or Fraction(1, 90000)), duration_s=0.0, codec=s.codec_context.name,
        pix_fmt=first_frame.format.name, bit_depth=bit_depth_of(first_frame.format.name),
        color_range=int(first_frame.color_range or 0),
        color_primaries=int(first_frame.color_primaries), color_trc=int(first_frame.color_trc),
        colorspace=int(first_frame.colorspace), rotation=int(first_frame.rotation or 0),
        container=container.format.name, interlaced=interlaced, sample_aspect_ratio=stream_sar(s),
        hdr=hdr_static(first_frame),
    )
