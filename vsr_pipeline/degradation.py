"""Degradation chains for `vsr degrade` / `vsr eval`: a benchmark kernel, then real-world stages.

Text form ``KERNEL[+STAGE]...``, stages applied left to right to the uint8 LR the kernel made:

- ``bi`` / ``bd`` (first, required): :func:`vsr_pipeline.degrade.degrade_bi` / ``degrade_bd`` unchanged, so a
  chain without stages gives bit-identical LR to the benchmark tables (docs/evaluation.md).
- ``h264:CRF`` (0-51): the whole LR sequence encoded as one H.264 stream by libx264 (``crf``, preset medium,
  yuv420p, one thread so the bits do not depend on the machine's core count) in memory and decoded back, so
  frames are predicted from each other as a recorder's would be (:func:`codec_round_trip`).
- ``mpeg4:Q`` (1-31): the same with FFmpeg's MPEG-4 part 2 encoder at fixed quantiser ``Q``; the options
  make it decode to the same frames as ``ffmpeg -c:v mpeg4 -q:v Q`` (checked against the FFmpeg CLI).
- ``noise:SIGMA`` (> 0, in 8-bit levels): i.i.d. Gaussian noise added to every RGB sample, rounded half away
  from zero and clipped; the generator is seeded by (``seed``, stage position), so a chain repeats exactly.

Frames are 25 fps to the encoders whatever the source (rate control depends a little on it). Odd LR sizes are
padded by edge replication for 4:2:0 and cropped back.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal, cast

import av
import numpy as np

from vsr_pipeline.degrade import degrade_bd, degrade_bi, to_uint8
from vsr_pipeline.errors import UsageError
from vsr_pipeline.media.colour import frame_to_rgb
from vsr_pipeline.media.encoder_options import fixed_quantiser

__all__ = ["KERNELS", "STAGES", "Degradation", "DegradationError", "Stage", "codec_round_trip",
           "encode_decode", "parse_degradation"]

Kernel = Literal["bi", "bd"]
StageName = Literal["h264", "mpeg4", "noise"]
KERNELS = {"bi": degrade_bi, "bd": degrade_bd}
#: stage -> (what its value is, lowest, highest, integer only)
STAGES: dict[str, tuple[str, float, float, bool]] = {
    "h264": ("CRF", 0, 51, True),
    "mpeg4": ("qscale", 1, 31, True),
    "noise": ("sigma in 8-bit levels", 0, 255, False),
}
SYNTAX = "KERNEL[+STAGE...], KERNEL bi or bd, STAGE h264:CRF, mpeg4:Q or noise:SIGMA (e.g. bi+h264:28)"
_FPS = 25


class DegradationError(UsageError):
    """A degradation text that does not parse; the message is one line."""


@dataclass(frozen=True)
class Stage:
    """One step after the kernel: ``name`` with its CRF, qscale or sigma."""

    name: StageName
    value: float

    def __str__(self) -> str:
        return f"{self.name}:{self.value:g}"

    def apply(self, lr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.name == "noise":
            return to_uint8(lr.astype(np.float64) + rng.normal(0.0, self.value, lr.shape))
        return codec_round_trip(lr, self.name, int(self.value))


@dataclass(frozen=True)
class Degradation:
    """A kernel and the stages after it; ``str()`` gives the canonical text (``bi+h264:28``)."""

    kernel: Kernel = "bi"
    stages: tuple[Stage, ...] = ()
    seed: int = 0

    def __str__(self) -> str:
        return "+".join([self.kernel, *map(str, self.stages)])

    def apply(self, frames: np.ndarray, scale: int) -> np.ndarray:
        """uint8 LR ``(T, h, w, 3)`` of uint8 ``frames`` ``(T, H, W, 3)`` (crop to a multiple of ``scale``
        first, as the benchmark protocols do)."""
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (T, H, W, 3), got shape {frames.shape}")
        lr = KERNELS[self.kernel](frames, scale)
        for i, stage in enumerate(self.stages):
            lr = stage.apply(lr, np.random.default_rng([self.seed, i]))
        return lr


def parse_degradation(text: str | Degradation) -> Degradation:
    """``"bi"``, ``"bd+mpeg4:8+noise:2"``, ... -> :class:`Degradation`; :class:`DegradationError` if bad."""
    if isinstance(text, Degradation):
        return text
    parts = [p.strip() for p in str(text).strip().lower().split("+")]
    if parts[0] not in KERNELS:
        raise DegradationError(f"degradation {text!r} must start with bi or bd: {SYNTAX}")
    stages = []
    for part in parts[1:]:
        name, _, value = part.partition(":")
        if name not in STAGES:
            raise DegradationError(f"degradation {text!r}: unknown stage {part!r}: {SYNTAX}")
        what, low, high, integer = STAGES[name]
        number = re.fullmatch(r"\d+" if integer else r"\d+(\.\d*)?|\.\d+", value)
        if not number or not low <= float(value) <= high or (name == "noise" and float(value) == 0):
            kind = f"a whole number in {low:g}..{high:g}" if integer else f"a number in (0, {high:g}]"
            raise DegradationError(f"degradation {text!r}: {name} needs {what} as {kind}, got {value!r}")
        stages.append(Stage(cast(StageName, name), float(value)))
    return Degradation(cast(Kernel, parts[0]), tuple(stages))


def _codec_options(codec: str, value: int, preset: str = "medium") -> dict[str, str]:
    if codec == "h264":
        return {"crf": str(value), "preset": preset, "threads": "1"}
    # `ffmpeg -q:v Q` sets every frame's quality (lambda) to Q: the same decisions, the same frames
    return {**fixed_quantiser(value), "threads": "1"}


def codec_round_trip(frames: np.ndarray, codec: str, value: int) -> np.ndarray:
    """``frames`` (uint8 ``(T, H, W, 3)``) encoded as one stream (``h264`` at CRF ``value``, ``mpeg4`` at
    qscale ``value``) and decoded back to RGB, in memory, in a fresh Python process.

    Why a process of its own: libx264's output with the macroblock tree on (preset medium) depends on what
    memory held before (docs/benchmarks.md section 10: valgrind sees uninitialised reads in x264). In one
    process, after a decoder had run, about one Vid4 encode in ten gave other packets for the same frames,
    even single-threaded; each fresh process (hash seed fixed) gave the same packets.
    """
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(frames, dtype=np.uint8))
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONHASHSEED": "0",
           "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    code = "from vsr_pipeline.degradation import _round_trip_child; _round_trip_child()"
    proc = subprocess.run([sys.executable, "-c", code, codec, str(int(value))], input=buf.getvalue(),
                          capture_output=True, env=env, check=False)
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines() or ["no message"]
        raise RuntimeError(f"{codec} round trip failed: {lines[-1]}")
    return np.load(io.BytesIO(proc.stdout))


def _round_trip_child() -> None:
    """Child side of :func:`codec_round_trip`: ``.npy`` frames on stdin, ``.npy`` frames on stdout."""
    frames = np.load(io.BytesIO(sys.stdin.buffer.read()))
    out = io.BytesIO()
    np.save(out, encode_decode(frames, sys.argv[1], int(sys.argv[2])))
    sys.stdout.buffer.write(out.getvalue())


def encode_decode(frames: np.ndarray, codec: str, value: int, preset: str = "medium") -> np.ndarray:
    """``frames`` through ``codec`` and back in this process (``preset``: x264's, for ``h264``). The packets
    go straight from encoder to decoder (no container: nothing about them changes). Training draws its LR
    with it; :func:`codec_round_trip` runs it in a fresh process for bit-repeatable evaluation LR."""
    t, h, w, _ = frames.shape
    ph, pw = h + h % 2, w + w % 2
    padded = np.pad(frames, ((0, 0), (0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    enc = av.CodecContext.create("libx264" if codec == "h264" else "mpeg4", "w")
    enc.width, enc.height, enc.pix_fmt = pw, ph, "yuv420p"
    enc.time_base, enc.framerate = Fraction(1, _FPS), Fraction(_FPS)
    enc.options = _codec_options(codec, value, preset)
    packets = []
    for i, frame in enumerate(padded):
        rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf = rgb.reformat(format="yuv420p")
        vf.pts = i
        packets += enc.encode(vf)
    packets += enc.encode(None)
    dec = av.CodecContext.create("h264" if codec == "h264" else "mpeg4", "r")
    # the pipeline reader's exact BT.601 conversion, not swscale's rgb24 path, whose rounding darkens every
    # decoded frame by about one 8-bit level (R -0.9, G -1.4, B -1.0 measured): a codec stage must add
    # codec loss, not a colour shift a model would then learn to undo
    decoded = [frame_to_rgb(f, f.colorspace, f.color_range) for p in [*packets, None] for f in dec.decode(p)]
    if len(decoded) != t:
        raise RuntimeError(f"{codec} round trip returned {len(decoded)} frames for {t}")
    return np.ascontiguousarray(np.stack(decoded)[:, :h, :w])
