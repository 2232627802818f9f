"""Where the timed probes of ``vsr_pipeline.autotune`` are kept, and what names a machine in their keys.

The cache is one JSON file (``cache_path``), written atomically; ``machine`` is what makes one machine's
timings differ from another's (CPU model, capability, bf16 units, cores, torch version; GPU name and
capability); ``busy_reason`` says when a probe now would not be representative.
"""

from __future__ import annotations

import json
import logging
import os
import platform
from pathlib import Path
from typing import Any

import torch

from vsr_pipeline.precision import cpu_has_bf16, cpuinfo_field

log = logging.getLogger(__name__)


def cache_path() -> Path:
    """Where probe results are kept between runs."""
    if os.environ.get("VSR_CACHE_DIR"):
        return Path(os.environ["VSR_CACHE_DIR"]) / "autotune.json"
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "vsr-pipeline" / "autotune.json"


def _cpu_name() -> str:
    return cpuinfo_field("model name") or platform.processor() or platform.machine()


def machine(device: torch.device) -> dict[str, Any]:
    """What makes one machine's timings differ from another's."""
    out: dict[str, Any] = {"torch": torch.__version__, "arch": platform.machine()}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
        out["capability"] = list(torch.cuda.get_device_capability(device))
    else:
        out.update(cpu=_cpu_name(), capability=torch.backends.cpu.get_cpu_capability(),
                   bf16_units=cpu_has_bf16(), cores=os.cpu_count() or 1)
    return out


def busy_reason(device: torch.device) -> str | None:
    """Why a probe on this machine now would not be representative (other processes using the CPU), else
    None. A result taken under load is cached marked so: reused while the machine stays busy (one choice for
    a whole busy session), probed again at the first idle run."""
    if device.type == "cuda" or not hasattr(os, "getloadavg"):
        return None
    load, cores = os.getloadavg()[0], os.cpu_count() or 1
    return f"machine busy: load {load:.1f} on {cores} cores" if load > cores else None


def load_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def save_cache(path: Path, cache: dict[str, Any]) -> None:
    """Atomically (a temporary file renamed); a cache that cannot be written is only a warning."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("precision probe: cannot write the cache %s (%s); the next run probes again", path, exc)
