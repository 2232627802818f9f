"""User-facing errors and the exit codes the CLI maps them to (documented in README)."""

from __future__ import annotations

import errno

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_MODEL = 4
EXIT_INTERRUPTED = 130


class VsrError(Exception):
    """An error the user can act on; the CLI prints its message on one line."""

    exit_code = EXIT_INTERNAL


class UsageError(VsrError):
    """Bad flags or option values, an output that exists, a scale the model lacks."""

    exit_code = EXIT_USAGE

EXIT_CHUNK = 5
EXIT_RESOURCES = 6


class ChunkFailedError(VsrError):
    """A chunk failed on every attempt; the ledger keeps the chunks that finished (rerun to resume)."""

    exit_code = EXIT_CHUNK


class ChunkError(VsrError):
    """A chunk failed with an error that recurs (not retried); the exit code is that error's own
    (:func:`exit_code_and_message`: 1 for a bug, 4 for a model's); the ledger keeps the finished chunks."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


class WorkerLostError(Exception):
    """A worker process, node or object was lost, or a worker was killed for memory (the executor turns
    Ray's system errors into this, naming them): the chunk may well succeed on another attempt."""


class WorkerRestartingError(WorkerLostError):
    """The stage's actor is being restarted (Ray's ``ActorUnavailableError``): the chunk is resubmitted once
    it is back, without using up an attempt (a restart loads the model again: seconds on a slow machine)."""


class DecoderFailedError(Exception):
    """A decoder's process or node was lost, or it met an error of the moment (I/O): the job starts a new
    decoder at its first unfinished chunk (``vsr_pipeline.executors.run_decoding``), ``--retries`` times."""


#: OSErrors that recur: a path that is wrong, a full or read-only disk
_LASTING_OS_ERRORS = (
    FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError,
)
_LASTING_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def is_transient(exc: BaseException) -> bool:
    """Whether a chunk that failed with ``exc`` may succeed when run again, so it is retried: a lost
    worker, node or object (:class:`WorkerLostError`), memory or I/O trouble of the moment (MemoryError,
    OSError such as ConnectionError or TimeoutError, but not a wrong path or a full disk). Anything else
    recurs (bad input, an encoder refusing its frames, a shape mismatch, a ValueError or TypeError in a
    stage): the job fails at once, without running the model again."""
    if isinstance(exc, _LASTING_OS_ERRORS) or getattr(exc, "errno", None) in _LASTING_ERRNOS:
        return False
    return isinstance(exc, (WorkerLostError, MemoryError, OSError))


class ResourceError(VsrError):
    """The job cannot fit this machine (memory for one frame, disk); the message gives the estimate."""

    exit_code = EXIT_RESOURCES


class InterruptedJob(VsrError):
    """Ctrl-C (SIGINT) or SIGTERM: stopped cleanly, no output file, the ledger kept for resuming."""

    exit_code = EXIT_INTERRUPTED


def exit_code_and_message(exc: BaseException) -> tuple[int, str]:
    """Map an exception to (exit code, one-line message)."""
    cause = getattr(exc, "cause", None)  # ray.exceptions.RayTaskError / RayActorError carry the original
    if cause is not None and isinstance(cause, BaseException) and cause is not exc:
        return exit_code_and_message(cause)
    if isinstance(exc, VsrError):
        return exc.exit_code, str(exc)
    module = type(exc).__module__
    if module.startswith("vsr_pipeline.media"):
        return EXIT_INPUT, str(exc)
    if module.startswith("models") and isinstance(exc, ValueError):
        return EXIT_MODEL, str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    return EXIT_INTERNAL, f"internal error: {type(exc).__name__}: {exc} (run with --debug for details)"
