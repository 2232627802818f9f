"""Ray actors kept warm between jobs of one process: at most one parked set, found again by its key.

A finished job parks its actors (``park``); the next job that asks with an equal key takes them (``take``)
and skips their start (a process, imports, weights). Any other key, ``WARM_SECONDS`` unused, or
``release()`` kills them, so they hold their Ray resources (CPU or GPU slots) no longer than that. The key
is the caller's to make: everything the actors were started with, and the Ray session they live in.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

#: seconds parked actors wait for a job before they are killed (0: nothing is parked)
WARM_SECONDS = 60.0


class _Parked:
    """The parked actors, their key, and the timer that kills them unused."""

    def __init__(self, key: Any, actors: list[Any]):
        self.key, self.actors = key, actors
        self.timer = threading.Timer(WARM_SECONDS, _release, args=(self,))
        self.timer.daemon = True


_parked: _Parked | None = None
_lock = threading.Lock()


def kill(actors: Sequence[Any], why: str = "") -> None:
    """``ray.kill`` each actor; one already gone with its Ray session is passed over."""
    import ray

    if why:
        log.debug("%s", why)
    for a in actors:
        try:
            ray.kill(a)
        except Exception as exc:
            log.debug("parked actor already gone: %s", exc)


def _release(which: _Parked | None) -> None:
    global _parked
    with _lock:
        gone = _parked
        if gone is None or (which is not None and gone is not which):
            return
        _parked = None
    gone.timer.cancel()
    kill(gone.actors)


def release() -> None:
    """Kill the parked actors now, if any."""
    _release(None)


def park(key: Any, actors: list[Any]) -> None:
    """Keep ``actors`` for a later ``take(key)``; what was parked before is killed (one set at most)."""
    global _parked
    if WARM_SECONDS <= 0:
        kill(actors)
        return
    release()
    parked = _Parked(key, actors)
    with _lock:
        _parked = parked
    parked.timer.start()


def take(key: Any) -> list[Any] | None:
    """The parked actors if they were parked with ``key`` (they are the caller's now); else None, and the
    parked ones are killed (their slots are wanted)."""
    global _parked
    with _lock:
        parked, _parked = _parked, None
    if parked is None:
        return None
    parked.timer.cancel()
    if parked.key != key:
        kill(parked.actors)
        return None
    return parked.actors
