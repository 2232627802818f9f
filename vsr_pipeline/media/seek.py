"""Demux-only index of a video stream, and whether decoding from a seek point can be exact.

A :class:`StreamIndex` lists the video packets' pts in presentation order (frame ``i`` of the sequential
decode has pts ``pts[i]``) and which frames are keyframes. :meth:`FrameReader.seek` uses it to start
decoding at the last keyframe at or before a frame and to drop the frames before it by pts.
:func:`seek_problem` says when that cannot be guaranteed to give exactly what sequential decoding gives;
callers then decode the input with one sequential reader.
"""

from __future__ import annotations

import bisect
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

import av

from .errors import MediaError, short_reason
from .frame_order import REORDER_WINDOW, decode_order_pts
from .images import list_images
from .probe import VideoInfo, main_video, open_input, probe

#: Values of ``on_corrupt`` (see :data:`vsr_pipeline.media.reader.ON_CORRUPT`) seeking accepts.
SEEK_ON_CORRUPT = ("fail", "repeat", "skip")


class SeekError(MediaError):
    """A seeking reader cannot give what the sequential decode gives; decode the input sequentially."""


@dataclass(frozen=True)
class StreamIndex:
    """Video packets of one input, from demuxing only (no decoding).

    ``pts``: every video packet's pts in presentation order (frame i of a clean decode has ``pts[i]``);
    ``keyframes``: indices into ``pts`` of keyframe packets, ascending; ``key_dts``: their dts (or None);
    ``problem``: why seeking cannot be exact (None when it can, as far as demuxing can tell).
    ``pts`` keeps duplicates; after a demux error it holds the packets read before it.
    ``repair``: why the decoded frames' pts will need repairing (:class:`.ingest.TimestampRepair`): a packet
    without pts, pts shared or going backwards; None when they are valid. Such a stream is decoded
    sequentially and its lost frames are found by count, not by pts.
    ``in_order``: why the frames' pts cannot be display times (:func:`.frame_order.decode_order_pts`), or
    None; such a stream is decoded sequentially and its frames numbered in the decoder's output order.
    Image folders: ``pts = 0..n-1``, every frame a keyframe.
    """

    pts: tuple[int, ...]
    keyframes: tuple[int, ...]
    key_dts: tuple[int | None, ...]
    problem: str | None = None
    is_image_folder: bool = False
    missing_pts: bool = False  # some packet had no pts (``pts`` then lists only those that had one)
    repair: str | None = None
    in_order: str | None = None

    @property
    def frames(self) -> int:
        return len(self.pts)

    def keyframe_at_or_before(self, index: int) -> int | None:
        """Position in ``keyframes`` of the last keyframe whose pts <= frame ``index``'s pts (None: none, or
        frame ``index`` has no pts: a raw H.264 export stores none)."""
        if not 0 <= index < len(self.pts):
            return None
        target = self.pts[index]
        key_pts = [self.pts[k] for k in self.keyframes]
        pos = bisect.bisect_right(key_pts, target) - 1
        return pos if pos >= 0 else None

    def gop(self) -> int:
        """Median keyframe interval in frames (the whole stream when it has one keyframe)."""
        if self.is_image_folder:
            return 1
        ks = [*self.keyframes, len(self.pts)]
        gaps = sorted(b - a for a, b in itertools.pairwise(ks) if b > a)
        return gaps[len(gaps) // 2] if gaps else max(1, len(self.pts))


def scan(path: str | os.PathLike[str]) -> StreamIndex:
    """Demux the first video stream of ``path`` (no decoding) into a :class:`StreamIndex`.

    Packets without data are ignored (as :class:`FrameReader` does). ``problem`` is set when a packet has
    no pts, two packets share a pts, pts go backwards (see :func:`backwards_at`), or the demuxer fails
    before the end; ``repair`` for the first three.
    """
    p = Path(path)
    if p.is_dir():
        n = len(list_images(p))
        return StreamIndex(tuple(range(n)), tuple(range(n)), (None,) * n, None, is_image_folder=True)
    pts: list[int] = []
    dts: list[int | None] = []
    keys: list[tuple[int, int | None]] = []  # (pts, dts) of keyframe packets
    problem = repair = None
    missing = False
    with open_input(p) as c:
        if not c.streams.video:
            raise MediaError(f"{p}: no video stream")
        video = main_video(c)
        in_order = decode_order_pts(c, video)
        try:
            for packet in c.demux(video):
                if not packet.size:
                    continue
                if packet.pts is None:
                    repair = repair or f"video packet {len(pts)} has no pts"
                    missing = True
                    continue
                pts.append(int(packet.pts))
                dts.append(None if packet.dts is None else int(packet.dts))
                if packet.is_keyframe:
                    keys.append((int(packet.pts), dts[-1]))
        except av.FFmpegError as exc:
            problem = f"demuxing stops after packet {len(pts)} ({short_reason(exc)})"
    order = sorted(pts)
    if repair is None and len(set(order)) != len(order):
        repair = f"{len(order) - len(set(order))} video packets share a pts with another"
    back = backwards_at(pts, dts) if repair is None else None
    if back is not None:
        repair = f"pts go backwards at video packet {back}"
    problem = repair or in_order or problem
    if problem is None and not keys:
        problem = "no keyframe packets"
    first = {}
    for i, v in enumerate(order):
        first.setdefault(v, i)
    keys.sort()
    return StreamIndex(tuple(order), tuple(first[k] for k, _ in keys), tuple(d for _, d in keys), problem,
                       missing_pts=missing, repair=repair, in_order=in_order)


def backwards_at(pts: list[int], dts: list[int | None]) -> int | None:
    """The first packet (demux order) whose timestamps go backwards, or None: its dts is not above the
    previous packet's, its pts is below its dts, or its pts is below a pts more than
    :data:`REORDER_WINDOW` packets earlier (reordering reaches no further, so the decoder would put out
    a frame with an earlier pts after a later one)."""
    last_dts: int | None = None
    best = None  # the highest pts among packets more than REORDER_WINDOW before this one
    for i, (p, d) in enumerate(zip(pts, dts, strict=True)):
        if d is not None:
            if (last_dts is not None and d <= last_dts) or p < d:
                return i
            last_dts = d
        if i > REORDER_WINDOW:
            old = pts[i - REORDER_WINDOW - 1]
            best = old if best is None else max(best, old)
            if p < best:
                return i
    return None


def seek_problem(index: StreamIndex, info: VideoInfo | None = None, on_corrupt: str = "fail",
                 deinterlace: bool = False, field_match: bool = False) -> str | None:
    """Why a reader positioned by seeking might not give exactly the sequential frames, or None.

    Static reasons, decided before decoding: packets without pts or with pts that repeat or go backwards
    (their repair counts from the first frame), a demux error, no keyframe, a packet count that differs
    from probe's frame count, an unknown ``on_corrupt``, an interlaced input to be deinterlaced
    (``deinterlace``: the filter sees each frame's neighbours, so the first frame after a seek would
    differ), or any input with ``field_match`` (each frame rebuilt from its neighbours' fields).
    Image folders are always seekable. Two cases are only seen while decoding, and the seeking reader
    raises :class:`SeekError` there: a decoded frame whose pts is not a packet pts, and (``repeat``/``skip``)
    a lost frame whose stand-in would come from before the seek point. Corruption the decoder conceals
    (no frame lost) can make pixels differ; the sequential decode cannot see it either.
    """
    if on_corrupt not in SEEK_ON_CORRUPT:
        return f"on_corrupt {on_corrupt!r} is unknown"
    if index.is_image_folder:
        return None
    if index.problem is not None:
        return index.problem
    if info is not None and info.frames != index.frames:
        return f"probe counts {info.frames} frames but the stream has {index.frames} packets"
    if deinterlace and info is not None and info.interlaced:
        return "interlaced frames are deinterlaced with their neighbours"
    if deinterlace and field_match:
        return "frames are rebuilt from their neighbours' fields (--field-match)"
    return None


def seekable(path_or_info: str | os.PathLike[str] | VideoInfo, on_corrupt: str = "fail",
             deinterlace: bool = False) -> bool:
    """True when decoders seeking into this input give exactly the sequential decode (see seek_problem)."""
    info = path_or_info if isinstance(path_or_info, VideoInfo) else probe(path_or_info)
    return seek_problem(scan(info.path), info, on_corrupt, deinterlace) is None
