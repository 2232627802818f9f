"""Reading, checking, renaming, converting and saving model weights.

Pickled checkpoints are only ever read with ``torch.load(weights_only=True)``: a file whose loading would run
code is refused. Formats read (``read_checkpoint`` reports which one):

- ``safetensors``: a ``.safetensors`` file (our own format, written by ``convert``/``save_safetensors``);
- ``delta``: a ``.safetensors`` file of differences from published weights (``models.weight_delta``);
- ``basicsr-ema`` / ``basicsr``: BasicSR ``{'params_ema': ..., 'params': ...}`` (EMA weights preferred);
- ``mmagic``: mmagic/mmedit ``{'state_dict': {'generator.<name>': ...}}`` (``generator_ema.`` preferred when
  present; other sub-networks such as the discriminator are dropped);
- ``plain``: a bare ``{name: tensor}`` dict (also Lightning-style ``{'state_dict': ...}`` without prefix);
- ``ncnn``: a ``.param`` file with its ``.bin`` beside it (``models.ncnn``: fp16/fp32 weights, mapped to the
  model's names by layer order in ``fit_state_dict``).

A ``module.`` prefix that ``nn.DataParallel``/DDP put on *every* key is removed whatever the format. Names
that differ from ours are renamed by an explicit key map (``KEY_MAPS``) before strict loading.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from models.errors import WeightsError
from models.ncnn import NcnnState, fit_ncnn, read_ncnn
from models.package_files import EXTRA_OF_PACKAGE, find_package_file, sha256_file  # noqa: F401 (re-exported)

_SHOWN = 10  # keys listed per category in an error message


#: a rule renames every key matching ``pattern`` with ``re.sub(pattern, repl, key)`` (``repl`` may be a
#: function of the match); rules of a map are applied in order, each to the result of the previous one
KeyRule = tuple[str, str | Callable[[re.Match[str]], str]]
KeyMap = Sequence[KeyRule]

#: mmagic/mmedit ``ConvModule`` wraps its convolution as ``<name>.conv``; ours are bare ``nn.Conv2d``
_CONV_MODULE: KeyRule = (r"\.conv\.(weight|bias)$", r".\1")
#: mmagic ``PixelShufflePack`` ``upsampleN.upsample_conv`` is BasicSR's ``upconvN`` (+ a pixel shuffle)
_PIXEL_SHUFFLE_PACK: KeyRule = (r"^upsample(\d)\.upsample_conv\.", r"upconv\1.")

#: Key maps from a checkpoint format to our (= BasicSR's) names, keyed by ``(format, model class name)``.
#: Our BasicVSR and EDVR use BasicSR's module names, so BasicSR checkpoints need no map.
KEY_MAPS: dict[tuple[str, str], KeyMap] = {
    # mmagic BasicVSRNet: {backward,forward}_resblocks, upsample{1,2}.upsample_conv, and a SPyNet whose 5
    # ConvModules per level are numbered 0..4 (BasicSR numbers the Sequential conv/ReLU slots 0, 2, .., 8).
    ("mmagic", "BasicVSR"): [
        (r"^(backward|forward)_resblocks\.", r"\1_trunk."),
        _PIXEL_SHUFFLE_PACK,
        (r"^(spynet\.basic_module\.\d+\.basic_module\.)(\d+)\.conv\.",
         lambda m: f"{m.group(1)}{2 * int(m.group(2))}."),
    ],
    # mmagic EDVRNet: feat_l{2,3}_conv{1,2} are BasicSR's conv_l{2,3}_{1,2}, pcd_alignment is pcd_align,
    # ConvModules everywhere (PCD offsets, TSA attention convs) and PixelShufflePack upsamplers.
    ("mmagic", "EDVR"): [
        (r"^feat_l(\d)_conv(\d)\.", r"conv_l\1_\2."),
        (r"^pcd_alignment\.", "pcd_align."),
        _PIXEL_SHUFFLE_PACK,
        _CONV_MODULE,
    ],
}


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _with_prefix(state: Mapping[str, object], prefix: str) -> dict[str, object]:
    return {k[len(prefix) :]: v for k, v in state.items() if isinstance(k, str) and k.startswith(prefix)}


def _strip_common_prefix(state: dict[str, Tensor], prefix: str = "module.") -> dict[str, Tensor]:
    """Drop ``prefix`` when every key carries it (what DataParallel / DDP wrappers add)."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def _unwrap(obj: object, path: Path) -> tuple[dict[str, Tensor], str]:
    """The state dict inside a BasicSR, mmagic or plain checkpoint object, and the format's name."""
    fmt = "plain"
    if isinstance(obj, Mapping):
        if isinstance(obj.get("params_ema"), Mapping):  # BasicSR: EMA weights are the ones to use
            obj, fmt = obj["params_ema"], "basicsr-ema"
        elif isinstance(obj.get("params"), Mapping):  # BasicSR
            obj, fmt = obj["params"], "basicsr"
        elif isinstance(obj.get("state_dict"), Mapping):  # mmagic / mmedit / lightning
            obj = obj["state_dict"]
            for prefix in ("generator_ema.module.", "generator_ema.", "generator."):
                inner = _with_prefix(obj, prefix)
                if inner and not (prefix == "generator_ema." and set(inner) <= {"steps", "n_averaged"}):
                    obj, fmt = inner, "mmagic"
                    break
    if not isinstance(obj, Mapping) or not obj:
        raise WeightsError(f"{path}: not a state dict (names -> tensors), got {type(obj).__name__}")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise WeightsError(f"{path}: not a state dict of tensors; {len(bad)} entries are not tensors, e.g. "
                           f"{', '.join(map(repr, bad[:3]))}")
    return _strip_common_prefix(dict(obj)), fmt


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], str]:
    """Read ``path`` into ``({name: tensor} on the CPU, format)``; see the module docstring for the formats.

    Raises ``WeightsError`` for a missing, unreadable, unsafe or non-state-dict file.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}")
    if path.suffix == ".param":
        return read_ncnn(path), "ncnn"
    try:
        if path.suffix == ".safetensors":
            from models.weight_delta import is_delta, read_delta

            if is_delta(path):  # over ncnn weights: their names, fitted to the model by position as theirs
                tuned = read_delta(path, read_state_dict)
                return tuned, "ncnn" if isinstance(tuned, NcnnState) else "delta"
            state = load_file(str(path), device="cpu")
            if not state:
                raise WeightsError(f"{path}: not a state dict (names -> tensors), got an empty file")
            return _strip_common_prefix(state), "safetensors"
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except WeightsError:
        raise
    except pickle.UnpicklingError as exc:  # an unsafe or corrupt pickle; torch's text is many lines
        lines = [ln.strip() for ln in str(exc).splitlines()]
        telling = [ln for ln in lines if ln.startswith(("Trying to load", "Unsupported"))]
        detail = telling[0] if telling else _one_line(exc)
        raise WeightsError(f"{path}: refused by the tensors-only unpickler ({detail}); only plain tensor "
                           f"checkpoints are accepted, convert trusted ones to .safetensors") from None
    except Exception as exc:  # corrupt file, wrong format, ...
        raise WeightsError(f"{path}: cannot be read as weights ({_one_line(exc)})") from None
    return _unwrap(obj, path)


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read ``path`` into ``{name: tensor}`` on the CPU, names as stored (no key map applied).

    ``.safetensors`` files are read with safetensors; anything else with ``torch.load(weights_only=True)``
    (never arbitrary unpickling). BasicSR ``{'params_ema'|'params': ...}`` (EMA preferred), mmagic
    ``{'state_dict': ...}`` (``generator.`` prefix stripped) and plain state dicts are unwrapped, and a
    ``module.`` prefix on every key is dropped. Raises ``WeightsError``.
    """
    return read_checkpoint(path)[0]


def apply_key_map(state: Mapping[str, Tensor], rules: KeyMap) -> dict[str, Tensor]:
    """``state`` with every key renamed by ``rules`` (in order); two keys renamed to one is an error."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        new = key
        for pattern, repl in rules:
            new = re.sub(pattern, repl, new)
        if new in out:
            raise WeightsError(f"key map renames two keys to {new!r} (one of them {key!r})")
        out[new] = value
    return out


def key_map_for(model: nn.Module, fmt: str) -> KeyMap | None:
    """The registered key map for checkpoints of format ``fmt`` loaded into ``model``, if any."""
    return KEY_MAPS.get((fmt, type(model).__name__))


def fit_state_dict(model: nn.Module, state: Mapping[str, Tensor], fmt: str) -> dict[str, Tensor]:
    """``state`` renamed for ``model``: the key map for ``(fmt, class)`` is applied when one is registered
    and the names do not already fit (a checkpoint in that wrapper may already use our names). ncnn weights
    are renamed by layer order (``models.ncnn.fit_ncnn``)."""
    if fmt == "ncnn":
        return fit_ncnn(model, state)
    rules = key_map_for(model, fmt)
    if rules is None:
        return dict(state)
    own = model.state_dict().keys()
    if set(state) == set(own):
        return dict(state)
    return apply_key_map(state, rules)


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
    """Load the checkpoint at ``path`` into ``model`` in place (after the key map of its format, if any).

    ``strict=True`` requires the key sets to match exactly; ``strict=False`` loads the common keys. Shapes
    must always match. Raises ``WeightsError`` naming the missing / unexpected keys (first 10 of each, with
    counts) and the shape mismatches.
    """
    state, fmt = read_checkpoint(path)
    state = fit_state_dict(model, state, fmt)
    problem = check_state_dict(model, state, strict)
    if problem:
        raise WeightsError(f"weights {path} ({fmt}) do not fit {type(model).__name__}: {problem}")
    if not strict:
        own = model.state_dict()
        state = {k: v for k, v in state.items() if k in own}
    model.load_state_dict(state, strict=strict)


def _cpu_copies(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state.items()}


def save_safetensors(state: Mapping[str, Tensor], path: str | os.PathLike[str],
                     metadata: dict[str, str] | None = None) -> None:
    """Write ``state`` to a ``.safetensors`` file (tensors are copied to contiguous CPU memory first, so
    tied or non-contiguous tensors are fine)."""
    save_file(_cpu_copies(state), str(path), metadata=metadata)


def save_basicsr(state: Mapping[str, Tensor], path: str | os.PathLike[str],
                 ema: Mapping[str, Tensor] | None = None) -> None:
    """Write a BasicSR checkpoint ``{'params': state}`` (plus ``'params_ema': ema`` when given)."""
    obj: dict[str, dict[str, Tensor]] = {"params": _cpu_copies(state)}
    if ema is not None:
        obj["params_ema"] = _cpu_copies(ema)
    torch.save(obj, str(path))


def save_mmagic(state: Mapping[str, Tensor], path: str | os.PathLike[str]) -> None:
    """Write an mmagic-style checkpoint ``{'meta': {}, 'state_dict': {'generator.<name>': ...}}``; names are
    written as given (rename them to mmagic's own first to imitate a real mmagic file)."""
    gen = {f"generator.{k}": v for k, v in _cpu_copies(state).items()}
    torch.save({"meta": {}, "state_dict": gen}, str(path))


def read_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` file (empty when none)."""
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata() or {})


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def convert(in_path: str | os.PathLike[str], out_path: str | os.PathLike[str],
            model: nn.Module | None = None, metadata: Mapping[str, str] | None = None) -> dict[str, str]:
    """Rewrite the checkpoint ``in_path`` (any readable format) as safetensors at ``out_path``.

    With ``model``, the key map of the source format is applied and the result must fit ``model`` strictly
    (else ``WeightsError``), so the file then loads with no renaming. The file's metadata records
    ``source_format``, ``source_sha256``, ``source_name``, ``tensors`` (ncnn: also ``source_bin_sha256``, of
    the ``.bin``) and any extra ``metadata``; it is returned. ``out_path`` is written whole or not at all
    (temporary name, then rename).
    """
    in_path, out_path = Path(in_path), Path(out_path)
    state, fmt = read_checkpoint(in_path)
    extra = {"source_bin_sha256": sha256_file(state.bin_path)} if isinstance(state, NcnnState) else {}
    if model is not None:
        state = fit_state_dict(model, state, fmt)
        problem = check_state_dict(model, state, strict=True)
        if problem:
            raise WeightsError(f"weights {in_path} ({fmt}) do not fit {type(model).__name__}: {problem}")
    meta = {"source_format": fmt, "source_sha256": sha256_file(in_path), "source_name": in_path.name,
            "tensors": str(len(state)), **extra, **(metadata or {})}
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    try:
        save_safetensors(state, tmp, meta)
        os.chmod(tmp, 0o666 & ~_umask())  # safetensors creates 0600 files; give the usual permissions
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return meta
