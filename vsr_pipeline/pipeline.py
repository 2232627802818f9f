"""The upscale job: probe, plan chunks, stream them through Decoder -> Upscaler -> Encoder actors.

With ``--align ESTIMATOR`` (window models only) two stages sit before the upscaler:
Decoder -> Motion (flow from every neighbour to each window's centre) -> Aligner (warped, pre-aligned
windows) -> Upscaler. Each stage receives object references from the previous one; the driver only
passes references along.

Frames cross actors as uint8 batches in Ray's object store. Decode batches are fixed-size
(``chunk`` frames) and each chunk's window references the batches it overlaps, so padding
frames are decoded once and shared, never re-decoded. At most ``max_inflight`` chunks are
in flight; the encoder receives chunks in order (Ray runs one caller's calls to an actor in
submission order), and the output appears under its name only when it is complete.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from models.registry import ModelSpec, get_spec, resolve_weights
from vsr_pipeline.errors import UsageError
from vsr_pipeline.media import VideoInfo, probe
from vsr_pipeline.plan import batches_for, plan_chunks
from vsr_pipeline.windows import check_padding

log = logging.getLogger(__name__)

#: Frames of context each side of a chunk, by temporal kind. For recurrent models this is the
#: measured default (see docs/benchmarks.md, "chunk padding"); window models need their radius.
RECURRENT_PADDING = 10
#: Flow estimators ``--align`` refuses: nothing trained exists for them alone (VESPCN's motion compensation
#: is learnt jointly with VESPCN), so their flow would be noise.
UNTRAINED_ESTIMATORS = frozenset({"vespcn"})
#: Budget for one chunk's activations on the CPU/GPU, used to size the default chunk.
CHUNK_FEATURE_BYTES = 2 * 1024**3


@dataclass
class UpscaleOptions:
    model: str = "basicvsr"
    weights: str | None = None
    scale: int = 4
    device: str = "auto"
    chunk: int | None = None
    padding: int | None = None
    codec: str = "libx264"
    crf: int = 18
    preset: str = "medium"
    address: str | None = None
    overwrite: bool = False
    fps: Fraction | None = None
    max_inflight: int = 2
    progress: bool = True
    #: frames (single-image models) or windows (window models) per forward pass
    batch: int = 4
    #: single-image model used as the body of a video model whose spec accepts_backbone
    backbone: str | None = None
    #: flow estimator for the Motion + Aligner stages (window models); None: the model aligns itself
    align: str | None = None
    #: dtype of pre-aligned windows between the Aligner and the Upscaler: "uint8" or "float16"
    aligned_dtype: str = "uint8"


@dataclass
class UpscaleResult:
    input: str
    output: str
    model: str
    weights: str | None
    backbone: str | None
    align: str | None
    device: str
    frames_in: int
    frames_out: int
    width_in: int
    height_in: int
    width_out: int
    height_out: int
    fps_in: float
    chunk: int
    padding: int
    chunks: int
    seconds: float
    fps: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def default_padding(model: str) -> int:
    spec = get_spec(model)
    if spec.temporal == "recurrent":
        return RECURRENT_PADDING
    return spec.radius


def default_chunk(info: VideoInfo, padding: int) -> int:
    """Core frames per chunk: 50, fewer for large frames so ~64 feature maps of the window fit a budget."""
    per_frame = 64 * 4 * info.width * info.height * 3  # features kept per frame, both directions + slack
    fit = max(1, CHUNK_FEATURE_BYTES // per_frame - 2 * padding)
    return int(max(min(50, fit), min(8, info.frames or 8)))


@contextmanager
def ray_session(address: str | None = None) -> Iterator[None]:
    """Use a running Ray, join ``address``, or start Ray in-process on loopback with no dashboard."""
    import ray

    if ray.is_initialized():
        yield
        return
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "logging_level": logging.ERROR,
        "configure_logging": True,
    }
    if address:
        ray.init(address=address, **kwargs)
    else:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(num_cpus=os.cpu_count() or 1, _node_ip_address="127.0.0.1", **kwargs)
    try:
        yield
    finally:
        ray.shutdown()


def check_backbone(spec: ModelSpec, backbone: str | None, scale: int) -> None:
    """``--backbone`` only for video models that accept one, naming a parametric single-image model that
    supports ``scale``."""
    if backbone is None:
        return
    if not spec.accepts_backbone:
        raise UsageError(
            f"model {spec.name} takes no --backbone (only models whose body is a single-image model do)"
        )
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
    if output.resolve() == input_path.resolve():
        raise UsageError(f"output {output} is the input; choose another output path")
    if output.exists() and not overwrite:
        raise UsageError(f"output {output} exists; pass --overwrite to replace it")
    parent = output.resolve().parent
    if not parent.is_dir():
        raise UsageError(f"output directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"output directory {parent} is not writable")


def upscale(input_path: str | Path, output: str | Path, opts: UpscaleOptions) -> UpscaleResult:
    """Upscale a video file or image folder to ``output`` (video file or PNG folder)."""
    import ray

    from workers.aligner import Aligner
    from workers.decoder import Decoder
    from workers.encoder import Encoder
    from workers.motion import Motion
    from workers.upscaler import Upscaler, resolve_device

    input_path, output = Path(input_path), Path(output)
    spec = get_spec(opts.model)
    if opts.scale not in spec.scales:
        scales = ", ".join(str(s) for s in spec.scales)
        raise UsageError(f"model {spec.name} supports scale {scales}, not {opts.scale}")
    check_backbone(spec, opts.backbone, opts.scale)
    backbone = None if opts.backbone is None else get_spec(opts.backbone)
    check_align(spec, opts.align, opts.aligned_dtype)
    if opts.batch < 1:
        raise UsageError("--batch must be >= 1")
    check_paths(input_path, output, opts.overwrite)
    resolve_weights(spec.name, opts.weights)  # fail before starting anything
    device = resolve_device(opts.device)
    info = probe(input_path, fps=opts.fps)
    padding = default_padding(spec.name) if opts.padding is None else opts.padding
    chunk = default_chunk(info, padding) if opts.chunk is None else opts.chunk
    if chunk < 1 or padding < 0:
        raise UsageError("--chunk must be >= 1 and --padding >= 0")
    if spec.temporal == "window":
        try:
            check_padding(spec.name, spec.radius, padding)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    chunks = plan_chunks(info.frames, chunk, padding)

    started = time.perf_counter()
    with ray_session(opts.address):
        gpu = device.type == "cuda"
        cpus = os.cpu_count() or 1
        # With alignment on a GPU the three torch stages share it; Ray needs fractions that sum to 1.
        gpu_share = (0.5 if opts.align else 1.0) if gpu else 0
        decoder = ray.remote(num_cpus=0)(Decoder).remote(str(input_path), opts.fps)
        upscaler = ray.remote(num_cpus=0 if gpu else 1, num_gpus=gpu_share)(
            reporting_errors(Upscaler)
        ).remote(spec, opts.weights, opts.scale, str(device), 0 if gpu else cpus, opts.batch, backbone)
        actors = [decoder, upscaler]
        motion = aligner = None
        if opts.align:
            motion = ray.remote(num_cpus=0, num_gpus=gpu_share / 2)(reporting_errors(Motion)).remote(
                opts.align, spec.radius, str(device), 0 if gpu else cpus
            )
            aligner = ray.remote(num_cpus=0, num_gpus=gpu_share / 2)(reporting_errors(Aligner)).remote(
                spec.radius, opts.aligned_dtype, str(device), 0 if gpu else max(1, cpus // 2)
            )
            actors += [motion, aligner]
        encoder = ray.remote(num_cpus=0)(Encoder).remote(
            str(output), info, opts.scale, opts.codec, opts.crf, opts.preset, opts.overwrite
        )
        actors.append(encoder)
        try:
            ray.get([a.ready.remote() for a in (upscaler, motion, aligner) if a is not None])
            device_name = ray.get(upscaler.device_name.remote())
            stages = _Stages(decoder, upscaler, encoder, motion, aligner)
            written = _stream(chunks, chunk, stages, info.frames, opts)
            frames_out = ray.get(encoder.close.remote())
        except BaseException:
            try:
                ray.get(encoder.abort.remote(), timeout=60)
            except Exception as exc:  # the encoder itself may be what failed
                log.debug("encoder abort failed: %s", exc)
            raise
        finally:
            for actor in actors:
                ray.kill(actor)
    seconds = time.perf_counter() - started
    if written != info.frames:
        raise RuntimeError(f"wrote {written} frames but the input has {info.frames}")
    return UpscaleResult(
        input=str(input_path),
        output=str(output),
        model=spec.name,
        weights=opts.weights or spec.default_weights,
        backbone=opts.backbone,
        align=opts.align,
        device=device_name,
        frames_in=info.frames,
        frames_out=frames_out,
        width_in=info.width,
        height_in=info.height,
        width_out=info.width * opts.scale,
        height_out=info.height * opts.scale,
        fps_in=float(info.fps) if info.fps else 0.0,
        chunk=chunk,
        padding=padding,
        chunks=len(chunks),
        seconds=round(seconds, 3),
        fps=round(info.frames / seconds, 3) if seconds > 0 else 0.0,
    )


def reporting_errors(cls: type) -> type:
    """``cls`` for ``ray.remote``, with the constructor's exception kept and raised by ``ready()``.

    An exception in an actor's constructor kills the actor, and the driver then sees only
    ``ActorDiedError`` (exit 1, "internal error", Ray's traceback on stderr); raised from a method it
    arrives as the original exception (e.g. a checkpoint that does not fit: exit 4, one line).
    """

    class Actor(cls):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._error: Exception | None = None
            try:
                super().__init__(*args, **kwargs)
            except Exception as exc:
                self._error = exc

        def ready(self) -> bool:
            if self._error is not None:
                raise self._error
            return True

    Actor.__name__ = Actor.__qualname__ = cls.__name__
    return Actor


@dataclass
class _Stages:
    """Actor handles of one job; ``motion`` and ``aligner`` only with ``--align``."""

    decoder: Any
    upscaler: Any
    encoder: Any
    motion: Any = None
    aligner: Any = None

    def upscale(self, window: slice, keep: slice, batches: list[Any]) -> Any:
        """Reference to the HR core frames of one chunk."""
        if self.motion is None:
            return self.upscaler.process.remote(window, keep, *batches)
        flows = self.motion.process.remote(window, keep, *batches)
        aligned = self.aligner.process.remote(window, keep, flows, *batches)
        return self.upscaler.process_windows.remote(aligned)


def _stream(chunks: list, batch: int, stages: _Stages, total: int, opts: UpscaleOptions) -> int:
    """Submit every chunk, at most ``opts.max_inflight`` writes outstanding; returns frames written."""
    import ray
    from tqdm import tqdm

    frames_refs: dict[int, Any] = {}
    pts_refs: dict[int, Any] = {}
    next_batch = 0
    pending: deque[tuple[int, Any]] = deque()
    written = 0
    with tqdm(
        total=total,
        unit="frame",
        file=sys.stderr,
        disable=not opts.progress,
        dynamic_ncols=True,
        desc=f"{opts.model} x{opts.scale}",
    ) as bar:

        def drain_one() -> None:
            nonlocal written
            n, ref = pending.popleft()
            written = ray.get(ref)
            bar.update(n)

        for c in chunks:
            need = batches_for(c, batch)
            while next_batch <= need[-1]:
                frames_refs[next_batch], pts_refs[next_batch] = stages.decoder.read.options(
                    num_returns=2
                ).remote(batch)
                next_batch += 1
            for old in [b for b in frames_refs if b < need[0]]:
                del frames_refs[old], pts_refs[old]
            offset = need[0] * batch
            window = slice(c.read_start - offset, c.read_stop - offset)
            hr = stages.upscale(window, c.keep, [frames_refs[b] for b in need])
            pts = [p for b in need for p in ray.get(pts_refs[b])][window][c.keep]
            if len(pts) != c.core:
                raise RuntimeError(f"decoder returned too few frames for frames {c.start}-{c.stop - 1}")
            pending.append((c.core, stages.encoder.write.remote(hr, pts)))
            while len(pending) >= max(1, opts.max_inflight):
                drain_one()
        while pending:
            drain_one()
    return written
