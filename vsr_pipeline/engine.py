"""The inference engine: a model on a device turning LR frame windows (uint8/uint16, numpy) into HR frames.

Plain torch, no Ray: ``Engine`` holds one model with its precision, tiling, batch and memory policy; the
Ray actor (``workers.upscaler.Upscaler``), the live-stream executor, ``vsr bench`` and the benchmarks all
call it. Functions: ``run_model`` (a chunk's window -> its kept HR frames, by temporal kind), ``run_windows``
(pre-aligned windows), ``make_forward`` (precision + tiles around a module), ``to_tensor``/``to_frames``
(uint8 or uint16 (T, H, W, 3) <-> float (T, 3, H, W) in [0, 1]). HR frames are uint8, or uint16 (0-65535) for
a 10- to 16-bit output (``bit_depth``): the model's float output is quantised once, at the output's depth.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from models.registry import ModelSpec, build_model, get_spec, register, resolve_weights
from models.weights import load_weights
from vsr_pipeline.heap import reuse_freed_memory
from vsr_pipeline.options import chunks_per_pass, concrete_batch
from vsr_pipeline.precision import FP32_CPU, Precision, make_precision
from vsr_pipeline.tiling import DEFAULT_OVERLAP, back_off, free_cached, is_out_of_memory, tiled_forward
from vsr_pipeline.windows import window_table

if TYPE_CHECKING:
    from vsr_pipeline.options import ModelSettings

log = logging.getLogger(__name__)
_Out = TypeVar("_Out")


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA device is available")
    return torch.device(device)


def to_tensor(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 or uint16 (..., H, W, 3) -> float32 (..., 3, H, W) in [0, 1] on ``device``; float16 input is
    taken as already in [0, 1] (pre-aligned windows)."""
    if not frames.flags.writeable or not frames.flags.c_contiguous:  # Ray hands out read-only views
        frames = np.array(frames, order="C")
    t = torch.from_numpy(frames)
    if device.type == "cuda":  # uint8 crosses the bus (1/4 of float32's bytes), from pinned memory, async
        t = t.pin_memory().to(device, non_blocking=True)
    t = t.movedim(-1, -3)
    if frames.dtype == np.uint8:
        return t.float().div_(255.0)
    if frames.dtype == np.uint16:
        return t.float().div_(65535.0)
    return t.float()


def frame_dtype(bit_depth: int | None) -> np.dtype:
    """HR frames' sample type for an output of ``bit_depth`` bits (None: 8): uint8, or uint16 above 8."""
    return np.dtype(np.uint16 if bit_depth and bit_depth > 8 else np.uint8)


def to_frames(frames: torch.Tensor, dtype: np.dtype | type = np.uint8) -> np.ndarray:
    """float (T, 3, H, W) in [0, 1] -> (T, H, W, 3) of ``dtype``: uint8 rounded as BasicSR's tensor2img does,
    or uint16 (0-65535) for a deeper output. Quantised on the tensor's device (on a GPU only the integers
    come back), from float32 (a bf16/fp16 output is widened first: bf16 cannot hold every 8-bit level)."""
    deep = np.dtype(dtype) == np.uint16
    top = 65535.0 if deep else 255.0
    out = frames.float().clamp_(0.0, 1.0).mul_(top).round_()
    out = out.to(torch.int32).to(torch.uint16) if deep else out.to(torch.uint8)
    return np.ascontiguousarray(out.permute(0, 2, 3, 1).cpu().numpy())


def forward_full(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch: int) -> torch.Tensor:
    """``model(x)`` with ``x`` padded to exactly ``batch`` items (the last one repeated, its outputs dropped).

    Every forward pass then has the same shape and memory layout, whatever the chunking: convolution
    kernels pick their algorithm by shape and layout (on the CPU a batch of 1 takes another path than a
    batch of 2+, and channels-last another than contiguous, a few 1e-7 apart, enough to flip a rounded
    output value), so this is what makes chunked output equal whole-video output bit for bit. Cost: at
    most ``batch - 1`` extra items per chunk.
    """
    return model(pad_batch(x, batch))[: len(x)]


def make_forward(
    model: Callable[..., torch.Tensor],
    precision: Precision = FP32_CPU,
    tile: int | None = None,
    overlap: int = DEFAULT_OVERLAP,
) -> Callable[..., torch.Tensor]:
    """``model`` run in ``precision`` (autocast and memory layout), on blended ``tile``-pixel crops when
    ``tile`` is set (``vsr_pipeline.tiling``). fp32 on the CPU without tiles is ``model`` itself. Keyword
    arguments (a recurrent model's ``keep``) go to ``model``."""
    if precision.name == "fp32" and not tile and precision.device.type != "cuda":
        return model

    def one(x: torch.Tensor, **kw: Any) -> torch.Tensor:
        with precision.autocast():
            return model(precision.layout(x), **kw)

    if not tile:
        return one
    return lambda x, **kw: tiled_forward(partial(one, **kw), x, tile, overlap)


def pad_batch(x: torch.Tensor, batch: int) -> torch.Tensor:
    """``x`` with its last item repeated until it holds ``batch`` items, always contiguous (a padded batch
    and a full one must also share their memory layout, or kernels differ again)."""
    if len(x) >= batch:
        return x.contiguous()
    return torch.cat([x, x[-1:].expand(batch - len(x), *x.shape[1:])]).contiguous()


@torch.inference_mode()
def run_model(
    model: Callable[..., torch.Tensor],
    temporal: str,
    frames: np.ndarray,
    device: torch.device,
    batch: int = 4,
    radius: int = 0,
    keep: slice | None = None,
    dtype: np.dtype | type = np.uint8,
) -> np.ndarray:
    """Run ``model`` over LR frames uint8 or uint16 (T, H, W, 3); returns HR frames (T, sH, sW, 3) of
    ``dtype`` (uint8, or uint16 for a deeper output).

    Recurrent video models see the whole window as one sequence; single-image models run
    per frame in mini-batches of ``batch``; window models (``radius`` frames each side) get
    ``batch`` windows of ``2 * radius + 1`` frames per forward, edge frames replicated at the
    ends of ``frames`` (``vsr_pipeline.windows``). Mini-batches are always ``batch`` items
    (``forward_full``). With ``keep``, only those output frames are computed and returned
    (the others of the chunk are context). ``model`` is any callable on tensors, e.g.
    ``make_forward(module, precision, tile)``.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected frames of shape (T, H, W, 3), got {frames.shape}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    if temporal == "recurrent":  # the model reconstructs only the kept frames (BasicVSR.forward)
        return run_sequences(model, [frames], device, 1, keep, dtype)[0]
    if temporal == "none":
        if keep is not None:
            frames = frames[keep]
        parts = [
            to_frames(forward_full(model, to_tensor(frames[i : i + batch], device), batch), dtype)
            for i in range(0, len(frames), batch)
        ]
        return np.concatenate(parts)
    if temporal == "window":
        table = torch.from_numpy(window_table(len(frames), radius, keep)).to(device)
        lr = to_tensor(frames, device)  # (L, 3, H, W): each frame converted once, gathered per window
        parts = [
            to_frames(forward_full(model, lr[table[i : i + batch]], batch), dtype)
            for i in range(0, len(table), batch)
        ]
        return np.concatenate(parts)
    raise ValueError(f"temporal mode {temporal!r} is not supported by this pipeline")


@torch.inference_mode()
def run_sequences(
    model: Callable[..., torch.Tensor],
    sequences: list[np.ndarray],
    device: torch.device,
    count: int = 1,
    keep: slice | None = None,
    dtype: np.dtype | type = np.uint8,
) -> list[np.ndarray]:
    """A recurrent model over several chunks at once: ``sequences`` (T, H, W, 3) of one shape, run as
    one (N, T, 3, H, W) batch padded to ``count`` sequences (``pad_batch``: every forward pass the same
    shape, so a chunk's output does not depend on which others it ran with); returns each one's kept HR
    frames (T', sH, sW, 3) of ``dtype``. Several sequences fill a GPU that one recurrent step at a time leaves
    idle (BasicVSR, Chan et al., CVPR 2021, runs its 2x(T-1) steps one after another)."""
    if not sequences or any(s.shape != sequences[0].shape for s in sequences):
        raise ValueError(f"sequences must share one shape, got {[s.shape for s in sequences]}")
    if len(sequences) > count:
        raise ValueError(f"{len(sequences)} sequences for a forward pass of {count}")
    x = torch.stack([to_tensor(s, device) for s in sequences])
    out = model(pad_batch(x, count), keep=keep)[: len(sequences)]
    return [to_frames(o, dtype) for o in out]


@torch.inference_mode()
def run_windows(
    model: Callable[[torch.Tensor], torch.Tensor], windows: np.ndarray, device: torch.device, batch: int = 4,
    dtype: np.dtype | type = np.uint8,
) -> np.ndarray:
    """Run a window model over ready-made windows (T, 2r+1, H, W, 3), uint8, uint16 or float16 in [0, 1]
    (the aligner's output); returns HR frames (T, sH, sW, 3) of ``dtype``."""
    if windows.ndim != 5 or windows.shape[-1] != 3:
        raise ValueError(f"expected windows of shape (T, 2r+1, H, W, 3), got {windows.shape}")
    parts = [
        to_frames(forward_full(model, to_tensor(windows[i : i + batch], device), batch), dtype)
        for i in range(0, len(windows), batch)
    ]
    return np.concatenate(parts)


def use_spec(model: str | ModelSpec) -> ModelSpec:
    """The spec of ``model``. A spec handed over by the driver is registered in this process if it lacks it,
    so models a Python caller registers at run time work inside Ray actors too (same name, different spec:
    ``ModelError``)."""
    if isinstance(model, ModelSpec):
        register(model)
        return model
    return get_spec(model)


def load_upscaler_model(
    model: str, weights: str | None, scale: int, backbone: str | None = None
) -> torch.nn.Module:
    """Build ``model`` (with ``backbone`` for video models that accept one), load its weights strictly
    (after building, so the backbone's parameters are part of the checkpoint), eval mode, CPU."""
    overrides = {} if backbone is None else {"backbone": backbone}
    net = build_model(model, scale, **overrides)
    path = resolve_weights(model, weights, scale)
    if path is not None:
        load_weights(net, path, strict=True)
    return net.eval()


def set_threads(threads: int) -> int:
    """Use ``threads`` intra-op threads (0: leave torch's choice); returns the count in force.

    Ray starts a ``num_cpus=1`` actor with ``OMP_NUM_THREADS=1``; torch reads that at start-up, so the
    count the pipeline gives the actor (all cores on the CPU: the decoder and encoder are mostly idle
    while the model runs) must be set explicitly, and for OpenCV too.
    """
    if threads > 0:
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        try:
            import cv2

            cv2.setNumThreads(threads)
        except ImportError:  # pragma: no cover - OpenCV is a dependency, but the model needs none of it
            pass
    return torch.get_num_threads()



def compile_model(model: torch.nn.Module) -> Callable[..., torch.Tensor]:
    """``torch.compile`` with fixed shapes. A recurrent model that offers ``compile_steps`` (BasicVSR)
    compiles its per-frame parts instead of its whole time loop: small graphs, whatever the chunk's length."""
    steps = getattr(model, "compile_steps", None)
    if callable(steps):
        steps(dynamic=False)
        return model
    return torch.compile(model, dynamic=False)  # type: ignore[return-value]


def engine_arguments(settings: ModelSettings, spec: ModelSpec | None = None, device: str | None = None,
                     threads: int = 0, reuse_memory: bool = False) -> dict[str, Any]:
    """``Engine``'s constructor arguments for ``settings`` (what a Ray actor of it is started with).
    ``spec`` travels as an object so a model a Python caller registered at run time works in an actor;
    ``device`` overrides ``settings.device`` (the job's resolved device)."""
    return {
        "model": spec or settings.model,
        "weights": settings.weights,
        "scale": settings.scale,
        "device": device or settings.device,
        "threads": threads,
        "batch": concrete_batch(settings.batch),
        "backbone": None if settings.backbone is None else get_spec(settings.backbone),
        "precision": settings.precision,
        "tile": settings.tile,
        "overlap": settings.overlap,
        "compile": settings.compile,
        "sequences": settings.sequences,
        "bit_depth": settings.bit_depth,
        "reuse_memory": reuse_memory,
    }


#: ``Engine`` arguments a built engine takes without reloading its model (``Engine.configure``)
ADJUSTABLE = ("threads", "batch", "tile", "overlap", "sequences", "bit_depth")


class Engine:
    """Holds one model; ``process`` upscales a chunk's window and returns its core frames.

    ``reuse_memory`` keeps freed large buffers in this process's heap for the next chunk instead of
    returning them to the OS (``vsr_pipeline.heap``; the pipeline's actors use it: 1.8x faster ESPCN x4 at
    272x640); it changes malloc for the whole process, so it is off for an Engine built in a caller's.

    ``precision`` (``auto|fp32|bf16|fp16``, ``vsr_pipeline.precision``), ``tile`` (LR pixels; None: whole
    frames) and ``compile`` (``torch.compile``, fixed shapes) choose how the forward pass runs. An
    out-of-memory error is retried with half the sequences per pass (a recurrent model's ``sequences``, down
    to 1), then tiles, then smaller tiles, then a smaller batch (``vsr_pipeline.tiling.back_off``); the
    smaller setting is kept for later chunks, so their shapes stay fixed again (chunks before the back-off
    ran otherwise, and may differ from later ones by float rounding).
    """

    def __init__(
        self,
        model: str | ModelSpec,
        weights: str | None,
        scale: int,
        device: str = "auto",
        threads: int = 0,
        batch: int = 4,
        backbone: str | ModelSpec | None = None,
        precision: str = "fp32",
        tile: int | None = None,
        overlap: int = DEFAULT_OVERLAP,
        compile: bool = False,
        reuse_memory: bool = False,
        sequences: int = 1,
        bit_depth: int | None = 8,
    ):
        if reuse_memory:  # process-wide: for an actor's own process (vsr_pipeline.heap)
            reuse_freed_memory(True)
        self._default_threads = torch.get_num_threads()  # what ``threads=0`` keeps (Ray's, for an actor)
        self.device = resolve_device(device)
        self.spec = use_spec(model)
        self.precision = make_precision(precision, self.device, self.spec.name)
        body = None if backbone is None else use_spec(backbone).name
        self.model = self.precision.prepare(load_upscaler_model(self.spec.name, weights, scale, body))
        self.compiled = compile_model(self.model) if compile else self.model
        self._base: dict[str, Any] = {}
        self.reset({"threads": threads, "batch": batch, "tile": tile, "overlap": overlap,
                    "sequences": sequences, "bit_depth": bit_depth})

    def configure(self, threads: int, batch: int, tile: int | None, overlap: int, sequences: int,
                  bit_depth: int | None = 8) -> None:
        """Run with these (:data:`ADJUSTABLE`, as the constructor's) from now on; the loaded model is kept.
        Unchanged settings keep any out-of-memory back-off, and so does a new ``bit_depth`` (only the output's
        rounding, uint8 or uint16; a batch's videos alternate it); other changes start from what is given."""
        if sequences < 1:
            raise ValueError(f"sequences must be >= 1, got {sequences}")
        self.bit_depth, self.dtype = bit_depth or 8, frame_dtype(bit_depth)
        base = {"threads": threads, "batch": batch, "tile": tile, "overlap": overlap, "sequences": sequences,
                "bit_depth": bit_depth}
        self._base, old = base, self._base
        if {**base, "bit_depth": 0} == {**old, "bit_depth": 0}:  # the forward pass is as it was
            return
        if threads or torch.get_num_threads() != self._default_threads:
            set_threads(threads or self._default_threads)
        self.threads = torch.get_num_threads()
        self.batch, self.tile, self.overlap = batch, tile, overlap
        #: a recurrent model's chunks per forward pass (``run_sequences``); 1 for the other kinds
        self.sequences = chunks_per_pass(self.spec, sequences)
        self.forward = make_forward(self.compiled, self.precision, self.tile, self.overlap)
        self.backoffs: list[dict[str, int | None]] = []

    @property
    def base(self) -> dict[str, Any]:
        """The :data:`ADJUSTABLE` settings in force (as given: before any out-of-memory back-off)."""
        return dict(self._base)

    def reset(self, base: dict[str, Any] | None = None) -> bool:
        """Back to a new engine's state: ``base`` (:data:`ADJUSTABLE` settings; None: the ones in force)
        without any out-of-memory back-off, and an empty busy account. A warm actor kept for the next job
        (``vsr_pipeline.upscaler_pool``) computes that job as a new one with those settings would."""
        base = dict(base or self._base)
        self._base = {}  # applied afresh: the back-off is undone even where base is unchanged
        self.configure(**base)
        self._busy = {"busy_s": 0.0, "calls": 0, "frames": 0, "first": None, "last": None}
        return True

    @classmethod
    def from_settings(cls, settings: ModelSettings, **kwargs: Any) -> Engine:
        """An engine for ``settings``; ``kwargs`` as :func:`engine_arguments`'s (spec, device, threads,
        reuse_memory)."""
        return cls(**engine_arguments(settings, **kwargs))

    def _timed(self, run: Callable[[], _Out]) -> _Out:
        """``run()`` (HR frames, or a list of several chunks' HR frames), its wall time added to the busy
        account (``stats``)."""
        start = time.time()
        out = run()
        end = time.time()
        b = self._busy
        b["busy_s"] += end - start
        b["calls"] += 1
        b["frames"] += sum(map(len, out)) if isinstance(out, list) else len(out)
        b["first"] = start if b["first"] is None else b["first"]
        b["last"] = end
        return out

    def stats(self) -> dict[str, float | int | str | None]:
        """Busy seconds, calls and HR frames so far, and the wall-clock (epoch) start of the first call and
        end of the last: what the busy share of a run is computed from."""
        return dict(self._busy)

    def device_type(self) -> str:
        return self.device.type

    def _with_backoff(self, run: Callable[[], _Out], frame_size: tuple[int, int]) -> _Out:
        while True:
            try:
                return run()
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                free_cached(self.device)
                if self.sequences > 1:  # fewer chunks per pass first: whole frames, as the model was trained
                    log.warning("out of memory with %d sequences per pass: retrying with %d",
                                self.sequences, self.sequences // 2)
                    self.sequences //= 2
                    self.backoffs.append({"tile": self.tile, "batch": self.batch,
                                          "sequences": self.sequences})
                    continue
                smaller = back_off(self.tile, self.batch, frame_size)
                if smaller is None:
                    raise
                log.warning(
                    "out of memory with tile %s, batch %d: retrying with tile %s, batch %d",
                    self.tile, self.batch, *smaller,
                )
                self.backoffs.append({"tile": smaller[0], "batch": smaller[1], "sequences": self.sequences})
                self.tile, self.batch = smaller
                self.forward = make_forward(self.compiled, self.precision, self.tile, self.overlap)

    def process(self, window: slice, keep: slice, *batches: np.ndarray,
                base: dict[str, Any] | None = None) -> np.ndarray:
        """Upscale one chunk: ``batches`` are consecutive decode batches, ``window`` the chunk's
        frames within their concatenation, ``keep`` its core frames within the window. ``base``: the job's
        :data:`ADJUSTABLE` settings, applied first (``configure``): an actor Ray restarted after a crash
        is rebuilt with the arguments it was first started with, which may be another job's."""
        if base is not None:
            self.configure(**base)
        if self.sequences > 1:
            return self.process_group([(window, keep, len(batches))], *batches)[0]
        frames = batches[0] if len(batches) == 1 else np.concatenate(batches)
        frames = frames[window]
        return self._timed(lambda: self._with_backoff(
            lambda: run_model(self.forward, self.spec.temporal, frames, self.device, self.batch,
                              self.spec.radius, keep, self.dtype),
            frames.shape[1:3],
        ))

    def process_group(self, items: list[tuple[slice, slice, int]], *batches: np.ndarray,
                      base: dict[str, Any] | None = None) -> list[np.ndarray]:
        """Upscale up to ``sequences`` chunks of a recurrent model in one forward pass (``run_sequences``):
        item ``(window, keep, n)`` takes the next ``n`` of ``batches`` (as ``process``); every window the same
        length, every ``keep`` the same. Returns each chunk's HR core frames."""
        if base is not None:
            self.configure(**base)
        if self.spec.temporal != "recurrent":
            raise ValueError(f"model {self.spec.name} is not recurrent; its chunks are not run as sequences")
        if len({(w.stop - w.start, k.start, k.stop) for w, k, _ in items}) != 1:  # slices: unhashable
            raise ValueError("chunks run together need equal windows and kept frames")
        seqs, used = [], 0
        for window, _, n in items:
            part = batches[used : used + n]
            used += n
            seqs.append((part[0] if n == 1 else np.concatenate(part))[window])
        if used != len(batches):
            raise ValueError(f"the items name {used} decode batches, {len(batches)} were given")
        keep = items[0][1]

        def passes() -> list[np.ndarray]:  # more than one after an out-of-memory back-off of ``sequences``
            return [hr for i in range(0, len(seqs), self.sequences)
                    for hr in run_sequences(self.forward, seqs[i : i + self.sequences], self.device,
                                            self.sequences, keep, self.dtype)]

        return self._timed(lambda: self._with_backoff(passes, seqs[0].shape[1:3]))

    def process_windows(self, windows: np.ndarray, base: dict[str, Any] | None = None) -> np.ndarray:
        """Upscale one chunk of pre-aligned windows (T, 2r+1, H, W, 3) from the ``Aligner``."""
        if base is not None:
            self.configure(**base)
        if self.spec.temporal != "window":
            raise ValueError(f"model {self.spec.name} is not a window model; it takes no aligned windows")
        if windows.ndim != 5 or windows.shape[1] != 2 * self.spec.radius + 1:
            raise ValueError(
                f"model {self.spec.name} takes windows of {2 * self.spec.radius + 1} frames, "
                f"got shape {windows.shape}"
            )
        return self._timed(lambda: self._with_backoff(
            lambda: run_windows(self.forward, windows, self.device, self.batch, self.dtype),
            windows.shape[2:4]
        ))

    def settings(self) -> dict[str, object]:
        """The model and what its forward pass runs with now (after any back-off)."""
        return {
            "model": self.spec.name,
            "precision": self.precision.name,
            "channels_last": self.precision.channels_last,
            "threads": self.threads,
            "batch": self.batch,
            "sequences": self.sequences,
            "tile": self.tile,
            "bit_depth": self.bit_depth,
            "backoffs": list(self.backoffs),
        }

    def device_name(self) -> str:
        if self.device.type == "cuda":
            return f"{torch.cuda.get_device_name(self.device)} ({self.precision.name})"
        return f"cpu ({torch.get_num_threads()} threads, {self.precision.name})"
