"""``VideoWriter``: encode RGB frames as 4:2:0, 4:2:2 or 4:4:4 YUV of 8 to 16 bits with their pts, copy
audio/subtitles, appear atomically."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from .atomic import AtomicOutput
from .colour import rgb_to_frame
from .container_codecs import container_holds
from .encoder_options import (
    REALTIME_ENCODERS,
    codec_option_problem,
    encoder_options,
    merge_options,
    ordinary_scheduling,
    parse_codec_option,
)
from .encoder_reason import encoder_reason
from .errors import MediaError, short_reason
from .frame_rate import codec_frame_rate, codec_time_base, frame_period, listed_rates, shared_period_problem
from .hdr_metadata import encoder_params
from .images import check_frames
from .live_copy import LiveCopier, PacketTap
from .pixel_format import (
    BIT_DEPTHS,
    CHROMAS,
    FIXED_MATRIX,
    format_problem,
    output_bits,
    output_pix_fmt,
)
from .probe import ColourTags, VideoInfo
from .stream_copy import StreamCopier

log = logging.getLogger(__name__)

#: frame widths refused for libx265: through PyAV 18.1's FFmpeg it corrupts its heap and aborts the process
#: ("corrupted size vs. prev_size") at every width from 33 to 48 px, whatever the height; every other width
#: of a sweep (18-220 px, heights 16-90, odd widths in yuv444p) wrote
X265_ABORTS = range(33, 49)


def partial_path(path: Path) -> Path:
    """Temporary sibling ``.NAME.partial.EXT`` (same folder, same extension, so the same muxer)."""
    return path.with_name(f".{path.stem}.partial{path.suffix}")


#: ISO-BMFF containers: their edit list (where the first frame starts) is in the movie timescale
ISO_BMFF = frozenset({".mp4", ".mov", ".m4v"})


def exact_timing_options(path: str | os.PathLike[str], time_base: Fraction) -> dict[str, str]:
    """Muxer options that keep every pts exact: MP4/MOV store a file's start offset in the movie timescale
    (1/1000 s by default), so a file starting at 8192/15360 s read back at 8187/15360; the stream's own
    timescale makes it exact (a chunk's segment starts mid-video)."""
    if Path(path).suffix.lower() in ISO_BMFF and Fraction(time_base).denominator <= 2**31 - 1:
        return {"movie_timescale": str(Fraction(time_base).denominator)}
    return {}


@dataclass(frozen=True)
class EncodeSettings:
    """How HR frames are encoded, passed whole from the CLI or API to every stage that encodes (the segment
    encoder, the live-stream writer, ``vsr bench``'s loops). ``crf``/``preset``/``tune`` go to x264/x265 (crf
    also to libvpx and SVT-AV1, and a fixed quantiser to MPEG-1/2/4: ``encoder_options.rate_control``). These
    defaults are the CLI's and the API's; a new encoder option is a field
    here plus its use in :meth:`open_writer` (and a flag in ``vsr_pipeline.cli``)."""

    codec: str = "libx264"
    crf: int = 18
    preset: str = "medium"
    #: x264/x265 ``--tune`` (``encoder_options.TUNES``): e.g. ``grain`` for film grain, ``animation``,
    #: ``zerolatency`` (no B-frames or lookahead); None: the encoder's default
    tune: str | None = None
    #: bits per sample of the output, 8, 10, 12 or 16 (:data:`BIT_DEPTHS`); None: the input's as far as the
    #: codec goes, see :meth:`bits_for`
    bit_depth: int | None = None
    #: chroma layout of the output, "420", "422" or "444" (:data:`CHROMAS`); None: the first of these the
    #: codec takes at the frame size (``pixel_format.output_chroma``: 4:2:2 for ProRes and DNxHR)
    chroma: str | None = None
    #: further encoder options, each ``"KEY=VALUE"`` as FFmpeg's ``-KEY:v VALUE`` (``profile=4444xq``,
    #: ``b=8M``, ``g=1``); they override the settings above (``media.encoder_options``)
    codec_options: tuple[str, ...] = ()
    #: the rate of an encoder that takes only listed ones (MPEG-1/2), chosen by the job from the source's
    #: pts (``frame_rate.output_frame_rate``); None: the input's
    frame_rate: Fraction | None = None

    def codec_option_dict(self) -> dict[str, str]:
        """:attr:`codec_options` as a dict (ValueError for one that is not KEY=VALUE)."""
        return dict(parse_codec_option(o) for o in self.codec_options)

    def bits_for(self, info: VideoInfo, width: int | None = None, height: int | None = None) -> int:
        """The output's bits per sample for input ``info`` (output size ``width`` x ``height``, default the
        input's): ``bit_depth``, or for None the input's as far as the codec goes at that size (x264 10, x265
        12, FFV1 16; 10 for ProRes, which has no 8-bit format), see ``pixel_format.output_bits``."""
        if self.bit_depth is not None:
            return self.bit_depth
        w, h = width or info.width, height or info.height
        return output_bits(self.codec, w, h, info.bit_depth, self.chroma)

    def pix_fmt_for(self, info: VideoInfo, width: int | None = None, height: int | None = None) -> str:
        """The output's pixel format for input ``info`` (output size ``width`` x ``height``)."""
        w, h = width or info.width, height or info.height
        return output_pix_fmt(w, h, self.bits_for(info, w, h), self.codec, self.chroma)

    def open_writer(self, path: str | os.PathLike[str], width: int, height: int, info: VideoInfo,
                    **kwargs: Any) -> VideoWriter:
        """A :class:`VideoWriter` for ``width`` x ``height`` frames with ``info``'s timing and colour tags;
        ``kwargs`` are further VideoWriter options (``overwrite``, ``options``, ``atomic``, ...)."""
        options = {**({"tune": self.tune} if self.tune else {}), **kwargs.pop("options", {}),
                   **self.codec_option_dict()}
        return VideoWriter(path, width, height, info.time_base, self.frame_rate or info.fps, codec=self.codec,
                           crf=self.crf, preset=self.preset, source=info, options=options,
                           bit_depth=self.bits_for(info, width, height), chroma=self.chroma, **kwargs)


class VideoWriter(AtomicOutput):
    """Encode frames to ``path``; the file appears under its name only when :meth:`close` succeeds.

    - Timing: the stream time base is ``time_base`` and every frame keeps the pts it is given (variable
      frame rate survives); ``fps`` is only a rate-control hint. Pts must increase strictly.
    - Colour: RGB -> YUV with the matrix/range of ``colour`` (the source's tags, kept on the output);
      untagged -> BT.601 limited, the same convention :class:`FrameReader` decodes with.
    - Pixel format: ``chroma`` ("420", "422", "444"), or for None the first of those the codec takes whose
      subsampling the size holds (``yuv420p``; ``yuv422p`` for ProRes/DNxHR; odd sizes ``yuv444p``: 4:4:4
      keeps every pixel without padding or cropping); MediaError if the codec cannot take it.
      ``bit_depth`` 10, 12, 16: ``yuv420p10le``, ... from uint16 frames (0-65535); 8: uint8 frames.
    - ``copy_streams_from``: its audio and subtitle streams are copied packet for packet (no re-encoding,
      same pts) when the container accepts the codec, else skipped with a warning. They are read
      progressively, up to the time of the video written so far, and the rest is flushed at close
      (only up to the end of the video when ``trim_copied_streams``). Copied pts share the source
      timeline with the video pts, so offsets are kept as long as the video pts are the source's.
    - Atomic: writes ``.NAME.partial.EXT`` beside the output and renames it on close; :meth:`abort` (and
      an exception in ``with``) deletes it. An existing output is refused unless ``overwrite``.
      ``atomic=False`` (progressive output, e.g. a live stream) writes under the output's own name, so the
      file can be read while it grows; ``container_options`` go to the muxer (e.g. MP4 ``movflags``).
      ``packets_written`` counts the video packets muxed so far.
    - ``crf``/``preset`` go to x264/x265 (crf also to libvpx, SVT-AV1); ``options`` are extra codec options
      (AVOption names the encoder has, else MediaError).
      The extension picks the container (.mp4, .mkv, .mov, .webm).
    - ``sample_aspect_ratio``: non-square pixels (DV, DVD, anamorphic), written to the codec headers and
      the container, so players show the picture at its display aspect; None: square.
    - ``source``: a probed input whose colour tags, rotation and sample aspect ratio are used where
      ``colour``/``rotation``/``sample_aspect_ratio`` are not given (time base and rate are always
      explicit); see also :meth:`like`.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        width: int,
        height: int,
        time_base: Fraction,
        fps: Fraction,
        codec: str = "libx264",
        crf: int = 18,
        preset: str = "medium",
        colour: ColourTags | None = None,
        rotation: int | None = None,
        sample_aspect_ratio: Fraction | None = None,
        source: VideoInfo | None = None,
        copy_streams_from: str | os.PathLike[str] | None = None,
        trim_copied_streams: bool = False,
        overwrite: bool = False,
        options: dict[str, str] | None = None,
        atomic: bool = True,
        container_options: dict[str, str] | None = None,
        bit_depth: int = 8,
        chroma: str | None = None,
    ):
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.time_base = Fraction(time_base)
        self.source_fps = Fraction(fps)
        self.fps = codec_frame_rate(codec, self.source_fps)  # MPEG-1/2: a rate they take
        if colour is None:
            colour = source.colour if source is not None else ColourTags()
        if rotation is None:
            rotation = source.rotation if source is not None else 0
        if codec in FIXED_MATRIX:  # the matrix its decoder will use, whatever the source's was
            colour = replace(colour, colorspace=FIXED_MATRIX[codec])
        if sample_aspect_ratio is None and source is not None:
            sample_aspect_ratio = source.sample_aspect_ratio
        self.sample_aspect_ratio = sample_aspect_ratio
        self.colour = colour
        self.overwrite = overwrite
        self.trim_copied_streams = trim_copied_streams
        if self.width < 1 or self.height < 1:
            raise ValueError(f"bad size {width}x{height}")
        if self.path.exists() and not overwrite:
            raise MediaError(f"{self.path}: output exists (pass overwrite to replace it)")
        if not self.path.parent.is_dir():
            raise MediaError(f"{self.path.parent}: output folder does not exist")
        self.atomic = atomic
        self.tmp_path = partial_path(self.path) if atomic else self.path
        self.packets_written = 0
        if bit_depth not in BIT_DEPTHS or chroma not in (None, *CHROMAS):
            raise ValueError(f"bit depth must be one of {BIT_DEPTHS} and chroma one of {CHROMAS}, got "
                             f"{bit_depth} and {chroma}")
        self.bit_depth = bit_depth
        self.pix_fmt = output_pix_fmt(self.width, self.height, bit_depth, codec, chroma)
        self.frames_written = 0
        self._last_pts: int | None = None
        self._last_period: int | None = None
        self._last_dts: int | None = None
        self._copier: StreamCopier | LiveCopier | None = None
        #: a live stream's audio, once closed: ``LiveCopier.summary`` (stream, codec, written_as, packets)
        self.audio: list[dict[str, object]] = []
        self._open = True
        try:
            codec_obj = av.Codec(codec, "w")
        except (av.FFmpegError, ValueError) as exc:
            raise MediaError(f"{self.path}: unknown encoder {codec!r} ({short_reason(exc)})") from None
        if codec_obj.type != "video":
            raise MediaError(f"{self.path}: {codec!r} is not a video encoder")
        if codec == "libx265" and self.width in X265_ABORTS:
            raise MediaError(f"{self.path}: libx265 aborts the process on frames {X265_ABORTS.start} to "
                             f"{X265_ABORTS.stop - 1} px wide ({self.width} px here); use libx264 or another "
                             "scale")
        problem = (format_problem(codec, self.width, self.height, bit_depth, chroma)
                   or codec_option_problem(codec, options or {}))
        if problem:
            raise MediaError(f"{self.path}: {problem}")
        try:
            self._container = av.open(str(self.tmp_path), mode="w",
                                      container_options=exact_timing_options(self.path, self.time_base)
                                      | (container_options or {}))
        except (av.FFmpegError, ValueError, OSError) as exc:
            raise MediaError(f"{self.path}: cannot create output ({short_reason(exc)})") from None
        try:
            self._setup_video(codec, crf, preset, rotation, options or {})
            if copy_streams_from is not None:
                self._setup_copies(Path(copy_streams_from))
        except BaseException:
            self.abort()
            raise

    def _setup_video(self, codec: str, crf: int, preset: str, rotation: int, extra: dict[str, str]) -> None:
        if not container_holds(self._container, codec):
            raise MediaError(f"{self.path}: the {self.path.suffix or '?'} container cannot hold {codec}")
        hdr = encoder_params(codec, self.colour.hdr)  # HDR10 metadata, under the user's own params
        opts = self._options = encoder_options(codec, self.pix_fmt, crf, preset, merge_options(hdr, extra))
        stream = self._container.add_stream(codec, rate=self.fps, options=opts)
        stream.width, stream.height = self.width, self.height
        stream.pix_fmt = self.pix_fmt
        stream.time_base = self.time_base
        cc = stream.codec_context
        cc.time_base = codec_time_base(codec, self.time_base, self.fps)
        cc.framerate = self.fps
        c = self.colour
        cc.color_range = c.color_range
        cc.color_primaries = c.color_primaries
        cc.color_trc = c.color_trc
        cc.colorspace = c.colorspace
        if self.sample_aspect_ratio:
            cc.sample_aspect_ratio = self.sample_aspect_ratio
        if rotation:
            stream.set_display_rotation(rotation)
        self._video = stream

    def copy_live(self, tap: PacketTap) -> None:
        """Copy a live stream's audio from ``tap`` alongside the video (before the first frame is written):
        its packets are muxed as the video reaches their time (``media.live_copy``)."""
        if self.packets_written or self._copier is not None:
            raise ValueError("copy_live: before the first frame, once")
        copier = LiveCopier(self._container, tap, self.path)
        self._copier = copier if copier.active else None
        if self._copier is None:
            self.audio = copier.summary()

    def _setup_copies(self, src_path: Path) -> None:
        copier = StreamCopier(self._container, src_path, self.path)
        self._copier = copier if copier.active else None

    def _pump(self, until: Fraction | None) -> None:
        """Mux copied packets whose time is <= ``until`` seconds (all when None)."""
        if self._copier is not None:
            self._copier.pump(until)

    def _mux_video(self, frame: av.VideoFrame | None) -> None:
        # libx265 (PyAV 18's FFmpeg) gives the packets of a 1- or 2-frame encode a dts of uninitialised
        # memory (pts +- ~4e18): the muxer refused it and a job failed on a short last chunk. Such an encode
        # has no B-frame, so the dts is the pts (or just after the last dts); any dts after its pts likewise.
        codec = self._video.codec_context.name
        short_x265 = frame is None and self.frames_written <= 2 and codec == "libx265"
        for packet in self._video.encode(frame):
            if packet.dts is not None and packet.pts is not None and (packet.dts > packet.pts or short_x265):
                last = self._last_dts
                packet.dts = packet.pts if last is None or packet.pts > last else last + 1
            self._last_dts = packet.dts
            self._container.mux(packet)
            self.packets_written += 1
        if self.frames_written == 0 and codec in REALTIME_ENCODERS:
            ordinary_scheduling()  # the encoder opened at its first frame and made its threads realtime

    def write(self, frames: np.ndarray, pts: Sequence[int]) -> None:
        """Encode frames (T, H, W, 3) RGB with their pts (ints in ``time_base``, increasing): uint8, or
        uint16 (0-65535) for a ``bit_depth`` above 8."""
        if not self._open:
            raise ValueError("writer is closed")
        check_frames(frames, pts, np.uint16 if self.bit_depth > 8 else np.uint8)
        if frames.shape[1:3] != (self.height, self.width):
            raise ValueError(f"frames are {frames.shape[2]}x{frames.shape[1]}, "
                             f"writer is {self.width}x{self.height}")
        c = self.colour
        try:
            for rgb, p in zip(frames, pts, strict=True):
                p = int(p)
                if self._last_pts is not None and p <= self._last_pts:
                    raise ValueError(f"pts must increase: {p} after {self._last_pts}")
                self._check_period(p)
                vf = rgb_to_frame(rgb, self.pix_fmt, c.colorspace, c.color_range)
                vf.color_primaries = c.color_primaries
                vf.color_trc = c.color_trc
                vf.pts = p
                vf.time_base = self.time_base
                self._mux_video(vf)
                self._last_pts = p
                self.frames_written += 1
            if self._last_pts is not None:
                self._pump(self._last_pts * self.time_base)
        except av.FFmpegError as exc:  # the encoder would not open: FFmpeg's reason, asked of a child
            said = None if self.frames_written else encoder_reason(self._video.codec_context, self._options)
            raise MediaError(f"{self.path}: encoding failed ({short_reason(exc)})"
                             + (f": {said}" if said else "")) from None

    def _check_period(self, pts: int) -> None:
        """MediaError where an encoder of listed rates would number this frame and the last one alike."""
        codec, last = self._video.codec_context.name, self._last_pts
        if not listed_rates(codec):
            return
        period = frame_period(pts, self.time_base, self.fps)
        if self._last_period is not None and last is not None and period <= self._last_period:
            raise MediaError(f"{self.path}: " + shared_period_problem(codec, self.source_fps, self.fps,
                                                                      (last, pts), self.time_base))
        self._last_period = period

    def close(self) -> None:
        """Flush, finish the file and move it into place (MediaError if no frame was written)."""
        if not self._open:
            return
        if self.frames_written == 0:
            self.abort()
            raise MediaError(f"{self.path}: no frames written; output not created")
        try:
            self._mux_video(None)
            if self.trim_copied_streams:
                assert self._last_pts is not None
                end = (self._last_pts + 1 / (self.fps * self.time_base)) * self.time_base
                self._pump(Fraction(end) - Fraction(1, 10**9))
            else:
                self._pump(None)
            if self._copier is not None:
                self._copier.finish()
            self._container.close()
        except av.FFmpegError as exc:
            self.abort()
            raise MediaError(f"{self.path}: finishing the file failed ({short_reason(exc)})") from None
        except BaseException:
            self.abort()
            raise
        self._open = False
        self._close_src()
        if not self.atomic:
            return
        if self.path.exists() and not self.overwrite:
            self.tmp_path.unlink(missing_ok=True)
            raise MediaError(f"{self.path}: output appeared while writing; not replaced")
        os.replace(self.tmp_path, self.path)

    def _close_src(self) -> None:
        if self._copier is not None:
            if isinstance(self._copier, LiveCopier):
                self.audio = self._copier.summary()
            self._copier.close()
            self._copier = None

    def abort(self) -> None:
        """Stop and delete the partial file; the output name is left as it was."""
        was_open, self._open = self._open, False
        with contextlib.suppress(Exception):  # best effort; the file is deleted anyway
            if was_open and self.frames_written:  # drained: SVT-AV1 logs an error when it is not
                self._video.encode(None)
            self._container.close()
        self._close_src()
        self.tmp_path.unlink(missing_ok=True)

    @classmethod
    def like(cls, path: str | os.PathLike[str], info: VideoInfo, width: int | None = None,
             height: int | None = None, copy_streams: bool = True, **kwargs: object) -> VideoWriter:
        """A writer with ``info``'s time base, rate, colour tags and rotation (and its audio/subtitles)."""
        kw: dict[str, object] = {
            "time_base": info.time_base, "fps": info.fps, "source": info,
            "copy_streams_from": info.path if copy_streams and not info.is_image_folder else None,
        }
        kw.update(kwargs)
        return cls(path, width or info.width, height or info.height, **kw)  # type: ignore[arg-type]
