"""The upscale job: probe, plan chunks, stream them through Decoder -> Upscaler -> Encoder actors.

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

from models.registry import get_spec, resolve_weights
from vsr_pipeline.errors import UsageError
from vsr_pipeline.media import VideoInfo, probe
from vsr_pipeline.plan import batches_for, plan_chunks

log = logging.getLogger(__name__)

#: Frames of context each side of a chunk, by temporal kind. For recurrent models this is the
#: measured default (see docs/benchmarks.md, "chunk padding"); window models need their radius.
RECURRENT_PADDING = 10
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


@dataclass
class UpscaleResult:
    input: str
    output: str
    model: str
    weights: str | None
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

    from workers.decoder import Decoder
    from workers.encoder import Encoder
    from workers.upscaler import Upscaler, resolve_device

    input_path, output = Path(input_path), Path(output)
    spec = get_spec(opts.model)
    if opts.scale not in spec.scales:
        scales = ", ".join(str(s) for s in spec.scales)
        raise UsageError(f"model {spec.name} supports scale {scales}, not {opts.scale}")
    check_paths(input_path, output, opts.overwrite)
    resolve_weights(spec.name, opts.weights)  # fail before starting anything
    device = resolve_device(opts.device)
    info = probe(input_path, fps=opts.fps)
    padding = default_padding(spec.name) if opts.padding is None else opts.padding
    chunk = default_chunk(info, padding) if opts.chunk is None else opts.chunk
    if chunk < 1 or padding < 0:
        raise UsageError("--chunk must be >= 1 and --padding >= 0")
    chunks = plan_chunks(info.frames, chunk, padding)

    started = time.perf_counter()
    with ray_session(opts.address):
        gpu = device.type == "cuda"
        decoder = ray.remote(num_cpus=0)(Decoder).remote(str(input_path), opts.fps)
        upscaler = ray.remote(num_cpus=0 if gpu else 1, num_gpus=1 if gpu else 0)(Upscaler).remote(
            spec.name, opts.weights, opts.scale, str(device), 0 if gpu else (os.cpu_count() or 1)
        )
        encoder = ray.remote(num_cpus=0)(Encoder).remote(
            str(output), info, opts.scale, opts.codec, opts.crf, opts.preset, opts.overwrite
        )
        try:
            device_name = ray.get(upscaler.device_name.remote())
            written = _stream(chunks, chunk, decoder, upscaler, encoder, info.frames, opts)
            frames_out = ray.get(encoder.close.remote())
        except BaseException:
            try:
                ray.get(encoder.abort.remote(), timeout=60)
            except Exception as exc:  # the encoder itself may be what failed
                log.debug("encoder abort failed: %s", exc)
            raise
        finally:
            for actor in (decoder, upscaler, encoder):
                ray.kill(actor)
    seconds = time.perf_counter() - started
    if written != info.frames:
        raise RuntimeError(f"wrote {written} frames but the input has {info.frames}")
    return UpscaleResult(
        input=str(input_path),
        output=str(output),
        model=spec.name,
        weights=opts.weights or spec.default_weights,
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


def _stream(
    chunks: list, batch: int, decoder: Any, upscaler: Any, encoder: Any, total: int, opts: UpscaleOptions
) -> int:
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
                frames_refs[next_batch], pts_refs[next_batch] = decoder.read.options(num_returns=2).remote(
                    batch
                )
                next_batch += 1
            for old in [b for b in frames_refs if b < need[0]]:
                del frames_refs[old], pts_refs[old]
            offset = need[0] * batch
            window = slice(c.read_start - offset, c.read_stop - offset)
            hr = upscaler.process.remote(window, c.keep, *[frames_refs[b] for b in need])
            pts = [p for b in need for p in ray.get(pts_refs[b])][window][c.keep]
            if len(pts) != c.core:
                raise RuntimeError(f"decoder returned too few frames for frames {c.start}-{c.stop - 1}")
            pending.append((c.core, encoder.write.remote(hr, pts)))
            while len(pending) >= max(1, opts.max_inflight):
                drain_one()
        while pending:
            drain_one()
    return written
