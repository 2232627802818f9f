"""Executors: where the scheduler's stages run (``vsr_pipeline.scheduler.Executor``).

- :class:`RayExecutor`: the file and batch pipeline. Decoder, (Motion, Aligner,) Upscaler and Encoder are Ray
  actors; frames move between them as object references, never through the driver. The upscalers are an
  ``UpscalerPool`` (one job's own, or shared by every video of a batch).
- :class:`LocalExecutor`: the live stream. The inference engine and the encoder each run on one thread of this
  process (a forward pass and an encode overlap; each keeps its chunks in order), no Ray, lowest latency.

Both take the same :class:`~vsr_pipeline.scheduler.ChunkWork` and return the encoder's ``(segment, frames)``.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from vsr_pipeline.cluster import is_lost_worker, root_cause
from vsr_pipeline.errors import (
    ChunkFailedError,
    DecoderFailedError,
    WorkerLostError,
    WorkerRestartingError,
    is_transient,
)
from vsr_pipeline.media import VideoInfo
from vsr_pipeline.media.reader import ReadSettings
from vsr_pipeline.media.seek import SeekError
from vsr_pipeline.scheduler import ChunkWork
from workers.decoder import assign_batches
from workers.encoder import SegmentTarget

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class RayDecoders:
    """Decoder actors of one input: ``owners`` gives each decode batch's decoder (parallel, seeking), or is
    None for one sequential decoder."""

    actors: list[Any]
    owners: list[int] | None = None
    #: ``start_decoders``'s arguments (input, batch, read settings): for ``restart``
    source: tuple[Any, ...] = ()

    def read(self, b: int, n: int) -> tuple[Any, Any]:
        if self.owners is None:
            return self.actors[0].read.options(num_returns=2).remote(n)  # type: ignore[no-any-return]
        return self.actors[self.owners[b]].read_batch.options(num_returns=2).remote(b, n)  # type: ignore[no-any-return]

    def skip(self, n: int) -> Any:
        """Sequential only: every frame is decoded, so every undecodable one is reported."""
        return self.actors[0].skip.remote(n) if self.owners is None else None

    def fetch(self, handle: Any) -> Any:
        """A read's value. A lost decoder (its process or node) or one that met an error of the moment
        (``is_transient``: I/O) raises ``DecoderFailedError``: new decoders can read on."""
        import ray
        from ray.exceptions import RayError

        try:
            return ray.get(handle)
        except RayError as exc:
            cause = root_cause(exc)
            if is_lost_worker(cause) or is_transient(cause):
                text = (str(cause).strip().splitlines() or [""])[0]
                raise DecoderFailedError(f"{type(cause).__name__}: {text}") from exc
            raise

    def corrupt(self) -> list[dict[str, Any]]:
        """Frames found undecodable, or decoded from damaged data (``concealed``), by index (index, pts,
        time_s, reason)."""
        found = {c["index"]: c for a in self.actors for c in self.fetch(a.corrupt.remote())}
        return [found[k] for k in sorted(found)]

    def timestamps(self) -> dict[str, Any]:
        """Timestamp repairs over all decoders (``Decoder.timestamps``): counts summed, first indices the
        lowest, the ``decimated`` frames of all."""
        each = self.fetch([a.timestamps.remote() for a in self.actors])
        merged = {k: sum(t[k] for t in each) for k in ("repaired", "renumbered")}
        for k in ("first", "renumbered_first"):
            merged[k] = min((t[k] for t in each if t[k] is not None), default=None)
        merged["decimated"] = sorted({i for t in each for i in t["decimated"]})
        return merged | {k: each[0][k] for k in ("step", "deinterlaced", "field_matched")}

    def kill(self) -> None:
        import ray

        for a in self.actors:
            ray.kill(a)

    def restart(self) -> None:
        """Kill these decoders; one new decoder reads the same input sequentially from its first frame."""
        self.kill()
        info, batch, settings = self.source
        # a part (``--start``) is then reached by decoding up to it: a seek to it may be what failed
        new = start_decoders(info, batch, replace(settings, seek_to_span=False), 1, parallel=False)
        self.actors, self.owners = new.actors, new.owners

    def finish(self, keep: bool) -> None:
        """The job is over: close the input and hand the decoders back idle for a later job (``keep``: it
        ended well and Ray outlives it), or kill them."""
        import ray

        from vsr_pipeline import warm_actors
        from workers import decoder

        if keep:
            try:
                ray.get([a.close.remote() for a in self.actors], timeout=warm_actors.IDLE_CHECK_S)
                warm_actors.give(idle_key(decoder.Decoder, {"num_cpus": 0}), self.actors)
                return
            except Exception as exc:
                log.debug("decoders not kept: %s", exc)
        self.kill()


def idle_key(cls: type, options: dict[str, Any]) -> tuple[Any, ...]:
    """What a job must ask for to take an idle decoder or encoder (``warm_actors.take_idle``): the Ray session
    first (the driver's node and job: job ids start again at 1 in every session), then the actor class (a
    test may replace it) and its Ray options."""
    import ray

    ctx = ray.get_runtime_context()
    return (ctx.get_node_id(), ctx.get_job_id()), cls, tuple(sorted(options.items()))


def start_decoders(info: VideoInfo, batch: int, settings: ReadSettings, count: int,
                   parallel: bool = True) -> RayDecoders:
    """``count`` seeking decoder actors where seeking is exact for this input, else one sequential (inputs
    whose timestamps need repair, or interlaced ones being deinterlaced, among others). Idle decoders an
    earlier job handed back are taken first (``RayDecoders.finish``). ``settings``: how each reads
    (``FrameReader``'s arguments: fps, on_corrupt, deinterlace, deep, crop)."""
    from vsr_pipeline.media.seek import scan, seek_problem

    args = (str(info.path), settings)
    source = (info, batch, settings)
    if parallel and count > 1 and settings.span is None:  # a part of the input: one decoder, sequential
        index = scan(info.path)
        problem = seek_problem(index, info, settings.on_corrupt, settings.deinterlace, settings.field_match)
        if problem is None:
            owners = assign_batches(info.frames, batch, count, index.keyframes)
            return RayDecoders(_decoders(max(owners, default=0) + 1, args), owners, source)
        log.info("%s: decoding sequentially (%s)", info.path, problem)
    return RayDecoders(_decoders(1, args), None, source)


def run_decoding(run: Callable[[RayDecoders, set[int]], T], decoders: RayDecoders,
                 todo: Callable[[], set[int]], retries: int) -> tuple[T, int]:
    """``run(decoders, todo())``'s value once it ends without a decoder failure, and how many times the
    decoders failed and the job went on.

    Where seeking proved inexact (``SeekError``) or a decoder failed (``DecoderFailedError``: a lost process
    or node, I/O trouble of the moment), the decoders ``restart``: one new decoder, sequential (every frame
    is decoded again up to the first unfinished chunk, so the corrupt-frame and timestamp reports stay
    whole, even for a failure while ``run`` asked for them), and the chunks not yet done run on it. Decoder
    failures count against ``retries``; one more is ``ChunkFailedError`` (exit 5, finished chunks kept).
    The caller finishes ``decoders``."""
    failures = 0
    while True:
        try:
            return run(decoders, todo()), failures
        except SeekError as exc:  # not exact after all
            log.warning("%s; decoding the rest sequentially", root_cause(exc))
        except DecoderFailedError as exc:
            failures += 1
            if failures > retries:
                raise ChunkFailedError(f"decoding failed {failures} times, last: {exc}; finished chunks are "
                                       f"kept, rerun to resume") from None
            log.warning("a decoder failed (%s); a new one reads on from the first unfinished chunk", exc)
        decoders.restart()


def _decoders(n: int, args: tuple[Any, ...]) -> list[Any]:
    """``n`` Decoder actors reading ``args``'s input: idle ones opened on it, then new ones."""
    import ray

    from vsr_pipeline import warm_actors
    from workers import decoder

    options = {"num_cpus": 0}
    idle = warm_actors.take_idle(idle_key(decoder.Decoder, options), n, lambda a: a.close.remote())
    for a in idle:  # an error opening the input is raised by the first read
        a.open.remote(*args)
    make = ray.remote(**options)(decoder.Decoder)
    return idle + [make.remote(*args) for _ in range(n - len(idle))]


def start_encoder(target: SegmentTarget, restarts: dict[str, int]) -> tuple[Any, Any]:
    """An Encoder actor (an idle one an earlier job handed back, else a new one; ``finish_encoder``) and a
    reference that raises when ``target`` cannot be encoded on its node."""
    import ray

    from vsr_pipeline import warm_actors
    from vsr_pipeline.cluster import reporting_errors
    from workers import encoder as module

    options = {"num_cpus": 0, **restarts}
    idle = warm_actors.take_idle(idle_key(module.Encoder, options), 1, lambda a: a.ready.remote())
    actor = idle[0] if idle else ray.remote(**options)(reporting_errors(module.Encoder)).remote()
    return actor, actor.check.remote(target)


def finish_encoder(actor: Any, restarts: dict[str, int], keep: bool) -> None:
    """The job is over: hand the encoder back idle (``keep``: it ended well and Ray outlives it) unless Ray
    restarted it (its restart budget is spent in part), else kill it."""
    import ray

    from vsr_pipeline import warm_actors
    from workers import encoder as module

    if keep:
        try:
            if not ray.get(actor.idle.remote(), timeout=warm_actors.IDLE_CHECK_S):
                warm_actors.give(idle_key(module.Encoder, {"num_cpus": 0, **restarts}), [actor])
                return
        except Exception as exc:
            log.debug("encoder not kept: %s", exc)
    ray.kill(actor)


@dataclass
class RayExecutor:
    """Actor handles of one job (``upscalers`` an ``UpscalerPool``); ``motion`` and ``aligner`` only with
    ``--align``."""

    upscalers: Any
    encoder: Any
    #: the job's segments: sent with every chunk (an encoder actor holds no job of its own)
    target: SegmentTarget
    motion: Any = None
    aligner: Any = None
    #: a recurrent model's chunks per forward pass (``ModelSettings.sequences``): the scheduler hands over
    #: that many at a time (``submit_group``)
    sequences: int = 1
    #: actors' ``ready()`` references not yet waited for: waited for (raising a constructor's error) before
    #: the first chunk goes to them
    ready: list[Any] = field(default_factory=list)
    #: the job's output bits per sample (the upscalers' HR frames: uint16 above 8); None: the pool's
    bit_depth: int | None = None

    def wait_ready(self) -> None:
        import ray

        refs, self.ready = self.ready, []
        if refs:
            ray.get(refs)

    def submit(self, work: ChunkWork) -> Any:
        self.wait_ready()
        window, keep, batches = work.window, work.chunk.keep, work.batches
        if self.motion is None:
            hr = self.upscalers.process(window, keep, batches, self.bit_depth)
        else:
            flows = self.motion.process.remote(window, keep, *batches)
            aligned = self.aligner.process.remote(window, keep, flows, *batches)
            hr = self.upscalers.process_windows(aligned, self.bit_depth)
        return self.encoder.write_segment.remote(work.chunk.index, hr, work.pts, self.target)

    def submit_group(self, works: list[ChunkWork]) -> list[Any]:
        """Several chunks of equal shape through one forward pass of one upscaler (a recurrent model's
        sequences), then each to the encoder; their handles in order."""
        if len(works) == 1:
            return [self.submit(works[0])]
        self.wait_ready()
        items = [(w.window, w.chunk.keep, len(w.batches)) for w in works]
        hrs = self.upscalers.process_group(items, [b for w in works for b in w.batches], self.bit_depth)
        return [self.encoder.write_segment.remote(w.chunk.index, hr, w.pts, self.target)
                for w, hr in zip(works, hrs, strict=True)]

    def wait(self, handles: list[Any], timeout: float | None) -> list[Any]:
        import ray

        ready, _ = ray.wait(handles, num_returns=1, timeout=timeout)
        return list(ready)

    def result(self, handle: Any) -> Any:
        """The encoder's (segment, frames); a stage's own exception unwrapped from Ray's, and Ray's system
        errors (a dead actor or node, a lost object, an out-of-memory kill) as ``WorkerLostError``."""
        import ray
        from ray.exceptions import RayError

        try:
            return ray.get(handle)
        except RayError as exc:
            cause = root_cause(exc)
            if is_lost_worker(cause):
                text = (str(cause).strip().splitlines() or [""])[0]
                restarting = type(cause).__name__ == "ActorUnavailableError"
                kind = WorkerRestartingError if restarting else WorkerLostError
                raise kind(f"{type(cause).__name__}: {text}") from None
            if cause is exc:
                raise
            raise cause from None


def engine_thread() -> cf.ThreadPoolExecutor:
    """The one thread an in-process engine is built on and runs on (``LocalExecutor``'s ``upscale``).

    Build it there too, not on the caller's thread: a torch (OpenMP) forward pass on one thread after
    another thread ran parallel work of its own (building the model moves its weights) leaves two OpenMP
    teams alive, more threads than cores, and libgomp then throttles its spin-waiting, so every parallel
    region wakes sleeping threads: BasicVSR bf16 ran 1.32x slower, fp32 channels-last 1.11x (2 cores,
    ``benchmarks/speed_engine_thread.py``). Its large buffers need ``vsr_pipeline.heap.single_arena`` too."""
    return cf.ThreadPoolExecutor(1, thread_name_prefix="vsr-upscale")


class LocalExecutor:
    """The engine (``vsr_pipeline.engine.Engine``) and an encoder (anything with ``write_segment(index,
    frames, pts)``) on one thread each; ``upscale``: the engine's thread, where it was built
    (``engine_thread``). ``close`` waits for what was submitted."""

    def __init__(self, engine: Any, encoder: Any, upscale: cf.ThreadPoolExecutor | None = None):
        self.engine, self.encoder = engine, encoder
        self._upscale = upscale or engine_thread()
        self._encode = cf.ThreadPoolExecutor(1, thread_name_prefix="vsr-encode")

    def submit(self, work: ChunkWork) -> cf.Future[Any]:
        hr = self._upscale.submit(self.engine.process, work.window, work.chunk.keep, *work.batches)
        return self._encode.submit(lambda: self.encoder.write_segment(work.chunk.index, hr.result(),
                                                                      work.pts))

    def wait(self, handles: list[Any], timeout: float | None) -> list[Any]:
        done, _ = cf.wait(handles, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return [h for h in handles if h in done]

    def result(self, handle: Any) -> Any:
        return handle.result()

    def close(self) -> None:
        self._upscale.shutdown(wait=True)
        self._encode.shutdown(wait=True)
