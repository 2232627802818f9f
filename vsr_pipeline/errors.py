"""User-facing errors and the exit codes the CLI maps them to (documented in README)."""

from __future__ import annotations

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


class ResourceError(VsrError):
    """The job cannot fit this machine (memory for one frame, disk); the message gives the estimate."""

    exit_code = EXIT_RESOURCES


class InterruptedJob(VsrError):
    """Ctrl-C (SIGINT) or SIGTERM: stopped cleanly, no output file, the ledger kept for resuming."""

    exit_code = EXIT_INTERRUPTED
