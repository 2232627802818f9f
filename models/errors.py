"""Errors shared by the weights readers: ``models.weights`` and the format modules it dispatches to
(``models.ncnn``) both raise them, so they live below both (no import cycle). Import them from
``models.weights``."""

from __future__ import annotations


class WeightsError(ValueError):
    """A checkpoint that cannot be read or does not fit the model; the message is one readable line."""
