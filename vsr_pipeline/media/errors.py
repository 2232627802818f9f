"""The one exception type of :mod:`vsr_pipeline.media`."""

from __future__ import annotations

from vsr_pipeline.errors import EXIT_INPUT, VsrError


class MediaError(VsrError):
    """Bad or unusable media (missing, not a video, undecodable, output exists): one readable line."""

    exit_code = EXIT_INPUT


def short_reason(exc: BaseException) -> str:
    """A one-line reason from a PyAV/OS exception, without file names or tracebacks."""
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    reason = str(reason).splitlines()[0].strip()
    return reason.rstrip(":").strip() or type(exc).__name__
