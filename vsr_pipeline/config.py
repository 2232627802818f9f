"""Model configs (``configs/models/*.yaml``): YAML in, validated dict out, one-line errors.

A model config names a registered model and how to build it::

    model: edsr-baseline   # registered name (`vsr models`)
    scale: 4               # one of the model's scales
    weights: reds4         # optional: registered weights name, or a checkpoint path (relative to this file)
    backbone: espcn        # optional, video models that accept one: the single-image model inside
    arch: {num_block: 8}   # optional: constructor arguments replacing the registered ones

Field checks live in ``models.registry.validate_config``; this module adds the file-level ones (missing
file, YAML syntax, empty file) and turns every problem into ``ConfigError`` (usage exit code).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from vsr_pipeline.errors import UsageError


class ConfigError(UsageError):
    """A config file that is missing, not YAML, or has a bad field; the message names the file."""


def read_yaml(path: str | os.PathLike[str]) -> Any:
    """The YAML document in ``path``; ``ConfigError`` for a missing file or a syntax error (with line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None


def load_model_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate the model config at ``path``; a relative ``weights`` path that exists next to the
    file is made absolute. Build the model with ``models.registry.build_from_config``."""
    from models.registry import ModelError, get_spec, validate_config

    path = Path(path)
    cfg = read_yaml(path)
    if cfg is None:
        raise ConfigError(f"{path}: the file is empty (expected fields model, scale, ...)")
    try:
        checked = validate_config(cfg, where=str(path))
    except ModelError as exc:
        raise ConfigError(str(exc)) from None
    weights = checked.get("weights")
    if isinstance(weights, str) and weights not in get_spec(str(checked["model"])).weights:
        beside = path.parent / weights
        if not Path(weights).is_absolute() and beside.is_file():
            checked["weights"] = str(beside.resolve())
    return checked


def build_model_from_file(path: str | os.PathLike[str], load: bool = True) -> Any:
    """``load_model_config`` + ``build_from_config``: the model a config file describes (eval mode)."""
    from models.registry import build_from_config

    return build_from_config(load_model_config(path), where=str(path), load=load)
