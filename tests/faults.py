"""Fault injection for tests and benchmarks: an ``Encoder`` (or ``Decoder``) that fails on purpose, put in
place of ``workers.encoder.Encoder`` (``workers.decoder.Decoder``: the classes a job's actors are made from)
with monkeypatch. Product code reads no variable for it.

A spec is ``MODE:K[:MARKER]`` or ``delay:SECONDS``:

- ``raise:K[:MARKER]``: chunk ``K``'s ``write_segment`` raises ``ConnectionError("injected fault ...")`` once:
  a transient failure (``vsr_pipeline.errors.is_transient``), which the scheduler retries;
- ``exit:K[:MARKER]``: the encoder's process dies at chunk ``K`` (``os._exit(17)``: a worker crash) once;
- ``always:K``: chunk ``K`` raises the transient ``ConnectionError`` on every attempt (retried, then exit 5);
- ``bug:K``: chunk ``K`` raises ``ValueError`` on every attempt: an error of our own stage code, which recurs
  (not retried: exit 1 at once);
- ``input:K``: chunk ``K`` raises ``MediaError`` on every attempt, as an encoder refusing the chunk's frames
  would (not retried: exit 3 at once);
- ``delay:SECONDS``: every segment takes that much longer (to interrupt a job mid-way).

"Once" is remembered in the file ``MARKER`` (created when the fault fires), so a restarted actor does not
repeat it; without a marker ``raise``/``exit`` fire on every attempt, like ``always``.

    install(monkeypatch, "raise:1:/tmp/fired")  # in a test; undone with the monkeypatch
    with injected("always:3"): ...              # for part of a test
    python -m tests.fault_cli delay:2 -- upscale in.mp4 -o out.mp4 ...  # the CLI in a subprocess
    install_decoder(monkeypatch, "exit:2:/tmp/fired")  # a decoder dies at decode batch 2

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

import workers.decoder
import workers.encoder
from vsr_pipeline.media import MediaError
from workers.decoder import Decoder
from workers.encoder import Encoder, SegmentTarget

MODES = ("raise", "exit", "always", "bug", "input", "delay")


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
            raise ValueError(f"fault spec {spec!r}: expected raise|exit|always|bug|input:K[:MARKER] or "
                             f"delay:SECONDS")
        if mode == "delay":
            return cls(spec, mode, seconds=float(rest))
        k, _, marker = rest.partition(":")
        if mode in ("always", "bug", "input") and marker:
            raise ValueError(f"fault spec {spec!r}: {mode}:K takes no marker")
        return cls(spec, mode, index=int(k), marker=marker or None)

    def fire(self, index: int) -> None:
        """Called at the start of chunk ``index``'s ``write_segment`` inside the encoder actor (a decoder's:
        batch ``index``'s read)."""
        if self.mode == "delay":
            time.sleep(self.seconds)
            return
        if index != self.index:
            return
        if self.marker is not None:
            if os.path.exists(self.marker):
                return
            Path(self.marker).touch()
        if self.mode == "exit":
            os._exit(17)
        if self.mode == "bug":
            raise ValueError(f"injected bug at chunk {index} ({self.spec})")
        if self.mode == "input":
            raise MediaError(f"injected: the encoder refuses chunk {index}'s frames ({self.spec})")
        raise ConnectionError(f"injected fault at chunk {index} ({self.spec})")


def faulty_encoder(spec: str) -> type[Encoder]:
    """An ``Encoder`` subclass whose ``write_segment`` injects the fault ``spec`` first."""
    fault = Fault.parse(spec)

    class FaultyEncoder(Encoder):
        FAULT = fault

        def write_segment(self, index: int, frames: np.ndarray, pts: Sequence[int | None],
                          target: SegmentTarget | None = None) -> tuple[str | None, int]:
            self.FAULT.fire(index)
            return super().write_segment(index, frames, pts, target)

    # the actor's process title stays ``ray::Encoder`` (tools find the stages by it)
    FaultyEncoder.__name__ = "Encoder"
    return FaultyEncoder


def faulty_decoder(spec: str) -> type[Decoder]:
    """A ``Decoder`` subclass that injects the fault ``spec`` (``raise``/``exit``/``always``) at the start of
    decode batch ``K``: ``read_batch``'s own ``b``; a sequential decoder counts its ``read``/``skip`` calls
    from 0 since its input was opened (a restarted one counts again). ``K`` = -1: when the job asks for its
    corrupt-frame report, after the last batch."""
    fault = Fault.parse(spec)
    if fault.mode not in ("raise", "exit", "always"):
        raise ValueError(f"fault spec {spec!r}: a decoder takes raise|exit|always:K[:MARKER]")

    class FaultyDecoder(Decoder):
        FAULT = fault

        def open(self, *args: Any, **kwargs: Any) -> bool:
            self._batch = 0
            return super().open(*args, **kwargs)

        def _next(self) -> None:
            b, self._batch = self._batch, self._batch + 1
            self.FAULT.fire(b)

        def read(self, n: int) -> tuple[np.ndarray, list[int | None]]:
            self._next()
            return super().read(n)

        def skip(self, n: int) -> int:
            self._next()
            return super().skip(n)

        def read_batch(self, b: int, n: int) -> tuple[np.ndarray, list[int | None]]:
            self.FAULT.fire(b)
            return super().read_batch(b, n)

        def corrupt(self) -> list[dict[str, Any]]:
            self.FAULT.fire(-1)
            return super().corrupt()

    FaultyDecoder.__name__ = "Decoder"
    return FaultyDecoder


def install_decoder(monkeypatch: Any, spec: str) -> type[Decoder]:
    """Make every job started from now on use decoders injecting ``spec`` (``faulty_decoder``)."""
    cls = faulty_decoder(spec)
    monkeypatch.setattr(workers.decoder, "Decoder", cls)
    return cls


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
