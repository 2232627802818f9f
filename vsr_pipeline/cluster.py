"""Ray helpers shared by every job: the session (in-process or a cluster), actor error reporting, restarts.

Nothing here knows about videos or models; the executors and the upscaler pool use it.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)


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
    sigterm = signal.getsignal(signal.SIGTERM)
    if address:
        ray.init(address=address, **kwargs)
    else:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        # Ray starts workers at nice 15; our actors do the job's work, so on a busy machine they would lose
        # the CPU to every other process (measured: the upscaler actor got 0.2 cores at load 20).
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(num_cpus=os.cpu_count() or 1, _node_ip_address="127.0.0.1", **kwargs)
    if callable(sigterm) and threading.current_thread() is threading.main_thread():
        # ray.init installs a SIGTERM handler that aborts the process; keep the caller's (the CLI stops
        # cleanly on SIGTERM, like Ctrl-C, leaving a resumable ledger)
        signal.signal(signal.SIGTERM, sigterm)
    try:
        yield
    finally:
        from vsr_pipeline import warm_actors

        warm_actors.release()  # jobs run inside this session (``vsr eval``) may have left upscalers warm
        ray.shutdown()


def restart_policy(retries: int) -> dict[str, int]:
    """Ray restarts a dead worker for each retry; a call is never re-run by Ray (the driver resubmits)."""
    return {"max_restarts": retries + 1, "max_task_retries": 0}


def actor_restarted() -> bool:
    """Whether Ray restarted the actor this runs in after its process died (its restart budget is no longer
    a new actor's); False outside an actor."""
    import warnings

    try:
        import ray

        with warnings.catch_warnings():  # Ray 2.x warns inside its own property (its use of actor_id)
            warnings.simplefilter("ignore", DeprecationWarning)
            context = ray.get_runtime_context() if ray.is_initialized() else None
            return bool(context is not None and context.was_current_actor_reconstructed)
    except Exception:  # pragma: no cover - not in an actor
        return False


def root_cause(exc: BaseException) -> BaseException:
    """The original exception inside Ray's wrappers (RayTaskError.cause, chained)."""
    seen = 0
    while seen < 10:
        cause = getattr(exc, "cause", None)
        if not isinstance(cause, BaseException) or cause is exc:
            break
        exc, seen = cause, seen + 1
    return exc


#: Ray's errors for a worker process, node or object that was lost, or memory or disk that ran out: retried
LOST_WORKER_ERRORS = (
    "RayActorError", "WorkerCrashedError", "NodeDiedError", "LocalRayletDiedError", "ObjectLostError",
    "OutOfMemoryError", "ObjectStoreFullError", "OutOfDiskError", "RaySystemError",
    "PendingCallsLimitExceeded", "RpcError",
)


def is_lost_worker(exc: BaseException) -> bool:
    """Whether ``exc`` is one of Ray's system errors (:data:`LOST_WORKER_ERRORS`, and their subclasses such
    as ``ActorDiedError`` or ``OwnerDiedError``), not an exception raised by a stage's own code."""
    import ray.exceptions

    kinds = tuple(k for k in (getattr(ray.exceptions, n, None) for n in LOST_WORKER_ERRORS)
                  if isinstance(k, type))
    return isinstance(exc, kinds)


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
