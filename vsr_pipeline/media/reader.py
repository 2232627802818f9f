"""``FrameReader``: sequential decoding into RGB batches (uint8, or uint16 for deep video), pts per frame."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from .colour import frame_to_rgb
from .crop import crop_frames, cropped_info, stored_region
from .decimate import Decimator
from .errors import MediaError, short_reason
from .frame_order import FrameMatcher, Lost
from .images import list_images, read_images
from .ingest import Deinterlacer, TimestampRepair, frame_step, stream_rate
from .probe import VideoInfo, main_video, open_input, probe
from .read_settings import ReadSettings as ReadSettings  # re-exported: how a job reads its input
from .seek import SeekError, StreamIndex, scan, seek_problem
from .trim import span_info

log = logging.getLogger(__name__)

#: What to do with a frame the decoder cannot produce (an undecodable packet in the middle of the stream):
#: ``fail`` stops with a MediaError naming the frame; ``repeat`` puts the previous good frame (the next
#: one at the very start) in its place with the lost frame's pts, so frame count and timing stay right;
#: ``skip`` gives the frame with pts ``None`` (the pipeline's encoder leaves such frames out).
ON_CORRUPT = ("fail", "repeat", "skip")
#: the reason of a frame the decoder produced from damaged data, its errors concealed (``concealed``)
CONCEALED = "damaged, repaired by the decoder"


def open_reader(path: str | os.PathLike[str], settings: ReadSettings) -> FrameReader:
    """A :class:`FrameReader` of ``path`` with ``settings``."""
    s = settings
    return FrameReader(path, s.fps, s.on_corrupt, s.deinterlace, s.deep, s.crop, s.span, s.seek_to_span,
                       s.field_match, s.decimate)


@dataclass(frozen=True)
class CorruptFrame:
    """A frame the decoder could not produce: its index in the stream, pts and time in seconds."""

    index: int
    pts: int | None
    time_s: float | None
    reason: str


class FrameReader:
    """Decode a video file (or read an image folder) in batches.

    ``read(n)`` returns ``(frames, pts)``: frames (t, H, W, 3) RGB C-contiguous, pts a list of ints
    in ``info.time_base`` (for image folders pts = index). t < n only at the end, t == 0 at EOF.
    Colours are converted with the matrix/range of the stream's tags (see :mod:`.colour`); frames
    without pts get their dts. Pts that are still missing, repeat or go backwards are repaired
    (:class:`.ingest.TimestampRepair`: the previous pts plus one frame duration, from the stream's frame
    rate, else the container's; ``timestamps_repaired`` counts them); valid increasing pts are kept
    exactly. Interlaced inputs (``info.interlaced``), and any with ``field_match`` (telecined film), are
    deinterlaced unless ``deinterlace`` is False (:class:`.ingest.Deinterlacer`: one frame per frame).

    Decode errors in the middle of the stream follow ``on_corrupt`` (see :data:`ON_CORRUPT`); a frame is
    counted as lost when its packet fails to decode, or, at the end, when the decoder gave fewer frames
    than :func:`probe` counted. ``corrupt`` lists them. Frames the decoder produced but flagged as damaged
    (errors it concealed from the neighbouring pictures: MPEG-1/2, MPEG-4 part 2, H.263; FFmpeg's H.264
    and HEVC decoders flag none) are kept and listed in ``concealed``.

    Frames are uint8; with ``deep``, a video of more than 8 bits per sample (``info.bit_depth``) gives
    uint16 frames (0-65535, :mod:`.colour`) so its 10 or 12 bits reach the model (``dtype`` says which).

    ``crop`` (``W, H[, X, Y]`` as displayed, :mod:`.crop`) gives only that region of each frame; ``info``
    then has the region's size (``region`` says where it lies in the decoded frame). ValueError when it does
    not fit the picture. ``span`` ``(first, stop, shift)`` (:mod:`.trim`) gives frames ``first..stop-1`` as
    a video of its own (numbered from 0, pts less ``shift``), reached by seeking where exact and
    ``seek_to_span``, else by decoding; lost frames before it are not reported, and ``corrupt`` and
    ``concealed`` give the input's own frame numbers and times.

    ``seek(index)`` positions the reader so the next ``read`` starts at frame ``index`` (keyframe seek,
    decode forward, drop frames before it by pts); ``frames_decoded`` counts frames out of the decoder
    (dropped ones included), to measure what seeking costs.
    """

    def __init__(self, path: str | os.PathLike[str], fps: Fraction | float | int | None = None,
                 on_corrupt: str = "fail", deinterlace: bool = True, deep: bool = False,
                 crop: tuple[int, ...] | None = None, span: tuple[int, int, int] | None = None,
                 seek_to_span: bool = True, field_match: bool = False, decimate: bool = False):
        if on_corrupt not in ON_CORRUPT:
            raise ValueError(f"on_corrupt must be one of {', '.join(ON_CORRUPT)}, got {on_corrupt!r}")
        self.path = Path(path)
        self.on_corrupt = on_corrupt
        source = probe(self.path, fps=fps)
        #: the decoded frames' size (``info`` has the crop's)
        self.source_size = (source.width, source.height)
        self.region = stored_region(crop, source.width, source.height, source.rotation) if crop else None
        #: the whole video's (cropped) info; ``info`` is the span's
        self._src = cropped_info(source, self.region)
        self._first, self._stop, self._shift = span if span else (0, self._src.frames, 0)
        if not 0 <= self._first < self._stop <= self._src.frames:
            raise ValueError(f"span {span} is outside the video's {self._src.frames} frames")
        self._seek_to_span = seek_to_span
        self._positioned = self._first == 0
        self.info: VideoInfo = span_info(self._src, self._first, self._stop)
        field_match = field_match and not source.is_image_folder  # a video's fields only
        self.deinterlace = deinterlace and (self.info.interlaced or field_match)
        self.field_match = self.deinterlace and field_match
        #: one repeat in every 5 field-matched frames dropped, the rest retimed (:mod:`.decimate`)
        self.decimate = self.field_match and decimate
        self._decimator: Decimator | None = None
        self.decimated: list[int] = []  # the input's numbers of the frames dropped so (in the span)
        self.deep = deep and self.info.bit_depth > 8
        #: the frames' sample type: uint16 for deep video read with ``deep``, else uint8
        self.dtype = np.dtype(np.uint16 if self.deep else np.uint8)
        self.timestamps = TimestampRepair(1)
        self.corrupt: list[CorruptFrame] = []
        self.concealed: list[CorruptFrame] = []
        self._flagged: set[int | None] = set()  # pts of decoded frames flagged corrupt, not yet read
        self._index = 0
        self._container = None
        self._frames: Iterator[av.VideoFrame | Lost] | None = None
        self._matcher: FrameMatcher | None = None
        self._good: np.ndarray | None = None
        self._images: list[Path] = []
        self._stream_index: StreamIndex | None = None
        self._seeked = False  # a seek past frame 0 happened: no stand-in from before the seek point
        self.frames_decoded = 0  # frames out of the decoder, dropped ones included
        self.resized = 0  # frames of another size than the video's, scaled to it (``_scaled``)
        if self.info.is_image_folder:
            self._images = list_images(self.path)
            return
        self._container = open_input(self.path)
        stream = main_video(self._container)
        stream.thread_type = "AUTO"
        rate = stream_rate(stream) or self.info.fps
        self.timestamps = TimestampRepair(frame_step(rate, self.info.time_base))
        self._frames = self._source(stream)

    @property
    def timestamps_repaired(self) -> int:
        """Frames whose pts was missing, repeated or went backwards, and was repaired."""
        return self.timestamps.repaired

    @property
    def timestamps_renumbered(self) -> tuple[int, int | None]:
        """Frames whose pts were not display times and were renumbered in the decoder's output order
        (:mod:`.frame_order`), and the first one's index (None: none)."""
        m = self._matcher
        return (m.renumbered, m.first) if m is not None else (0, None)

    @property
    def position(self) -> int:
        """Index of the frame the next ``read`` starts with (in the span, with one)."""
        return max(0, self._index - self._first)

    def _to_span_start(self) -> None:
        """Before a span's first read: seek to its first frame where exact and allowed, else decode to it."""
        self._positioned = True
        if self._src.is_image_folder or (self._seek_to_span and seek_problem(
                self.stream_index(), self._src, self.on_corrupt, self.deinterlace, self.field_match) is None):
            self.seek(0)
            return
        while self._index < self._first:
            if not self._read(min(16, self._first - self._index))[1]:
                break

    def stream_index(self) -> StreamIndex:
        """The demux-only index of the video packets (computed once; see :func:`.seek.scan`)."""
        if self._stream_index is None:
            self._stream_index = scan(self.path)
        return self._stream_index

    def _packet_pts(self) -> list[int] | None:
        """Sorted pts of every video packet (demuxing only), or None when they need repair (some packet has
        none, or they repeat or go backwards: decoded frames cannot be matched to packets by pts)."""
        index = self.stream_index()
        return None if index.missing_pts or index.repair is not None else list(index.pts)

    def _source(self, stream: av.video.stream.VideoStream, packets: Iterator[av.Packet] | None = None,
                start: int = 0) -> Iterator[av.VideoFrame | Lost]:
        """:meth:`_decode`'s frames, deinterlaced when the input is interlaced and ``deinterlace`` is on."""
        frames = self._decode(stream, packets, start)
        if not self.deinterlace:
            return frames
        frames = Deinterlacer(self.info.time_base, str(self.path), self.field_match).filter(frames)
        if not self.decimate:
            return frames
        self._decimator = Decimator(1 / (self.info.fps * self.info.time_base))
        return self._decimator.filter(frames)

    def _decode(self, stream: av.video.stream.VideoStream, packets: Iterator[av.Packet] | None = None,
                start: int = 0) -> Iterator[av.VideoFrame | Lost]:
        """Decoded frames in display order, with a ``Lost`` marker for each frame the decoder did not
        produce (:class:`.frame_order.FrameMatcher`: by the packets' pts, or, without usable packet pts or
        when the frames' pts are not display times, by count at the end).

        ``start`` > 0 (after a seek; ``packets`` then begins at a keyframe at or before frame ``start``):
        frames whose pts is below frame ``start``'s are dropped. :class:`SeekError` (the sequential decode
        would number frames differently, or find lost ones) when a frame's pts is no packet's or below an
        earlier frame's, when a packet pts from the keyframe's up to frame ``start``'s has no frame by then
        (a lost frame, or pts out of display order), or when the frames' pts turn out not to be display
        times (the matcher holds a frame past a gap until that is known)."""
        assert self._container is not None
        expected = self._packet_pts()
        floor = expected[start] if start and expected is not None else None
        in_order = expected is not None and self.stream_index().in_order is not None
        self._matcher = matcher = FrameMatcher(expected, self._src.frames, start, in_order)
        packets = self._container.demux(stream) if packets is None else packets
        if floor is None or expected is None:
            for frame in self._decoded(stream, packets, matcher):
                yield from matcher.push(frame)
            yield from matcher.end()
            return
        key = next(packets, None)  # the seek's keyframe (see _seek_packets; the file's first packet without)
        low = key.pts if key is not None and key.pts is not None else expected[0]
        before = {p for p in expected if low <= p < floor}  # frames to come out before frame ``start``
        known, last = set(expected), None
        packets = itertools.chain([key] if key is not None else [], packets)
        for frame in self._decoded(stream, packets, matcher):
            pts = frame.pts
            if pts is None or pts not in known or (last is not None and pts < last):
                raise SeekError(f"{self.path}: after a seek the decoder gave a frame with pts {pts}, which "
                                f"no packet has or which follows a later one; decode sequentially")
            last = pts
            if pts < floor:
                before.discard(pts)
                continue
            if before:
                raise SeekError(f"{self.path}: after a seek {len(before)} frame(s) before frame {start} did "
                                f"not come out of the decoder in order; decode sequentially")
            out = matcher.push(frame)
            if matcher.in_order:
                raise SeekError(f"{self.path}: after a seek the frames' pts turned out not to be display "
                                f"times; decode sequentially")
            yield from out
        yield from matcher.end()

    def _decoded(self, stream: av.video.stream.VideoStream, packets: Iterator[av.Packet],
                 matcher: FrameMatcher) -> Iterator[av.VideoFrame]:
        """Every frame out of the decoder, in its output order; a demux or decode error becomes the reason
        the matcher gives lost frames, and decoding goes on with the next packet."""
        while True:
            try:
                packet = next(packets, None)
            except av.FFmpegError as exc:  # the demuxer gave up: the rest of the file is lost
                matcher.error(short_reason(exc))
                packet = None
            try:
                frames = stream.decode(packet)
            except av.FFmpegError as exc:
                matcher.error(short_reason(exc))
                if packet is None:
                    break
                continue
            for frame in frames:
                self.frames_decoded += 1
                if frame.is_corrupt:
                    self._flagged.add(frame.pts)
                yield frame
            if packet is None:
                break

    def seek(self, index: int) -> None:
        """Position the reader so that the next ``read`` returns frame ``index`` (0 <= index <= frames; of
        the span, with one: see :meth:`_seek_abs`)."""
        if not 0 <= index <= self.info.frames:
            raise ValueError(f"frame index {index} is outside 0..{self.info.frames}")
        self._positioned = True
        self._seek_abs(index + self._first)
        if index == 0 and self._first:
            self._seeked = False  # the span's first frame: a lost one takes the next good one, as at a start

    def _seek_abs(self, index: int) -> None:
        """Position the reader so that the next ``read`` returns frame ``index`` of the whole video.

        Videos: seek the container to the last keyframe whose pts <= frame ``index``'s pts (the first
        packet demuxed after the seek must be such a keyframe, else earlier keyframes are tried, else the
        file is decoded from its start), decode forward and drop frames with lower pts; frames out of an
        open GOP's leading pictures (pts below the keyframe's) are dropped the same way. Output, pts and
        colour conversion are the sequential ones. Image folders: index into the image list.
        Raises :class:`SeekError` when :func:`.seek.seek_problem` finds exactness cannot be guaranteed.
        """
        if self._src.is_image_folder:
            self._index = index
            return
        if self._frames is None:
            raise ValueError("reader is closed")
        if index == self._index:
            return
        idx = self.stream_index()
        problem = seek_problem(idx, self._src, self.on_corrupt, self.deinterlace, self.field_match)
        if problem is not None:
            raise SeekError(f"{self.path}: cannot seek exactly ({problem}); decode sequentially")
        self._good = None
        self._index = index
        self._seeked = index > 0
        self.timestamps.restart(idx.pts[index - 1] if index > 0 else None, index)
        if index == idx.frames:
            self._frames = iter(())
            return
        stream = main_video(self._container)  # type: ignore[union-attr]
        if index == 0:
            self._restart()
            self._frames = self._source(main_video(self._container))  # type: ignore[union-attr]
            return
        packets = self._seek_packets(stream, idx, index)
        if packets is None:  # no usable seek point: decode from the start, dropping frames before index
            self._restart()
            stream = main_video(self._container)  # type: ignore[union-attr]
        self._frames = self._source(stream, packets, start=index)

    def _restart(self) -> None:
        """Reopen the file: the decoder starts afresh at its beginning."""
        assert self._container is not None
        self._container.close()
        self._container = open_input(self.path)
        main_video(self._container).thread_type = "AUTO"

    def _seek_packets(self, stream: av.video.stream.VideoStream, idx: StreamIndex,
                      index: int) -> Iterator[av.Packet] | None:
        """Packets from a keyframe at or before frame ``index`` in presentation order, or None."""
        assert self._container is not None
        target = idx.pts[index]
        key_pts = {idx.pts[k] for k in idx.keyframes}
        pos = idx.keyframe_at_or_before(index)
        tried: set[int] = set()
        for p in range(pos, max(-1, pos - 3), -1) if pos is not None else ():
            kp, kd = idx.pts[idx.keyframes[p]], idx.key_dts[p]
            for offset in (kp, kd):
                if offset is None or offset in tried:
                    continue
                tried.add(offset)
                try:
                    self._container.seek(offset, backward=True, stream=stream)
                    packets = self._container.demux(stream)
                    for packet in packets:
                        if packet.size and packet.is_keyframe:
                            break
                    else:
                        continue
                except av.FFmpegError:
                    continue
                if packet.pts is not None and packet.pts <= target and packet.pts in key_pts:
                    return itertools.chain([packet], packets)
        return None

    def _next_frame(self) -> av.VideoFrame | Lost | None:
        assert self._frames is not None
        try:
            return next(self._frames, None)
        except av.FFmpegError as exc:
            raise MediaError(f"{self.path}: decoding failed after frame {self._index} "
                             f"({short_reason(exc)})") from None

    def read(self, n: int) -> tuple[np.ndarray, list[int]]:
        """Up to ``n`` next frames and their pts (of the span, with one)."""
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        if not self._positioned:
            self._to_span_start()
        n = min(n, self._stop - self._index)
        if n < 1:
            info = self.info
            return np.empty((0, info.height, info.width, 3), self.dtype), []
        frames, pts = self._read(n)
        if self._shift:
            pts = [p - self._shift if p is not None else None for p in pts]
        return frames, pts

    def _read(self, n: int) -> tuple[np.ndarray, list[int]]:
        """Up to ``n`` next frames of the whole video and their pts."""
        info = self.info
        if info.is_image_folder:
            paths = self._images[self._index : self._index + n]
            pts = list(range(self._index, self._index + len(paths)))
            self._index += len(paths)
            if not paths:
                return np.empty((0, info.height, info.width, 3), self.dtype), []
            return crop_frames(read_images(paths, self.deep, self.source_size), self.region), pts
        if self._frames is None:
            raise ValueError("reader is closed")
        out: np.ndarray | None = None
        pts_out: list[int | None] = []
        while len(pts_out) < n:
            frame = self._next_frame()
            if frame is None:
                break
            if isinstance(frame, Lost):
                pts = self.timestamps.fix(frame.pts, count=False)
                self._lost_frame(frame, pts)
                rgb = self._stand_in()
            else:
                rgb = self._rgb(frame)
                concealed = frame.pts in self._flagged
                pts = self.timestamps.fix(frame.pts if frame.pts is not None else frame.dts)
                if concealed:
                    self._flagged.discard(frame.pts)
                if concealed and self._index >= self._first:
                    time_s = float(pts * info.time_base) if info.time_base else None
                    self.concealed.append(CorruptFrame(self._index, pts, time_s, CONCEALED))
                self._good = rgb
            kept = self._decimation(frame, int(pts)) if self._decimator is not None else int(pts)
            if out is None:
                out = np.empty((n, *rgb.shape), self.dtype)
            if rgb.dtype != self.dtype:
                raise MediaError(f"{self.path}: frame {self._index} has {8 * rgb.itemsize}-bit samples where "
                                 f"the video's first had {8 * self.dtype.itemsize} (pixel format changes "
                                 "mid-stream)")
            out[len(pts_out)] = rgb
            pts_out.append(None if isinstance(frame, Lost) and self.on_corrupt == "skip" else kept)
            self._index += 1
        if out is None:
            return np.empty((0, info.height, info.width, 3), self.dtype), []
        frames = out if len(pts_out) == n else np.ascontiguousarray(out[: len(pts_out)])
        return frames, pts_out  # type: ignore[return-value]

    def _decimation(self, frame: av.VideoFrame | Lost, pts: int) -> int | None:
        """With ``decimate``: None for its cycle's repeat (numbered in ``decimated``), else its new pts."""
        assert self._decimator is not None
        if self._decimator.dropped(frame):
            if self._index >= self._first:
                self.decimated.append(self._index)
            return None
        return self._decimator.retime(pts) if self._index >= self._first else pts

    def _rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """A decoded frame as RGB at the video's size, cropped to ``region``."""
        if (frame.width, frame.height) != self.source_size:
            frame = self._scaled(frame)
        return crop_frames(frame_to_rgb(frame, self.info.colorspace, self.info.color_range, self.deep),
                           self.region)

    def _scaled(self, frame: av.VideoFrame) -> av.VideoFrame:
        """A frame of another size than the video's (a camera reconfigured mid-recording) scaled to it,
        bicubic, as FFmpeg's tools do; a warning at the first of each reader. Before, such a frame failed
        the job ("resolution changes mid-stream"), or, at the start of a chunk, went through at its own
        size into a segment the join then refused."""
        width, height = self.source_size
        self.resized += 1
        if self.resized == 1:
            log.warning("%s: frame %d is %dx%d, the video's size is %dx%d: such frames are scaled to it",
                        self.path, self._index, frame.width, frame.height, width, height)
        return frame.reformat(width=width, height=height, interpolation="BICUBIC")

    def _stand_in(self) -> np.ndarray:
        """The frame shown in place of a lost one: the last good frame, else the next good one."""
        if self._good is None:
            if self._seeked:
                raise SeekError(f"{self.path}: frame {self._index} is lost right after a seek and its "
                                f"stand-in comes from before it; decode sequentially")
            assert self._frames is not None
            ahead: list[av.VideoFrame | Lost] = []
            while True:
                nxt = self._next_frame()
                if nxt is None:
                    raise MediaError(f"{self.path}: no frame of the video can be decoded")
                ahead.append(nxt)
                if not isinstance(nxt, Lost):
                    break
            self._good = self._rgb(nxt)
            self._frames = itertools.chain(ahead, self._frames)
        return self._good

    def _lost_frame(self, lost: Lost, pts: int) -> None:
        """Record a lost frame whose stand-in gets ``pts`` (or raise with ``fail``); none before a span."""
        if self._index < self._first:
            return
        time_s = float(pts * self.info.time_base) if self.info.time_base else None
        if self.on_corrupt == "fail":
            where = f" at {time_s:.3f} s" if time_s is not None else ""
            raise MediaError(f"{self.path}: frame {self._index}{where} cannot be decoded ({lost.reason}); "
                             f"--on-corrupt repeat or skip carries on")
        self.corrupt.append(CorruptFrame(self._index, pts, time_s, lost.reason))

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        """Frames one by one as ((H, W, 3) array, pts)."""
        while True:
            frames, pts = self.read(1)
            if not pts:
                return
            yield frames[0], pts[0]

    def close(self) -> None:
        """Release the decoder and the file."""
        self._frames = None
        if self._container is not None:
            self._container.close()
            self._container = None

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
