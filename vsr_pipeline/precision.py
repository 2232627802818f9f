"""Numeric precision and memory layout of a model's forward pass.

``--precision auto|fp32|fp32-cl|bf16|fp16``:

- ``fp32``: plain float32, the default memory layout (bit-identical to calling the module directly).
- ``fp32-cl``: float32 with ``channels_last`` weights and inputs: other oneDNN kernels, same precision
  (outputs differ from ``fp32`` by float rounding, at most one 8-bit level); 1.1-1.3x faster for BasicVSR.
- ``bf16``: ``torch.autocast`` to bfloat16 (convolutions and matmuls in bf16, what autocast keeps in fp32
  stays fp32) plus ``channels_last`` weights and inputs: on the 2-core development CPU a 64->64 3x3
  convolution runs at 400 GFLOP/s in bf16 channels-last against 106 in fp32 NCHW (docs/performance.md).
- ``fp16``: autocast to float16, channels-last; CUDA only (CPU fp16 kernels are not faster than fp32).
- ``auto``: on CUDA ``fp16``; on the CPU ``bf16`` only for models whose bf16 output was measured within
  0.02 dB Y-PSNR of fp32 on real frames (:func:`cpu_bf16_safe`, from each ``ModelSpec``) and only where the
  CPU has bf16 units (:func:`cpu_has_bf16`), else ``fp32-cl`` for models measured faster that way
  (:func:`cpu_fp32_channels_last`), else ``fp32``.

Outputs are always handed back as float32 before quantisation to uint8 (bf16 holds ~1/256 relative
precision, about one 8-bit level near white, so quantising a bf16 tensor directly would lose levels).
No torch import at module level beyond what the functions use, so the CLI can import this cheaply.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

PRECISIONS = ("auto", "fp32", "fp32-cl", "bf16", "fp16")

#: The quality gate for CPU bf16 under ``auto``: a model qualifies when its spec's measured
#: ``bf16_delta_db`` (Y-PSNR(bf16) - Y-PSNR(fp32) against the ground truth on real frames, worst clip;
#: ``benchmarks/`` precision runs, docs/benchmarks.md 8.1) is within this many dB.
BF16_TOLERANCE_DB = 0.02


def cpu_bf16_safe() -> dict[str, float]:
    """Registered models whose measured bf16 change is within :data:`BF16_TOLERANCE_DB`: name -> dB."""
    from models.registry import list_specs

    return {s.name: s.bf16_delta_db for s in list_specs()
            if s.bf16_delta_db is not None and abs(s.bf16_delta_db) < BF16_TOLERANCE_DB}


def cpu_fp32_channels_last() -> dict[str, float]:
    """Registered models measured faster in fp32 channels-last than NCHW on the CPU: name -> speed-up."""
    from models.registry import list_specs

    return {s.name: s.fp32_cl_speedup for s in list_specs()
            if s.fp32_cl_speedup is not None and s.fp32_cl_speedup > 1.0}


#: oneDNN ISA caps (``ONEDNN_MAX_CPU_ISA``) below AVX-512 BF16: they keep x86 bf16 units out of use
ISA_CAPS_WITHOUT_BF16 = frozenset({"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE",
                                   "AVX512_CORE_VNNI"})
#: /proc/cpuinfo flags of x86 bf16 units: AVX-512 BF16 (Cooper Lake, Zen 4 and later), AMX-BF16 (Sapphire
#: Rapids and later)
X86_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.cache
def cpuinfo_field(*keys: str) -> str | None:
    """The first CPU's value of the first of ``keys`` found in Linux's ``/proc/cpuinfo`` (``model name``,
    ``flags``, ...); None where there is no such file or field. Read once per process."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in keys:
            return value.strip()
    return None


def cpu_flags() -> frozenset[str] | None:
    """The CPU feature flags (x86 ``flags``, Arm ``Features`` of ``/proc/cpuinfo``); None where unknown."""
    value = cpuinfo_field("flags", "Features")
    return None if value is None else frozenset(value.split())


def cpu_has_bf16() -> bool:
    """This CPU computes bf16 in hardware: AVX-512 BF16 or AMX-BF16 on x86 (from the CPU's flags, and not
    capped away by ``ONEDNN_MAX_CPU_ISA``), Arm's BF16 extension (oneDNN's own check there).

    oneDNN's query alone is not enough on x86: it also says yes for AVX-512 without bf16 units (Skylake to
    Ice Lake), where it emulates bf16: BasicVSR ran 4x slower than fp32 channels-last on this machine
    with oneDNN capped to AVX512_CORE (docs/benchmarks.md 8.5f); without AVX-512, 10x slower for a 3x3
    convolution on an AVX2 EPYC (issue 21)."""
    try:
        if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            return False
    except (AttributeError, RuntimeError):
        return False
    if platform.machine().lower() not in ("x86_64", "amd64", "x86", "i686", "i386"):
        return True
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").upper()
    if cap in ISA_CAPS_WITHOUT_BF16:
        return False
    flags = cpu_flags()
    return True if flags is None else bool(flags & X86_BF16_FLAGS)  # no flags to read: oneDNN's word



def emulated_bf16_note(precision: str, device: torch.device) -> str | None:
    """Why a forced ``bf16`` will be slow here, or None: on a CPU without bf16 units oneDNN emulates it (and
    PyTorch's NCHW autocast falls back to its generic convolution): the engine's bf16 (channels-last) ran
    BasicVSR 7.9x slower than fp32 at 160x68 on an AVX2 EPYC (``benchmarks/speed_bf16_emulated.py``).
    ``auto`` never chooses bf16 there."""
    if precision != "bf16" or device.type != "cpu" or cpu_has_bf16():
        return None
    return ("--precision bf16 on this CPU is emulated (no AVX512_BF16/AMX units): expect it several times "
            "slower than fp32; --precision auto picks the fast one")


_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_precision(precision: str, device: torch.device, model: str) -> str:
    """The concrete precision (``fp32``, ``bf16`` or ``fp16``) for ``precision`` on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        if device.type == "cuda":
            return "fp16"
        if model in cpu_bf16_safe() and cpu_has_bf16():
            return "bf16"
        return "fp32-cl" if model in cpu_fp32_channels_last() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("--precision fp16 needs a CUDA device; on the CPU use bf16 (or fp32)")
    return precision


def resolved_precision(precision: str, device: str, model: str) -> str:
    """:func:`resolve_precision` for a device named by a string, or ``precision`` itself where it does not
    resolve (what a job records)."""
    try:
        return resolve_precision(precision, torch.device(device), model)
    except ValueError:
        return precision


@dataclass(frozen=True)
class Precision:
    """How to run a forward pass: ``name`` (fp32/fp32-cl/bf16/fp16) on ``device``."""

    name: str
    device: torch.device

    @property
    def channels_last(self) -> bool:
        """All but plain fp32 use channels-last (oneDNN's and cuDNN's fast kernels want NHWC)."""
        return self.name != "fp32"

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def prepare(self, model: torch.nn.Module) -> torch.nn.Module:
        """Move ``model`` to the device in the layout this precision wants (weights stay float32: autocast
        casts per operation, so norms, softmax and grid sampling keep float32)."""
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` contiguous in this precision's layout (4-D tensors only; others plain contiguous)."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x.contiguous()

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Autocast to bf16/fp16; fp32 on CUDA with cuDNN's TF32 off (PyTorch lets cuDNN convolutions round
        their inputs to TF32's 10-bit mantissa by default: "fp32" here means float32, the reference the
        other precisions and the CPU are compared with)."""
        if self.name not in _DTYPES:
            if self.device.type != "cuda":
                yield
                return
            cudnn, before = torch.backends.cudnn, torch.backends.cudnn.allow_tf32
            cudnn.allow_tf32 = False
            try:
                yield
            finally:
                cudnn.allow_tf32 = before
            return
        with torch.autocast(self.device.type, dtype=_DTYPES[self.name]):
            yield


FP32_CPU = Precision("fp32", torch.device("cpu"))


def make_precision(precision: str, device: torch.device, model: str) -> Precision:
    return Precision(resolve_precision(precision, device, model), device)
