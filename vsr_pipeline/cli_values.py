"""Value types and actions of the ``vsr`` command's flags: each turns one flag's text into its value or says,
in one line, what is wrong with it."""

from __future__ import annotations

import argparse
from fractions import Fraction
from typing import Any


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def batch_size(text: str) -> int | None:  # None: "auto" (vsr_pipeline.autotune.choose_batch)
    return None if text == "auto" else positive_int(text)


def fraction(text: str) -> Fraction:
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected a frame rate like 25 or 30000/1001, got {text!r}") \
            from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"frame rate must be > 0, got {text}")
    return value


class Collect(argparse.Action):
    """A repeatable flag collected into a tuple (its API default is (); argparse's append makes lists)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        setattr(namespace, self.dest, (*getattr(namespace, self.dest), values))


def crop(text: str) -> tuple[int, ...]:
    """``W:H`` (centred) or ``W:H:X:Y``, as FFmpeg's crop filter orders them."""
    from vsr_pipeline.media.crop import parse_crop

    try:
        return parse_crop(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def clock_time(text: str) -> float:
    """Seconds, or ``[HH:]MM:SS[.f]``."""
    from vsr_pipeline.media.trim import parse_time

    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def degradation_chain(text: str) -> str:
    """A degradation chain (``bi``, ``bd+h264:28+noise:2``), checked and written canonically."""
    from vsr_pipeline.degradation import DegradationError, parse_degradation

    try:
        return str(parse_degradation(text))
    except DegradationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
