"""Settings of a job, typed, with defaults defined once (the CLI's flags take their defaults from here).

- :class:`ModelSettings`: what computes the HR frames (model, weights, scale, device, forward-pass precision,
  batch, tiles); handed whole to the inference engine (``vsr_pipeline.engine.Engine.from_settings``).
- :class:`~vsr_pipeline.media.EncodeSettings`: how they are encoded (codec, crf, preset, tune); handed whole
  to every encoder.
- :class:`UpscaleOptions`: one job: the two above as flat fields (so a Python caller writes
  ``UpscaleOptions(model="espcn", crf=0)``), plus chunking, decoding, resuming and retries;
  ``model_settings()`` and ``encode_settings()`` give the typed groups.

The ``check_*`` functions refuse values that cannot work with a one-line ``UsageError`` before anything
is read or started. No torch or Ray at import time.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, fields, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vsr_pipeline.errors import ResourceError, UsageError
from vsr_pipeline.media import EncodeSettings, VideoInfo
from vsr_pipeline.media.crop import check_crop, cropped_info, resolve_crop, stored_region, with_context
from vsr_pipeline.media.decimate import output_rate
from vsr_pipeline.media.encoder_options import codec_option_problem, tune_problem
from vsr_pipeline.media.frame_rate import codec_frame_rate, listed_rates, output_frame_rate
from vsr_pipeline.media.hdr_metadata import dropped_by
from vsr_pipeline.media.output_names import is_video_path, output_name_problem
from vsr_pipeline.media.pixel_format import BIT_DEPTHS, CHROMAS, output_chroma
from vsr_pipeline.media.reader import ON_CORRUPT, ReadSettings
from vsr_pipeline.media.trim import Span, check_times, resolve_span, span_info

if TYPE_CHECKING:
    from models.registry import ModelSpec

#: Flow estimators ``--align`` refuses: nothing trained exists for them alone (VESPCN's motion compensation
#: is learnt jointly with VESPCN), so their flow would be noise.
UNTRAINED_ESTIMATORS = frozenset({"vespcn"})
RESUME_MODES = ("auto", "require", "never")
#: what the footage went through before it reached us (``--source``)
SOURCES = ("clean", "compressed")


@dataclass(frozen=True)
class ModelSettings:
    """What computes the HR frames and how the forward pass runs."""

    model: str = "basicvsr"
    #: a registered weights name (``vsr models``) or a checkpoint path; None: the model's default
    weights: str | None = None
    scale: int = 4
    device: str = "auto"
    #: single-image model used as the body of a video model whose spec accepts_backbone
    backbone: str | None = None
    #: frames (single-image models) or windows (window models) per forward pass; None: "auto", chosen by a
    #: timed probe on this machine where it matters (``vsr_pipeline.autotune.choose_batch``), else
    #: ``DEFAULT_BATCH``
    batch: int | None = None
    #: auto|fp32|fp32-cl|bf16|fp16 (``vsr_pipeline.precision``)
    precision: str = "auto"
    #: LR tile size for frames that do not fit (None: whole frames; out-of-memory still backs off to tiles)
    tile: int | None = None
    #: LR pixels shared by neighbouring tiles, blended linearly
    overlap: int = 16
    #: torch.compile the model (fixed shapes)
    compile: bool = False
    #: recurrent models: chunks run as one batch of sequences per forward pass (a GPU's throughput); every
    #: forward pass holds exactly this many (a lone chunk is padded), so output does not depend on grouping
    sequences: int = 1
    #: bits per sample of the output: HR frames are uint8 for 8 (and None), uint16 above; a job sets the
    #: output's (``output_format``)
    bit_depth: int | None = None


_M, _E = ModelSettings, EncodeSettings

#: the batch of a forward pass that nothing chose (a recurrent model, which ignores it; a live stream; a
#: Ray cluster's nodes, which the driver cannot time)
DEFAULT_BATCH = 4


def chunks_per_pass(spec: ModelSpec, sequences: int) -> int:
    """``--sequences`` as it applies to ``spec``: a recurrent model's chunks per forward pass; 1 for the
    other kinds (their ``--batch`` fills a pass)."""
    return sequences if spec.temporal == "recurrent" else 1


def concrete_batch(batch: int | None) -> int:
    """``batch``, or ``DEFAULT_BATCH`` for "auto" where nothing probed it."""
    return DEFAULT_BATCH if batch is None else batch


@dataclass
class UpscaleOptions:
    """One upscale job. Model and encode fields default to :class:`ModelSettings` and
    :class:`~vsr_pipeline.media.EncodeSettings`."""

    model: str = _M.model
    weights: str | None = _M.weights
    scale: int = _M.scale
    device: str = _M.device
    backbone: str | None = _M.backbone
    batch: int | None = _M.batch
    precision: str = _M.precision
    tile: int | None = _M.tile
    overlap: int = _M.overlap
    compile: bool = _M.compile
    sequences: int = _M.sequences
    codec: str = _E.codec
    crf: int = _E.crf
    preset: str = _E.preset
    tune: str | None = _E.tune
    #: output bits per sample, 8, 10, 12 or 16; None: the input's as far as the codec goes (x264 10, x265 12,
    #: FFV1 16; a PNG folder gets 16-bit PNGs for any depth above 8)
    bit_depth: int | None = _E.bit_depth
    #: chroma layout of a video output, "420", "422" or "444"; None: 4:2:0, or what the codec takes (4:2:2
    #: for ProRes and DNxHR; 4:4:4 for odd sizes)
    chroma: str | None = _E.chroma
    #: further encoder options, "KEY=VALUE" as FFmpeg's ``-KEY:v VALUE`` (``--codec-option``)
    codec_options: tuple[str, ...] = _E.codec_options
    #: the output's frame rate where the encoder takes only listed ones (MPEG-1/2); set by the job from the
    #: source's pts (``output_format``), None otherwise (no flag)
    frame_rate: Fraction | None = _E.frame_rate
    #: torch threads of a CPU upscaler (0: chosen on this machine, ``autotune.choose_job_threads``)
    threads: int = 0
    #: core frames per chunk (None: ``vsr_pipeline.plan.default_chunk``)
    chunk: int | None = None
    #: context frames each side of a chunk (None: the model's ``ModelSpec.default_padding``)
    padding: int | None = None
    #: join a Ray cluster (``auto``, ``ray://host:10001``); None: Ray in-process
    address: str | None = None
    overwrite: bool = False
    #: frame rate of a folder-of-frames input (None: 25)
    fps: Fraction | None = None
    #: chunks in flight at once (backpressure: memory stays flat whatever the video's length)
    max_inflight: int = 2
    progress: bool = True
    #: flow estimator for the Motion + Aligner stages (window models); None: the model aligns itself
    align: str | None = None
    #: dtype of pre-aligned windows between the Aligner and the Upscaler: "uint8" or "float16"
    aligned_dtype: str = "uint8"
    #: a frame the decoder cannot produce: "repeat" the previous one (default), "skip" it, or "fail"
    on_corrupt: str = "repeat"
    #: "auto": reuse a matching ledger's finished chunks; "require": refuse to start over; "never"
    resume: str = "auto"
    #: further attempts for a chunk whose upscaling or encoding failed
    retries: int = 2
    #: decoders per input: > 1 seeks to keyframes and decodes in parallel where that is exact
    #: (``vsr_pipeline.media.seek``), else one sequential decoder
    decoders: int = 1
    #: deinterlace interlaced inputs (bwdif, one frame per frame; ``vsr_pipeline.media.ingest``)
    deinterlace: bool = True
    #: telecined film (3:2 pulldown): each frame rebuilt from its matching fields first (``fieldmatch``),
    #: only what stays combed deinterlaced; applied whatever the input's flags say
    field_match: bool = False
    #: with ``field_match``: the repeated picture in every 5 frames dropped and the rest retimed at 4/5 of
    #: the rate (29.97 -> 23.976 fps; ``vsr_pipeline.media.decimate``)
    decimate: bool = False
    #: upscale only this region, ``(W, H)`` centred or ``(W, H, X, Y)``, in pixels of the picture as
    #: displayed (``vsr_pipeline.media.crop``); None: the whole frame
    crop: tuple[int, ...] | None = None
    #: the crop grown by ``media.crop.CONTEXT`` pixels each side: what the decoders read and the model sees
    #: (its output there is dropped before encoding); set by the job (``crop_input``), None otherwise
    crop_context: tuple[int, ...] | None = None
    #: upscale only the frames from ``start`` to ``end`` seconds (from the first frame; None: its start,
    #: its end), with their audio and subtitles (``vsr_pipeline.media.trim``)
    start: float | None = None
    end: float | None = None
    #: the frames ``start``/``end`` select, ``(first, stop, pts shift)``: set by the job (``trim_input``),
    #: None otherwise (no flag)
    span: tuple[int, int, int] | None = None
    #: "clean" or "compressed" (H.264 / MPEG-4 at modest bitrates: recorders, phones, web video): with no
    #: ``weights``, "compressed" picks the model's weights trained for it (``ModelSpec.compressed_weights``)
    source: str = "clean"

    def __post_init__(self) -> None:
        if self.weights is None and self.source == "compressed":
            self.weights = compressed_weights(self.model)

    def model_settings(self) -> ModelSettings:
        return ModelSettings(**{f.name: getattr(self, f.name) for f in fields(ModelSettings)})

    def read_settings(self) -> ReadSettings:
        """How the decoders read the input (deep: samples over 8 bits kept where the output keeps them)."""
        crop = tuple(self.crop_context or self.crop) if self.crop else None
        span = tuple(self.span) if self.span else None
        return ReadSettings(self.fps, self.on_corrupt, self.deinterlace, (self.bit_depth or 8) > 8, crop,
                            span, field_match=self.field_match,  # type: ignore[arg-type]
                            decimate=self.decimate)

    def encode_settings(self) -> EncodeSettings:
        values = {f.name: getattr(self, f.name) for f in fields(EncodeSettings)}
        return EncodeSettings(**{**values, "codec_options": tuple(self.codec_options)})  # a CLI list too


def default(name: str) -> Any:
    """The default of ``UpscaleOptions.<name>`` (what the CLI's flag defaults to)."""
    return next(f.default for f in fields(UpscaleOptions) if f.name == name)


def compressed_weights(model: str) -> str | None:
    """The registered weights of ``model`` trained for compressed footage (None: none, or no such model)."""
    from models.registry import get_spec

    try:
        return get_spec(model).compressed_weights
    except ValueError:
        return None


def check_source(opts: UpscaleOptions) -> None:
    """``source`` is known, and ``compressed`` found weights for the model (or weights were given)."""
    from models.registry import list_specs

    if opts.source not in SOURCES:
        raise UsageError(f"--source must be clean or compressed, not {opts.source!r}")
    if opts.source == "compressed" and opts.weights is None:
        have = [s.name for s in list_specs() if s.compressed_weights]
        raise UsageError(f"--source compressed: model {opts.model} has no weights trained for compressed "
                         f"footage (models that have: {', '.join(have) or 'none'}); or pass --weights")


def check_options(opts: UpscaleOptions) -> ModelSpec:
    """Refuse option values that cannot work, before anything is read or started; returns the model's spec."""
    from models.registry import get_spec, resolve_weights

    spec = get_spec(opts.model)
    check_source(opts)
    if opts.scale not in spec.scales:
        scales = ", ".join(str(s) for s in spec.scales)
        raise UsageError(f"model {spec.name} supports scale {scales}, not {opts.scale}")
    check_backbone(spec, opts.backbone, opts.scale)
    check_align(spec, opts.align, opts.aligned_dtype)
    if opts.batch is not None and opts.batch < 1:
        raise UsageError("--batch must be auto or >= 1")
    if opts.decoders < 1:
        raise UsageError("--decoders must be >= 1")
    if opts.threads < 0:
        raise UsageError("--threads must be >= 1 (or 0: chosen on this machine)")
    if opts.on_corrupt not in ON_CORRUPT:
        raise UsageError(f"--on-corrupt must be one of {', '.join(ON_CORRUPT)}, not {opts.on_corrupt!r}")
    if opts.resume not in RESUME_MODES:
        raise UsageError(f"resume must be auto, require or never, not {opts.resume!r}")
    if (opts.chunk is not None and opts.chunk < 1) or (opts.padding is not None and opts.padding < 0):
        raise UsageError("--chunk must be >= 1 and --padding >= 0")
    if opts.tune and (problem := tune_problem(opts.codec, opts.tune)):
        raise UsageError(f"--tune: {problem}")
    if opts.bit_depth not in (None, *BIT_DEPTHS):
        raise UsageError(f"--bit-depth must be auto, {', '.join(map(str, BIT_DEPTHS))}, not {opts.bit_depth}")
    try:
        codec_options = opts.encode_settings().codec_option_dict()
    except ValueError as exc:
        raise UsageError(f"--codec-option {exc}") from None
    if problem := codec_option_problem(opts.codec, codec_options):
        raise UsageError(f"--codec-option: {problem}")
    if opts.crop is not None:
        try:
            check_crop(tuple(opts.crop))
        except ValueError as exc:
            raise UsageError(f"--crop {exc}") from None
    try:
        check_times(opts.start, opts.end)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if opts.field_match and not opts.deinterlace:
        raise UsageError("--field-match rebuilds frames before deinterlacing what stays combed; it cannot go "
                         "with --no-deinterlace")
    if opts.decimate and not opts.field_match:
        raise UsageError("--decimate drops the repeats that --field-match leaves; it needs --field-match")
    if opts.chroma not in (None, *CHROMAS):
        raise UsageError(f"--chroma must be auto, {', '.join(CHROMAS)}, not {opts.chroma}")
    if spec.temporal == "window" and opts.padding is not None:
        from vsr_pipeline.windows import check_padding

        try:
            check_padding(spec.name, spec.radius, opts.padding)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    resolve_weights(spec.name, opts.weights, opts.scale)  # fail before starting anything
    return spec


def check_backbone(spec: ModelSpec, backbone: str | None, scale: int) -> None:
    """``--backbone`` only for video models that accept one, naming a parametric single-image model that
    supports ``scale``."""
    if backbone is None:
        return
    if not spec.accepts_backbone:
        raise UsageError(
            f"model {spec.name} takes no --backbone (only models whose body is a single-image model do)"
        )
    from models.registry import get_spec

    try:
        body = get_spec(backbone)
    except ValueError as exc:
        raise UsageError(f"--backbone: {exc}") from None
    if body.kind != "sisr" or not body.parametric:
        raise UsageError(
            f"--backbone {backbone} is not a trainable single-image model; choose one of: "
            f"{', '.join(s.name for s in backbones())}"
        )
    if scale not in body.scales:
        raise UsageError(
            f"--backbone {backbone} supports scale {', '.join(map(str, body.scales))}, not {scale}"
        )


def backbones() -> list[ModelSpec]:
    """Registered models usable as ``--backbone``."""
    from models.registry import list_specs

    return [s for s in list_specs() if s.kind == "sisr" and s.parametric]


def check_align(spec: ModelSpec, align: str | None, aligned_dtype: str) -> None:
    if align is None:
        return
    if spec.temporal != "window":
        raise UsageError(
            f"--align pre-aligns the frames of window models (VESPCN, EDVR); model {spec.name} is not one"
        )
    if aligned_dtype not in ("uint8", "float16"):
        raise UsageError(f"aligned windows are uint8 or float16, not {aligned_dtype!r}")
    from models.motion import list_flow_estimators

    usable = [n for n in list_flow_estimators() if n not in UNTRAINED_ESTIMATORS]
    if align in UNTRAINED_ESTIMATORS:
        raise UsageError(
            f"--align {align}: that estimator has no trained weights of its own (it is trained inside its "
            f"video model); use one of: {', '.join(usable)}"
        )
    if align not in usable:
        raise UsageError(f"--align: unknown flow estimator {align!r}; known: {', '.join(usable)}")


def check_paths(input_path: Path, output: Path, overwrite: bool) -> None:
    if output.suffix.lower() == ".avi":  # the segments' pts would restart at every joint
        raise UsageError(f"{output}: AVI output is not supported (AVI stores no timestamps, so the chunks "
                         f"cannot be joined exactly); write .mkv, .mp4, .mov or .ts")
    if problem := output_name_problem(output):
        raise UsageError(problem)
    if output.resolve() == input_path.resolve():
        raise UsageError(f"output {output} is the input; choose another output path")
    if output.exists() and not overwrite:
        raise UsageError(f"output {output} exists; pass --overwrite to replace it")
    parent = output.resolve().parent
    if not parent.is_dir():
        raise UsageError(f"output directory {parent} does not exist")
    probe_file = parent / f".{output.name}.vsr-write-test"
    try:  # a real write: access() says yes to root even where nothing can be created
        probe_file.touch()
        probe_file.unlink()
    except OSError as exc:
        raise UsageError(f"output directory {parent} is not writable ({exc.strerror or exc})") from None


def memory_estimate(info: VideoInfo, scale: int, bit_depth: int = 8) -> int:
    """A lower bound on the bytes one frame needs, whatever the batch or tiling: its HR output as float32
    (the model's) plus three RGB copies (upscaler, object store, encoder; uint16 above 8 bits). Activations
    are left out: batching and tiling shrink them, and out-of-memory backs off to tiles."""
    hr = info.width * scale * info.height * scale * 3
    return hr * (4 + 3 * (2 if bit_depth > 8 else 1))


def total_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


#: AVColorTransferCharacteristic of HDR video: SMPTE ST 2084 (PQ), ARIB STD-B67 (HLG)
HDR_TRANSFERS = {16: "PQ", 18: "HLG"}


def output_format(opts: UpscaleOptions, info: VideoInfo, output: Path) -> UpscaleOptions:
    """``opts`` with the output's ``bit_depth``, ``chroma`` and ``frame_rate`` decided. Video:
    ``opts.bit_depth``, or for None (auto) the input's depth as far as ``opts.codec`` goes at the output
    size (``pixel_format.output_bits``: x264 10, x265 12, FFV1 16; ProRes 10 even for 8), ``opts.chroma`` or
    the first layout the codec takes, and for MPEG-1/2 a rate they take (``frame_rate.output_frame_rate``).
    A PNG folder: 16 bits where the input or ``opts.bit_depth`` has more than 8, else 8. A warning where
    the input's HDR10 metadata cannot be written (``media.hdr_metadata.dropped_by``)."""
    if problem := dropped_by(opts.codec if is_video_path(output) else None, info.hdr):
        _warn_once(f"{info.path}: {problem}")
    if not is_video_path(output):  # PNGs: 16 bits for any depth above 8
        check_folder_output(opts, output)
        return replace(opts, bit_depth=16 if (opts.bit_depth or info.bit_depth) > 8 else 8)
    w, h = info.width * opts.scale, info.height * opts.scale
    bits = opts.encode_settings().bits_for(info, w, h)
    rate = (codec_frame_rate(opts.codec, output_rate(info.fps)) if listed_rates(opts.codec) else None) \
        if opts.decimate else output_frame_rate(opts.codec, info, output)  # decimated: retimed, evenly
    return replace(opts, bit_depth=bits, chroma=output_chroma(opts.codec, w, h, bits, opts.chroma),
                   frame_rate=rate)


def encoder_flags(opts: UpscaleOptions) -> list[str]:
    """The encoder flags ``opts`` sets away from their defaults."""
    return [flag for flag, value, default in (
        ("--codec", opts.codec, _E.codec), ("--crf", opts.crf, _E.crf), ("--preset", opts.preset, _E.preset),
        ("--tune", opts.tune, _E.tune), ("--chroma", opts.chroma, _E.chroma),
        ("--codec-option", opts.codec_options, _E.codec_options)) if value != default]


def check_folder_output(opts: UpscaleOptions, output: Path | str) -> None:
    """A warning (once) where encoder flags were set for an output that is a folder of PNG frames: they did
    nothing, without a word (a script's shared flags are not an error)."""
    if flags := encoder_flags(opts):
        _warn_once(f"{output}: {', '.join(flags)} not used: a folder of PNG frames is not encoded (a video "
                   "output is: .mp4, .mkv, .mov, .webm, .ts)")


def crop_input(info: VideoInfo, opts: UpscaleOptions) -> tuple[VideoInfo, VideoInfo, UpscaleOptions]:
    """``info`` of the output's frames (the region's size with ``opts.crop``), of the model's (the region
    with its context, ``media.crop.with_context``), and ``opts`` with the crop's X and Y filled in
    (``media.crop.resolve_crop``) and its ``crop_context``; ``UsageError`` naming the input where the crop
    reaches past its picture."""
    if not opts.crop:
        return info, info, replace(opts, crop_context=None)
    w, h, turn = info.width, info.height, info.rotation
    try:
        crop = resolve_crop(tuple(opts.crop), w, h, turn)
    except ValueError as exc:
        raise UsageError(f"{info.path}: --crop {exc}") from None
    context = with_context(crop, w, h, turn)
    return (cropped_info(info, stored_region(crop, w, h, turn)),
            cropped_info(info, stored_region(context, w, h, turn)),
            replace(opts, crop=crop, crop_context=context))


def trim_input(info: VideoInfo, opts: UpscaleOptions) -> tuple[VideoInfo, UpscaleOptions, Span | None]:
    """``info`` for the frames ``opts.start``/``opts.end`` select, ``opts`` with their ``span``, and the
    :class:`~vsr_pipeline.media.trim.Span` (None without either); ``UsageError`` naming the input where
    they select nothing or its timestamps cannot place them."""
    if opts.start is None and opts.end is None:
        return info, replace(opts, span=None), None
    try:
        span = resolve_span(info, opts.start, opts.end)
    except ValueError as exc:
        raise UsageError(f"{info.path}: {exc}") from None
    return span_info(info, span.first, span.stop), replace(opts, span=span.frames), span


def check_input(info: VideoInfo, scale: int, bit_depth: int = 8) -> None:
    """Refuse, with the estimate, a frame whose processing cannot fit this machine's memory; warn where
    samples deeper than 8 bits are not kept (output ``bit_depth`` 8)."""
    if info.bit_depth > 8 and bit_depth <= 8:
        hdr = HDR_TRANSFERS.get(info.color_trc)
        logging.getLogger(__name__).warning(
            "%s: %d-bit video is upscaled and written at 8 bits%s", info.path, info.bit_depth,
            f" ({hdr} HDR: its tags are kept, but smooth gradients may band)" if hdr else "")
    elif 8 < bit_depth < info.bit_depth:
        logging.getLogger(__name__).info("%s: %d-bit video is written at %d bits", info.path, info.bit_depth,
                                         bit_depth)
    need, have = memory_estimate(info, scale, bit_depth), total_memory()
    if have is not None and need > have:
        raise ResourceError(
            f"a {info.width}x{info.height} frame at x{scale} needs about {need / 2**30:.1f} GiB "
            f"(output frame {info.width * scale}x{info.height * scale}); this machine has "
            f"{have / 2**30:.1f} GiB, even with --batch 1 and tiles: downscale the input, or upscale a "
            "region of it (--crop)"
        )


@functools.cache
def _warn_once(message: str) -> None:
    """A warning said once per process (a batch checks every video's options)."""
    logging.getLogger(__name__).warning(message)


def check_perf_options(spec: ModelSpec, opts: UpscaleOptions, device: Any) -> None:
    """``--precision`` valid on ``device``; ``--tile`` at least twice ``--overlap``."""
    from vsr_pipeline.precision import emulated_bf16_note, resolve_precision

    try:
        resolve_precision(opts.precision, device, spec.name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    note = emulated_bf16_note(opts.precision, device)
    if note is not None:
        _warn_once(note)
    if opts.overlap < 0 or (opts.tile is not None and (opts.tile < 8 or 2 * opts.overlap > opts.tile)):
        raise UsageError("--tile must be >= 8 and at least twice --overlap (>= 0)")
