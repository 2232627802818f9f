"""ncnn models (Tencent's ncnn: a text ``.param`` graph and a binary ``.bin`` of weights) read into PyTorch
state dicts, without ncnn.

``.param`` (text): the magic ``7767517``; ``<layer count> <blob count>``; then one line per layer::

    <type> <name> <#inputs> <#outputs> <input blobs...> <output blobs...> <id>=<value> ...

Values are integers, or floats when they hold ``.``/``e``; an id ``<= -23300`` is an array with id
``-id - 23300`` written ``n,v1,...,vn``. ``.bin``: the layers' tensors back to back, in layer order, each
layer reading what its ``load_model`` reads. A tensor loaded with ncnn's "auto" type (convolution and
inner-product weights) starts with a 4-byte little-endian tag: ``0x01306B47`` = fp16 values follow
(padded to a multiple of 4 bytes), ``0`` = fp32; other tags (int8, quantisation tables) are refused.
Biases and PReLU slopes are raw fp32 without a tag. The file must be consumed to its last byte.

Read: ``Convolution``, ``ConvolutionDepthWise`` (-> ``nn.Conv2d``), ``Deconvolution``,
``DeconvolutionDepthWise`` (-> ``nn.ConvTranspose2d``; ncnn stores ``(out, in, kh, kw)`` per group, PyTorch
``(in, out, kh, kw)``), ``InnerProduct`` (-> ``nn.Linear``), ``PReLU`` (-> ``nn.PReLU``); the layer types
in ``WEIGHTLESS`` carry no weights. Anything else is an error (its bytes could not be accounted for).

``read_ncnn(param_path)`` gives ``{"<Type>:<layer name>.weight"/".bias": tensor}`` (float32, PyTorch
layout) in file order; ``fit_ncnn(model, state)`` renames it to ``model``'s names by position: the k-th
ncnn layer with weights goes to the k-th module owning parameters (``named_modules()`` order), whose kind
and geometry (kernel, stride, padding, dilation, groups) must agree; shapes are then checked by the strict
load. ``models.weights`` dispatches ``.param`` files here (format ``"ncnn"``). Graph wiring and fused
activations are not compared with the module: the output tests do that (``tests/test_ncnn.py``).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from models.errors import WeightsError

MAGIC = 7767517
FP16_TAG = 0x01306B47
FP32_TAG = 0
#: tags ncnn knows that this reader refuses
_OTHER_TAGS = {0x000D4B38: "int8", 0x0002C056: "fp32 with extra scaling"}
_ARRAY = -23300

#: layer types that read nothing from the .bin (``Padding`` only without per-channel pad values)
WEIGHTLESS = frozenset({
    "Input", "Split", "Concat", "Slice", "Crop", "Eltwise", "BinaryOp", "UnaryOp", "Interp", "PixelShuffle",
    "Reorg", "ReLU", "Sigmoid", "TanH", "Clip", "ELU", "GELU", "Swish", "Mish", "HardSigmoid", "HardSwish",
    "Softmax", "Pooling", "Padding", "Permute", "Reshape", "Flatten", "Dropout", "Noop", "Power", "Exp",
    "Log", "AbsVal", "ShuffleChannel", "Squeeze", "ExpandDims", "Threshold",
})
_CONV = ("Convolution", "ConvolutionDepthWise")
_DECONV = ("Deconvolution", "DeconvolutionDepthWise")
_KINDS: dict[str, type[nn.Module]] = {
    **dict.fromkeys(_CONV, nn.Conv2d), **dict.fromkeys(_DECONV, nn.ConvTranspose2d),
    "InnerProduct": nn.Linear, "PReLU": nn.PReLU}

ParamValue = int | float | tuple[int | float, ...]


class NcnnError(WeightsError):
    """An ncnn ``.param``/``.bin`` pair that cannot be read or mapped; the message is one line."""


@dataclass(frozen=True)
class NcnnLayer:
    """One line of a ``.param``: ``params`` maps ids to values (arrays as tuples); ``line`` is 1-based."""

    type: str
    name: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    params: dict[int, ParamValue]
    line: int

    def int_param(self, key: int, default: int) -> int:
        value = self.params.get(key, default)
        if not isinstance(value, int):
            raise NcnnError(f"layer {self.name} ({self.type}), line {self.line}: parameter {key} must be an "
                            f"integer, got {value!r}")
        return value


@dataclass(frozen=True)
class NcnnGraph:
    """A parsed ``.param``: its layers in file order and the declared blob count."""

    path: Path
    layers: tuple[NcnnLayer, ...]
    blob_count: int


class NcnnState(dict[str, Tensor]):
    """``read_ncnn``'s result: ``{"<Type>:<layer>.weight|bias": tensor}`` plus the graph it came from and
    the ``.bin`` it was read from (``bin_bytes`` long, all consumed)."""

    def __init__(self, graph: NcnnGraph, bin_path: Path, bin_bytes: int) -> None:
        super().__init__()
        self.graph, self.bin_path, self.bin_bytes = graph, bin_path, bin_bytes


def _value(text: str) -> int | float:
    return float(text) if any(c in text for c in ".eE") else int(text)


def _parse_params(tokens: list[str], where: str) -> dict[int, ParamValue]:
    params: dict[int, ParamValue] = {}
    for token in tokens:
        key_text, sep, value = token.partition("=")
        try:
            key = int(key_text)
            items = value.split(",")
            parsed = tuple(_value(v) for v in items[1:]) if key <= _ARRAY else _value(value)
            count = int(items[0]) if key <= _ARRAY else None
        except ValueError:
            parsed, count, sep = 0, None, ""
        if not sep:
            raise NcnnError(f"{where}: cannot read parameter {token!r} (expected id=value or id=n,v1,...)")
        if isinstance(parsed, tuple) and count != len(parsed):
            raise NcnnError(f"{where}: array parameter {token!r} declares {count} values, has {len(parsed)}")
        params[_ARRAY - key if key <= _ARRAY else key] = parsed
    return params


def read_param(path: str | os.PathLike[str]) -> NcnnGraph:
    """Parse a text ``.param``; checks the magic, the counts on line 2, every layer line, and that every
    input blob was produced by an earlier layer. Raises ``NcnnError``."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("ascii")
    except FileNotFoundError:
        raise NcnnError(f"ncnn param file not found: {path}") from None
    except UnicodeDecodeError:
        raise NcnnError(f"{path}: not a text ncnn .param (binary content; ncnn2mem's .param.bin is not "
                        f"read)") from None
    lines = [(i + 1, ln.split()) for i, ln in enumerate(text.splitlines()) if ln.strip()]
    if not lines or lines[0][1] != [str(MAGIC)]:
        first = " ".join(lines[0][1])[:40] if lines else "empty"
        raise NcnnError(f"{path}: not an ncnn .param (first line {first!r}, expected the magic {MAGIC})")
    if len(lines) < 2 or len(lines[1][1]) != 2 or not all(t.isdigit() for t in lines[1][1]):
        raise NcnnError(f"{path}: line 2 must be '<layer count> <blob count>'")
    layer_count, blob_count = (int(t) for t in lines[1][1])
    body = lines[2:]
    if len(body) != layer_count:
        raise NcnnError(f"{path}: declares {layer_count} layers, has {len(body)} layer lines")
    layers: list[NcnnLayer] = []
    blobs: set[str] = set()
    for number, tokens in body:
        where = f"{path}, line {number}"
        if len(tokens) < 4 or not tokens[2].isdigit() or not tokens[3].isdigit():
            raise NcnnError(f"{where}: expected '<type> <name> <#inputs> <#outputs> <blobs...> <params...>'")
        n_in, n_out = int(tokens[2]), int(tokens[3])
        names = tokens[4 : 4 + n_in + n_out]
        if len(names) != n_in + n_out or any("=" in n for n in names):
            raise NcnnError(f"{where}: layer {tokens[1]} declares {n_in} inputs and {n_out} outputs but "
                            f"names fewer blobs")
        bottoms, tops = tuple(names[:n_in]), tuple(names[n_in:])
        unknown = [b for b in bottoms if b not in blobs]
        if unknown:
            raise NcnnError(f"{where}: layer {tokens[1]} reads blob {unknown[0]!r}, which no earlier layer "
                            f"produces")
        blobs.update(tops)
        layers.append(NcnnLayer(tokens[0], tokens[1], bottoms, tops,
                                _parse_params(tokens[4 + n_in + n_out :], where), number))
    if len(blobs) != blob_count:
        raise NcnnError(f"{path}: declares {blob_count} blobs, its layers produce {len(blobs)}")
    return NcnnGraph(path, tuple(layers), blob_count)


def bin_beside(param_path: str | os.PathLike[str]) -> Path:
    """The ``.bin`` that goes with ``param_path``: same name, suffix ``.bin``."""
    return Path(param_path).with_suffix(".bin")


class _Reader:
    """Walks the ``.bin`` bytes; every read names the layer it is for when the file runs out."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.path, self.offset = data, path, 0

    def take(self, size: int, layer: NcnnLayer, what: str) -> bytes:
        if self.offset + size > len(self.data):
            raise NcnnError(f"{self.path}: truncated: layer {layer.name} ({layer.type}) needs {size} bytes "
                            f"of {what} at offset {self.offset}, the file has {len(self.data)} bytes")
        chunk = self.data[self.offset : self.offset + size]
        self.offset += size
        return chunk

    def fp32(self, count: int, layer: NcnnLayer, what: str) -> Tensor:
        raw = self.take(4 * count, layer, what)
        return torch.from_numpy(np.frombuffer(raw, dtype="<f4").astype(np.float32))

    def tagged(self, count: int, layer: NcnnLayer, what: str) -> Tensor:
        """A tensor ncnn loads with type 0 ("auto"): a 4-byte tag, then fp16 (padded to 4 bytes) or fp32."""
        (tag,) = struct.unpack("<I", self.take(4, layer, f"{what} tag"))
        if tag == FP16_TAG:
            raw = self.take((2 * count + 3) // 4 * 4, layer, f"{what} (fp16)")
            return torch.from_numpy(np.frombuffer(raw[: 2 * count], dtype="<f2").astype(np.float32))
        if tag == FP32_TAG:
            return self.fp32(count, layer, f"{what} (fp32)")
        kind = _OTHER_TAGS.get(tag, "quantised (a 256-entry table)" if any(tag.to_bytes(4, "little"))
                               else "unknown")
        raise NcnnError(f"{self.path}: layer {layer.name} ({layer.type}) {what} at offset {self.offset - 4} "
                        f"has tag 0x{tag:08X} ({kind}); only fp32 (0x00000000) and fp16 (0x{FP16_TAG:08X}) "
                        f"weights are read")


def _conv_weight(layer: NcnnLayer, flat: Tensor, out: int) -> Tensor:
    kw = layer.int_param(1, 0)
    kh = layer.int_param(11, kw)
    groups = layer.int_param(7, 1) if layer.type.endswith("DepthWise") else 1
    per_out = kh * kw * out
    if out <= 0 or kw <= 0 or flat.numel() % per_out or out % groups:
        raise NcnnError(f"layer {layer.name} ({layer.type}), line {layer.line}: weight_data_size "
                        f"{flat.numel()} does not fit {out} outputs of {kh}x{kw} kernels in {groups} groups")
    in_per_group = flat.numel() // per_out
    if layer.type in _CONV:
        return flat.reshape(out, in_per_group, kh, kw)
    # ncnn: (groups, out/g, in/g, kh, kw), scatter form, unflipped; PyTorch ConvTranspose2d: (in, out/g, ...)
    return (flat.reshape(groups, out // groups, in_per_group, kh, kw).permute(0, 2, 1, 3, 4)
            .reshape(groups * in_per_group, out // groups, kh, kw).contiguous())


def _read_layer(layer: NcnnLayer, reader: _Reader) -> dict[str, Tensor]:
    """The tensors ``layer`` reads from the ``.bin``, in PyTorch layout (``weight``, ``bias``)."""
    where = f"layer {layer.name} ({layer.type}), line {layer.line}"
    if layer.type in _CONV or layer.type in _DECONV or layer.type == "InnerProduct":
        inner = layer.type == "InnerProduct"
        out, size = layer.int_param(0, 0), layer.int_param(2 if inner else 6, 0)
        has_bias = layer.int_param(1 if inner else 5, 0)
        if layer.int_param(8, 0):
            raise NcnnError(f"{where}: int8 quantised layers are not read")
        if not inner and layer.int_param(19, 0):
            raise NcnnError(f"{where}: dynamic weights (taken from an input blob) are not read")
        if out <= 0 or (inner and size % out):
            raise NcnnError(f"{where}: weight_data_size {size} does not fit {out} outputs")
        flat = reader.tagged(size, layer, "weight")
        tensors = {"weight": flat.reshape(out, size // out) if inner else _conv_weight(layer, flat, out)}
        if has_bias:
            tensors["bias"] = reader.fp32(out, layer, "bias")
        return tensors
    if layer.type == "PReLU":
        return {"weight": reader.fp32(layer.int_param(0, 0), layer, "slopes")}
    if layer.type == "Padding" and layer.int_param(6, 0):
        raise NcnnError(f"{where}: per-channel pad values are not read")
    if layer.type in WEIGHTLESS:
        return {}
    raise NcnnError(f"{where}: layer type {layer.type} is not known to this reader, so the bytes it stores "
                    f"cannot be accounted for")


def read_bin(graph: NcnnGraph, path: str | os.PathLike[str]) -> NcnnState:
    """The weights of ``graph`` from the ``.bin`` at ``path``: ``{"<Type>:<layer>.weight|bias": float32}``
    in file order. Raises ``NcnnError`` for a missing or truncated file, a refused tag, an unknown layer
    type, or bytes left over after the last layer."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NcnnError(f"ncnn weights not found: {path} (expected beside {graph.path.name})") from None
    reader = _Reader(data, path)
    state = NcnnState(graph, path, len(data))
    for layer in graph.layers:
        for key, tensor in _read_layer(layer, reader).items():
            state[f"{layer.type}:{layer.name}.{key}"] = tensor
    if reader.offset != len(data):
        raise NcnnError(f"{path}: {len(data) - reader.offset} bytes left over after the last layer (read "
                        f"{reader.offset} of {len(data)}): the .bin does not belong to {graph.path.name}")
    return state


def read_ncnn(param_path: str | os.PathLike[str]) -> NcnnState:
    """``read_bin(read_param(param_path), bin_beside(param_path))``."""
    graph = read_param(param_path)
    return read_bin(graph, bin_beside(param_path))


def _parametric_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in model.named_modules()
            if next(m.parameters(recurse=False), None) is not None]


def _layers_in_order(state: Mapping[str, Tensor]) -> list[tuple[str, str, dict[str, Tensor]]]:
    """``[(type, layer name, {"weight": ..., "bias": ...})]`` in the state's order."""
    out: dict[str, tuple[str, str, dict[str, Tensor]]] = {}
    for key, tensor in state.items():
        head, _, leaf = key.rpartition(".")
        kind, sep, name = head.partition(":")
        if not sep:
            raise NcnnError(f"key {key!r} is not '<Type>:<layer>.weight|bias' (not read by models.ncnn)")
        out.setdefault(head, (kind, name, {}))[2][leaf] = tensor
    return list(out.values())


def _pads(layer: NcnnLayer) -> tuple[int, int, int, int]:
    left = layer.int_param(4, 0)
    top = layer.int_param(14, left)
    return left, layer.int_param(15, left), top, layer.int_param(16, top)


def _as_tuple(value: object) -> tuple[object, ...]:
    return tuple(value) if isinstance(value, tuple | list) else (value,)


def _geometry_problem(layer: NcnnLayer, module: nn.Module) -> str | None:
    """How ``layer``'s kernel, stride, dilation, padding and groups differ from ``module``'s, or None."""
    if not isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
        return None
    kw = layer.int_param(1, 0)
    dw, sw = layer.int_param(2, 1), layer.int_param(3, 1)
    left, right, top, bottom = _pads(layer)
    ours = {"kernel": (layer.int_param(11, kw), kw), "stride": (layer.int_param(13, sw), sw),
            "dilation": (layer.int_param(12, dw), dw),
            "groups": layer.int_param(7, 1) if layer.type.endswith("DepthWise") else 1}
    theirs = {"kernel": module.kernel_size, "stride": module.stride, "dilation": module.dilation,
              "groups": module.groups}
    if left != right or top != bottom:
        return f"asymmetric padding (left {left}, right {right}, top {top}, bottom {bottom})"
    ours["padding"], theirs["padding"] = (top, left), module.padding
    if isinstance(module, nn.Conv2d):
        pad_value = layer.params.get(18, 0)
        if module.padding_mode != "zeros" or pad_value != 0:
            return f"padding differs (ncnn pads with {pad_value!r}, the module: {module.padding_mode})"
    else:
        right_pad = layer.int_param(18, 0)
        ours["output_padding"] = (layer.int_param(19, right_pad), right_pad)
        theirs["output_padding"] = module.output_padding
    for key, value in ours.items():
        if _as_tuple(value) != _as_tuple(theirs[key]):
            return f"{key} {value} vs model {theirs[key]}"
    return None


def fit_ncnn(model: nn.Module, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``state`` (from ``read_ncnn``) renamed to ``model``'s parameter names, by position.

    Raises ``NcnnError`` when the numbers of weighted layers and of modules owning parameters differ, or
    at the first pair whose kinds, bias presence or geometry differ; shapes are left to the strict load,
    which names the first mismatch (so ``vsr convert`` can try another scale)."""
    source = state.graph.path if isinstance(state, NcnnState) else "ncnn weights"
    by_name = {ly.name: ly for ly in state.graph.layers} if isinstance(state, NcnnState) else {}
    layers, modules = _layers_in_order(state), _parametric_modules(model)
    cls = type(model).__name__
    if len(layers) != len(modules):
        raise NcnnError(f"{source}: {len(layers)} ncnn layers with weights, {cls} has {len(modules)} modules "
                        f"with parameters (another architecture or configuration)")
    fitted: dict[str, Tensor] = {}
    for index, ((kind, name, tensors), (mod_name, module)) in enumerate(zip(layers, modules, strict=True)):
        want = _KINDS.get(kind)
        pair = f"{source}: ncnn layer {index} {name} ({kind}) and {cls} module {mod_name or '(root)'}"
        if want is None or not isinstance(module, want):
            raise NcnnError(f"{pair} ({type(module).__name__}) are not the same kind of layer")
        own = dict(module.named_parameters(recurse=False))
        if set(tensors) != set(own):
            raise NcnnError(f"{pair}: ncnn has {', '.join(sorted(tensors))}, the module "
                            f"{', '.join(sorted(own))}")
        problem = _geometry_problem(by_name[name], module) if name in by_name else None
        if problem:
            raise NcnnError(f"{pair}: {problem}")
        for leaf, tensor in tensors.items():
            fitted[f"{mod_name}.{leaf}" if mod_name else leaf] = tensor
    return fitted


def ncnn_names(model: nn.Module, state: Mapping[str, Tensor]) -> dict[str, str]:
    """``model``'s parameter names -> the ncnn names in ``state`` that :func:`fit_ncnn` gives them (by
    position): a fine-tune of ncnn weights can be stored under its base's own names."""
    by_id = {id(tensor): name for name, tensor in state.items()}
    return {mine: by_id[id(tensor)] for mine, tensor in fit_ncnn(model, state).items()}
