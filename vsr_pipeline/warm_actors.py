"""Ray actors kept warm between jobs of one process, found again by a key the caller makes (everything the
actors were started with, and the Ray session they live in). A later job skips their start: a process,
imports, and for an upscaler its weights.

- Upscalers: at most one parked set. A finished job parks its actors (``park``); the next job that asks with
  an equal key, or one the caller accepts (it adapts them: another model loaded in the same processes), takes
  them (``take``). Any other key, ``WARM_SECONDS`` unused, or ``release()`` kills them, so they hold their
  Ray resources (CPU or GPU slots) no longer than that.
- Idle decoders and encoders (``give``, ``take_idle``): actors that hold no slot and take each job's input
  or output with their calls, so any number of jobs, one after another or side by side (``vsr batch``),
  share them. Their key is a tuple whose first element is the Ray session: those of another session are
  killed when a key is asked for (the caller shut Ray down without ``release()``). At most ``IDLE_MAX`` of
  a key are kept; ``WARM_SECONDS`` after it was given back, an unused one is killed, and ``release()``
  kills them all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)

#: seconds parked actors wait for a job before they are killed (0: nothing is parked)
WARM_SECONDS = 60.0
#: idle actors of one key kept at most (a decoder or encoder: ~200 MB resident when idle, measured)
IDLE_MAX = 16
#: seconds a taken idle actor has to answer before it is taken for dead
IDLE_CHECK_S = 30.0


class Parked:
    """The parked actors, their key, what the caller kept with them (``payload``), and the timer that kills
    them unused."""

    def __init__(self, key: Any, actors: list[Any], payload: Any = None):
        self.key, self.actors, self.payload = key, actors, payload
        self.timer = threading.Timer(WARM_SECONDS, _release, args=(self,))
        self.timer.daemon = True


_parked: Parked | None = None
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


def _release(which: Parked | None) -> None:
    global _parked
    with _lock:
        gone = _parked
        if gone is None or (which is not None and gone is not which):
            return
        _parked = None
    gone.timer.cancel()
    kill(gone.actors)


def release() -> None:
    """Kill the parked upscalers and every idle actor now."""
    _release(None)
    global _idle_timer
    with _lock:
        gone = [a for entries in _idle.values() for _, a in entries]
        _idle.clear()
        timer, _idle_timer = _idle_timer, None
    if timer is not None:
        timer.cancel()
    kill(gone)


def park(key: Any, actors: list[Any], payload: Any = None) -> None:
    """Keep ``actors`` (and ``payload``) for a later ``take(key)``; what was parked before is killed (one set
    at most)."""
    global _parked
    if WARM_SECONDS <= 0:
        kill(actors)
        return
    _release(None)
    parked = Parked(key, actors, payload)
    with _lock:
        _parked = parked
    parked.timer.start()


def take(key: Any, accepts: Callable[[Any], bool] | None = None) -> Parked | None:
    """The parked actors (they are the caller's now) if they were parked with ``key`` or with a key
    ``accepts`` returns True for (the caller adapts them to ``key``); else None, and the parked ones are
    killed (their slots are wanted)."""
    global _parked
    with _lock:
        parked, _parked = _parked, None
    if parked is None:
        return None
    parked.timer.cancel()
    if parked.key != key and (accepts is None or not accepts(parked.key)):
        kill(parked.actors)
        return None
    return parked


_idle: dict[Any, list[tuple[float, Any]]] = {}  # key -> (when given back, actor), the latest last
_idle_timer: threading.Timer | None = None


def give(key: Any, actors: Sequence[Any]) -> None:
    """Keep ``actors`` idle for ``take_idle(key, ...)``: beyond ``IDLE_MAX`` of the key (the oldest first), or
    with ``WARM_SECONDS`` 0, they are killed."""
    if WARM_SECONDS <= 0:
        kill(actors)
        return
    now = time.monotonic()
    with _lock:
        entries = _idle.setdefault(key, [])
        entries.extend((now, a) for a in actors)
        surplus = entries[:-IDLE_MAX] if len(entries) > IDLE_MAX else []
        del entries[:len(surplus)]
        if _idle_timer is None:
            _schedule(WARM_SECONDS)
    kill([a for _, a in surplus])


def take_idle(key: Any, n: int, check: Callable[[Any], Any]) -> list[Any]:
    """Up to ``n`` idle actors of ``key`` (the latest given back first), each made ready for its new job by
    ``check(actor)``: a Ray reference that must resolve within ``IDLE_CHECK_S``. One whose check fails (it
    died while idle) is killed and left out."""
    import ray

    with _lock:
        stale = [a for k in [k for k in _idle if k[0] != key[0]] for _, a in _idle.pop(k)]
        entries = _idle.get(key, [])
        taken = [a for _, a in entries[max(0, len(entries) - n):]] if n > 0 else []
        del entries[len(entries) - len(taken):]
    if stale:
        kill(stale, "idle actors of an earlier Ray session")
    if not taken:
        return []
    refs = [check(a) for a in taken]
    ok: list[Any] = []
    for actor, ref in zip(taken, refs, strict=True):
        try:
            ray.get(ref, timeout=IDLE_CHECK_S)
            ok.append(actor)
        except Exception as exc:
            kill([actor], f"idle actor unusable ({exc}): starting a new one")
    return ok


def idle_count(key: Any | None = None) -> int:
    """Idle actors kept (of ``key``, or of every key)."""
    with _lock:
        return sum(len(v) for k, v in _idle.items() if key is None or k == key)


def _schedule(delay: float) -> None:
    """Start the timer that kills expired idle actors (``_lock`` held)."""
    global _idle_timer
    _idle_timer = threading.Timer(max(0.05, delay), _expire_idle)
    _idle_timer.daemon = True
    _idle_timer.start()


def _expire_idle() -> None:
    """Kill the idle actors given back ``WARM_SECONDS`` ago or more; wait again for the rest."""
    global _idle_timer
    now = time.monotonic()
    with _lock:
        _idle_timer = None
        expired = []
        for entries in _idle.values():
            old = [e for e in entries if now - e[0] >= WARM_SECONDS]
            expired += [a for _, a in old]
            entries[:] = [e for e in entries if now - e[0] < WARM_SECONDS]
        oldest = min((e[0] for entries in _idle.values() for e in entries), default=None)
        if oldest is not None:
            _schedule(oldest + WARM_SECONDS - now)
    kill(expired)
