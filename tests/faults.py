"""Fault injection for tests and benchmarks: an ``Encoder`` that fails on purpose, put in place of
``workers.encoder.Encoder`` (the class a job's encoder actor is made from) with monkeypatch. Product code
reads no variable for it.

A spec is ``MODE:K[:MARKER]`` or ``delay:SECONDS``:

- ``raise:K[:MARKER]``: chunk ``K``'s ``write_segment`` raises ``RuntimeError("injected fault ...")`` once;
- ``exit:K[:MARKER]``: the encoder's process dies at chunk ``K`` (``os._exit(17)``: a worker crash) once;
- ``always:K``: chunk ``K`` raises on every attempt;
- ``delay:SECONDS``: every segment takes that much longer (to interrupt a job mid-way).

"Once" is remembered in the file ``MARKER`` (created when the fault fires), so a restarted actor does not
repeat it; without a marker ``raise``/``exit`` fire on every attempt, like ``always``.

    install(monkeypatch, "raise:1:/tmp/fired")  # in a test; undone with the monkeypatch
    with injected("always:3"): ...              # for part of a test
    python -m tests.fault_cli delay:2 -- upscale in.mp4 -o out.mp4 ...  # the CLI in a subprocess

The class is made in the driver and travels to the actor's process pickled: Ray pickles an actor class with
its cloudpickle, by reference when the class's module can be imported there. ``tests`` is not an installed
package, so this module is registered to be pickled by value (its code travels with the class).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import workers.encoder
from workers.encoder import Encoder

MODES = ("raise", "exit", "always", "delay")


@dataclass(frozen=True)
class Fault:
    """A parsed spec: ``mode``, the chunk ``index`` (raise/exit/always), ``seconds`` (delay), ``marker``."""

    spec: str
    mode: str
    index: int = -1
    seconds: float = 0.0
    marker: str | None = None

    @classmethod
    def parse(cls, spec: str) -> Fault:
        mode, _, rest = spec.partition(":")
        if mode not in MODES or not rest:
            raise ValueError(f"fault spec {spec!r}: expected raise|exit|always:K[:MARKER] or delay:SECONDS")
        if mode == "delay":
            return cls(spec, mode, seconds=float(rest))
        k, _, marker = rest.partition(":")
        if mode == "always" and marker:
            raise ValueError(f"fault spec {spec!r}: always:K takes no marker")
        return cls(spec, mode, index=int(k), marker=marker or None)

    def fire(self, index: int) -> None:
        """Called at the start of chunk ``index``'s ``write_segment``, inside the encoder actor."""
        if self.mode == "delay":
            time.sleep(self.seconds)
            return
        if index != self.index:
            return
        if self.mode != "always" and self.marker is not None:
            if os.path.exists(self.marker):
                return
            Path(self.marker).touch()
        if self.mode == "exit":
            os._exit(17)
        raise RuntimeError(f"injected fault at chunk {index} ({self.spec})")


def faulty_encoder(spec: str) -> type[Encoder]:
    """An ``Encoder`` subclass whose ``write_segment`` injects the fault ``spec`` first."""
    fault = Fault.parse(spec)

    class FaultyEncoder(Encoder):
        FAULT = fault

        def write_segment(
            self, index: int, frames: np.ndarray, pts: Sequence[int | None]
        ) -> tuple[str | None, int]:
            self.FAULT.fire(index)
            return super().write_segment(index, frames, pts)

    # the actor's process title stays ``ray::Encoder`` (tools find the stages by it)
    FaultyEncoder.__name__ = "Encoder"
    return FaultyEncoder


def install(monkeypatch: Any, spec: str) -> type[Encoder]:
    """Make every job started from now on (until ``monkeypatch`` is undone) use an encoder injecting ``spec``.

    ``monkeypatch`` is pytest's fixture, or a ``pytest.MonkeyPatch()`` outside tests."""
    cls = faulty_encoder(spec)
    monkeypatch.setattr(workers.encoder, "Encoder", cls)
    return cls


@contextmanager
def injected(spec: str) -> Iterator[type[Encoder]]:
    """``install`` for the ``with`` block only."""
    import pytest

    with pytest.MonkeyPatch.context() as mp:
        yield install(mp, spec)


def _register_by_value() -> None:
    """Pickle this module's classes and functions by value: the actor's process need not import it."""
    module = sys.modules[__name__]
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(module)


_register_by_value()
