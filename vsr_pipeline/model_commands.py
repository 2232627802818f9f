"""``vsr models`` and ``vsr convert``: what the registry holds, and checkpoints rewritten as safetensors.

Parameter counts are taken from models built on PyTorch's ``meta`` device (shapes only, no memory, no
initialisation), so listing EDSR (43M) and EDVR-L (20.6M) is instant; a model that cannot be built there
is built on the CPU instead. A model whose module fails to import is listed with an ``error`` field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.registry import (
    ModelError,
    ModelSpec,
    available_weights,
    build_model,
    count_params,
    get_spec,
    list_specs,
)
from models.weights import WeightsError, check_state_dict, convert, fit_state_dict, read_checkpoint
from vsr_pipeline.errors import UsageError


def default_scale(spec: ModelSpec) -> int:
    """The scale a model is described at: x4 when it has it, else its first scale."""
    return 4 if 4 in spec.scales else spec.scales[0]


def build_shapes_only(name: str, scale: int) -> nn.Module:
    """``build_model`` on the meta device (parameters without storage); on the CPU if that fails."""
    try:
        with torch.device("meta"):
            return build_model(name, scale)
    except (ImportError, ValueError):  # ModelError (not importable, bad scale) is a ValueError: no retry
        raise
    except Exception:  # a model doing real arithmetic in __init__ cannot be built on meta
        return build_model(name, scale)


def model_row(spec: ModelSpec) -> dict[str, Any]:
    """One model's entry of ``vsr models``; ``error`` (and ``params: None``) when it cannot be built."""
    scale = default_scale(spec)
    row: dict[str, Any] = {
        "name": spec.name,
        "kind": spec.kind,
        "temporal": spec.temporal,
        "radius": spec.radius,
        "params": None,
        "params_scale": scale,
        "scales": list(spec.scales),
        "upsampling": spec.upsampling,
        "accepts_backbone": spec.accepts_backbone,
        "needs_weights": spec.parametric,
        "weights": available_weights(spec.name),
        "registered_weights": list(spec.weights),
        "default_weights": spec.default_weights,
        "compressed_weights": spec.compressed_weights,
        "summary": spec.summary,
    }
    try:
        row["params"] = count_params(build_shapes_only(spec.name, scale))
    except Exception as exc:
        text = (str(exc).strip().splitlines() or [""])[0]
        row["error"] = text if isinstance(exc, ModelError) and text else f"{type(exc).__name__}: {text}"
    return row


def _format_params(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f}M" if n >= 1_000_000 else f"{n / 1e3:.1f}K" if n >= 1000 else str(n)


def format_models(rows: list[dict[str, Any]]) -> str:
    """The human table of ``vsr models``."""
    lines = [f"{'model':<18} {'kind':<6} {'temporal':<15} {'params':>8} {'@':<3} {'scales':<8} "
             f"{'upsampling':<11} weights"]
    for r in rows:
        temporal = r["temporal"] + (f" r={r['radius']}" if r["radius"] else "")
        temporal += " +bb" if r["accepts_backbone"] else ""
        if "error" in r:
            weights = f"ERROR {r['error']}"
        else:
            weights = ", ".join(r["weights"]) or ("(none yet)" if r["needs_weights"] else "(none needed)")
            if r["default_weights"] in r["weights"]:
                weights = weights.replace(r["default_weights"], r["default_weights"] + "*", 1)
            if r["compressed_weights"] in r["weights"]:
                weights = weights.replace(r["compressed_weights"], r["compressed_weights"] + "(c)", 1)
        lines.append(f"{r['name']:<18} {r['kind']:<6} {temporal:<15} {_format_params(r['params']):>8} "
                     f"x{r['params_scale']:<2} {','.join(map(str, r['scales'])):<8} {r['upsampling']:<11} "
                     f"{weights}")
    lines.append("params at the scale after @; * default weights; (c) what --source compressed loads; "
                 "+bb: takes --backbone")
    return "\n".join(lines)


def list_models() -> dict[str, Any]:
    """``{"models": [row, ...]}`` for every registered model."""
    return {"models": [model_row(spec) for spec in list_specs()]}


def _fitting_model(name: str, in_path: Path, scale: int | None) -> tuple[nn.Module, int]:
    """A shapes-only ``name`` at the first scale (``scale`` if given) the checkpoint fits strictly."""
    spec = get_spec(name)
    if not spec.parametric:
        raise UsageError(f"model {name} has no parameters; there is nothing to convert for it")
    scales = [scale] if scale is not None else sorted(spec.scales, key=lambda s: s != default_scale(spec))
    state, fmt = read_checkpoint(in_path)
    first_problem = ""
    for s in scales:
        model = build_shapes_only(name, s)
        problem = check_state_dict(model, fit_state_dict(model, state, fmt), strict=True)
        if problem is None:
            return model, s
        first_problem = first_problem or f"at x{s}: {problem}"
    tried = ", ".join(f"x{s}" for s in scales)
    raise WeightsError(f"weights {in_path} ({fmt}) do not fit model {name} ({tried}); {first_problem}")


def convert_file(in_path: str | os.PathLike[str], out_path: str | os.PathLike[str], model: str | None = None,
                 scale: int | None = None, overwrite: bool = False) -> dict[str, Any]:
    """``vsr convert``: write ``in_path`` as safetensors at ``out_path``; with ``model``, renamed by its key
    map and checked to fit it strictly (at ``scale``, or at whichever of its scales fits)."""
    src, dst = Path(in_path), Path(out_path)
    if dst.suffix != ".safetensors":
        raise UsageError(f"output {dst} must end in .safetensors (the format is chosen by the suffix)")
    if not src.is_file():
        raise UsageError(f"input checkpoint not found: {src}")
    if dst.exists() and src.resolve() == dst.resolve():
        raise UsageError(f"input and output are the same file: {src}")
    if dst.exists() and not overwrite:
        raise UsageError(f"output exists: {dst} (pass --overwrite to replace it)")
    if not dst.parent.is_dir():
        raise UsageError(f"output folder does not exist: {dst.parent}")
    extra: dict[str, str] = {}
    fitted: nn.Module | None = None
    if model is not None:
        fitted, found = _fitting_model(model, src, scale)
        extra = {"model": model, "scale": str(found)}
    meta = convert(src, dst, model=fitted, metadata=extra)
    return {"input": str(src), "output": str(dst), "bytes": dst.stat().st_size, **meta}
