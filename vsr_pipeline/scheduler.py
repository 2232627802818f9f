"""The one chunk scheduler: files, each video of a batch, and live streams all run through ``run_chunks``.

A *source* yields :class:`ChunkWork` in order (a chunk, its decoded frames as the executor's handles, their
pts): :func:`decoded_chunks` asks decoders for fixed-size batches (files), ``vsr_pipeline.streaming`` cuts
frames into chunks as they arrive (live streams). An *executor* (``vsr_pipeline.executors``: Ray actors or
local threads) runs each chunk's upscale and then its encode; the scheduler keeps at most ``max_inflight``
chunks in flight (backpressure: memory stays flat whatever the length), hands each finished chunk to
``on_done`` (the ledger of a file job), and resubmits a failed chunk up to ``retries`` times. An executor
with ``sequences`` > 1 (a recurrent model, ``--sequences``) gets neighbouring chunks of equal shape that many
at a time through its ``submit_group`` (``vsr_pipeline.plan.grouped``).

Errors: a ``VsrError`` (the user's to fix: bad input, an encoder refusing its frames) ends the run at once.
So does a failure of the source's decoders (``SeekError``, ``DecoderFailedError``: the job goes on with new
ones, ``vsr_pipeline.executors.run_decoding``), once the chunks in flight have finished. Retries are for
failures that need not recur (``vsr_pipeline.errors.is_transient``: a dead worker, a lost node or object, an
out-of-memory kill, I/O trouble of the moment); a chunk that keeps meeting them is raised as
``ChunkFailedError`` naming its frames. Any other exception of a stage (a ValueError, TypeError, shape
mismatch, ...) would fail the same way again: it ends the run at once as ``ChunkError`` with the exception's
own exit code, without running the model again. ``cancel`` set by another thread stops the run like Ctrl-C
(``KeyboardInterrupt``).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from vsr_pipeline.errors import (
    EXIT_INTERNAL,
    ChunkError,
    ChunkFailedError,
    DecoderFailedError,
    VsrError,
    WorkerRestartingError,
    exit_code_and_message,
    is_transient,
)
from vsr_pipeline.media.seek import SeekError
from vsr_pipeline.plan import Chunk, batches_for, grouped

log = logging.getLogger(__name__)

#: a chunk whose actor is restarting is resubmitted every RESTART_POLL_S seconds, for at most RESTART_WAIT_S,
#: before such failures count as attempts: a restarted upscaler loads torch and the model again, which took
#: over the 0.75 s the retries used to span on a slow 2-core machine (the kill-and-restart test failed there)
RESTART_POLL_S = 0.5
RESTART_WAIT_S = 120.0


@dataclass
class ChunkWork:
    """One chunk to compute: its frames are ``batches`` (handles) concatenated, then ``[window]``."""

    chunk: Chunk
    window: slice
    batches: list[Any]
    pts: list[int | None]
    attempt: int = 1
    #: seconds waited so far for its actor to come back from a restart (attempts not used up)
    restart_wait_s: float = 0.0


class Executor(Protocol):
    """Where the stages run. Handles are the executor's own (Ray object references, futures)."""

    def submit(self, work: ChunkWork) -> Any:
        """Start the chunk's upscale and then its encode; a handle to the encode's (segment, frames)."""

    def wait(self, handles: list[Any], timeout: float | None) -> list[Any]:
        """The handles of ``handles`` that are done (at least one, unless ``timeout`` passes first)."""

    def result(self, handle: Any) -> Any:
        """The finished handle's value; raises the stage's own exception (unwrapped)."""


class Decoders(Protocol):
    """Decoders of one input, asked for fixed-size batches (``vsr_pipeline.executors``)."""

    def read(self, b: int, n: int) -> tuple[Any, Any]:
        """Handles to batch ``b``'s ``n`` frames and their pts (sequential decoders: in order)."""

    def skip(self, n: int) -> Any:
        """Handle to decoding and dropping the next batch, or None where decoders seek."""

    def fetch(self, handle: Any) -> Any:
        """The value of a handle (pts lists)."""


def decoded_chunks(chunks: list[Chunk], todo: set[int], batch: int, decoders: Decoders,
                   tail_frames: int) -> Iterator[ChunkWork]:
    """Work for the chunks in ``todo`` from fixed-size decode batches of ``batch`` frames, asked for just in
    time. Every frame is decoded once (a chunk's padding is shared with its neighbours' batches); frames of
    chunks not in ``todo`` (a resumed job's) are decoded and dropped, up to ``tail_frames``, so every
    undecodable frame is still reported."""
    frames_h: dict[int, Any] = {}
    pts_h: dict[int, Any] = {}
    skips: list[Any] = []
    next_batch = 0
    for c in chunks:
        if c.index not in todo:
            continue
        need = batches_for(c, batch)
        while next_batch <= need[-1]:
            if next_batch < need[0]:
                skips.append(decoders.skip(batch))
            else:
                frames_h[next_batch], pts_h[next_batch] = decoders.read(next_batch, batch)
            next_batch += 1
        for old in [b for b in frames_h if b < need[0]]:
            del frames_h[old], pts_h[old]
        offset = need[0] * batch
        window = slice(c.read_start - offset, c.read_stop - offset)
        pts = [p for b in need for p in decoders.fetch(pts_h[b])][window][c.keep]
        if len(pts) != c.core:
            raise RuntimeError(f"decoder returned too few frames for frames {c.start}-{c.stop - 1}")
        yield ChunkWork(c, window, [frames_h[b] for b in need], pts)
    while next_batch * batch < tail_frames:
        skips.append(decoders.skip(batch))
        next_batch += 1
    for s in skips:
        if s is not None:
            decoders.fetch(s)


def run_chunks(
    work: Iterable[ChunkWork],
    executor: Executor,
    *,
    max_inflight: int = 2,
    retries: int = 0,
    fatal: tuple[type[BaseException], ...] = (VsrError, SeekError),
    transient: Callable[[BaseException], bool] = is_transient,
    on_done: Callable[[ChunkWork, Any], None] | None = None,
    cancel: threading.Event | None = None,
    progress: bool = False,
    total: int | None = None,
    initial: int = 0,
    desc: str = "",
    stats: dict[str, int] | None = None,
) -> dict[str, int]:
    """Run every chunk of ``work`` through ``executor``; returns counts: ``computed`` chunks,
    ``computed_frames`` and ``retries`` (added to ``stats`` as they happen where given: kept when the run
    raises). ``on_done(work, result)`` follows each finished chunk, in the order they finish (Ray: the
    encoder takes one caller's chunks in submission order). A failure of a class in
    ``fatal`` is raised as it is; one that is ``transient`` is retried, then ``ChunkFailedError``; any other
    is ``ChunkError`` at once (it would recur)."""
    from tqdm import tqdm

    stats = {"computed": 0, "computed_frames": 0, "retries": 0} if stats is None else stats
    pending: dict[Any, ChunkWork] = {}

    def submit(job: ChunkWork) -> None:
        log.debug("chunk %d submitted (attempt %d)", job.chunk.index, job.attempt)
        pending[executor.submit(job)] = job

    with tqdm(total=total, initial=initial, unit="frame", file=sys.stderr, disable=not progress,
              dynamic_ncols=True, desc=desc) as bar:

        def wait_one() -> None:
            ready: list[Any] = []
            while not ready:
                if cancel is not None and cancel.is_set():
                    raise KeyboardInterrupt
                ready = executor.wait(list(pending), None if cancel is None else 0.5)
            job = pending.pop(ready[0])
            c = job.chunk
            try:
                result = executor.result(ready[0])
            except fatal:
                raise
            except Exception as exc:
                if isinstance(exc, WorkerRestartingError) and job.restart_wait_s < RESTART_WAIT_S:
                    log.debug("chunk %d: its actor is restarting; resubmitted in %.1f s", c.index,
                              RESTART_POLL_S)
                    if job.restart_wait_s == 0:  # a failed attempt: counted once per restart, not per poll
                        stats["retries"] += 1
                    time.sleep(RESTART_POLL_S)
                    job.restart_wait_s += RESTART_POLL_S
                    submit(job)
                    return
                text = str(exc).strip()
                reason = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"
                where = f"chunk {c.index} (frames {c.start}-{c.stop - 1})"
                if not transient(exc):
                    code = exit_code_and_message(exc)[0]
                    bug = " (internal error: run with --debug for details)" if code == EXIT_INTERNAL else ""
                    raise ChunkError(f"{where} failed: {reason}{bug}; not retried, it would fail the same "
                                     f"way; finished chunks are kept", code) from exc
                if job.attempt > retries:
                    raise ChunkFailedError(f"{where} failed {job.attempt} times, last: {reason}; finished "
                                           f"chunks are kept, rerun to resume") from None
                log.warning("chunk %d (frames %d-%d) failed (%s); retrying", c.index, c.start, c.stop - 1,
                            reason)
                time.sleep(min(2.0, 0.25 * job.attempt))
                job.attempt += 1
                stats["retries"] += 1
                submit(job)
                return
            if on_done is not None:
                on_done(job, result)
            stats["computed"] += 1
            stats["computed_frames"] += c.core
            bar.update(c.core)

        # an executor running a recurrent model's chunks as several sequences takes them that many at a
        # time, neighbours of equal shape (a resubmitted one goes alone: the engine pads every forward pass
        # to the same count, so its output is the same)
        group = max(1, getattr(executor, "sequences", 1))
        try:
            for jobs in grouped(work, group, lambda w: w.chunk.shape):
                if len(jobs) == 1:
                    submit(jobs[0])
                else:
                    for handle, job in zip(executor.submit_group(jobs), jobs, strict=True):  # type: ignore[attr-defined]
                        pending[handle] = job
                while len(pending) >= max(1, max_inflight) * group:
                    wait_one()
        except (SeekError, DecoderFailedError):
            # the decoders failed and the job goes on with new ones: chunks already submitted have their
            # frames, so they finish and are recorded first, not computed again
            while pending:
                wait_one()
            raise
        while pending:
            wait_one()
    return stats
