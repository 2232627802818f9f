"""Every checkpoint layout of one set of weights loads to the same model: BasicSR (params / params_ema),
mmagic (state_dict + generator.), plain, DataParallel-prefixed, and safetensors written by `vsr convert`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from models.registry import ModelError, build_model
from models.weights import (
    load_weights,
    read_checkpoint,
    read_metadata,
    save_basicsr,
    save_mmagic,
    save_safetensors,
    sha256_file,
)
from vsr_pipeline import errors
from vsr_pipeline.cli import main

CASES = [("espcn", 3), ("edsr-baseline", 2)]  # flat Sequential names; nested ResBlock/upsampler names


def _build(name: str, scale: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    try:
        return build_model(name, scale).eval()
    except ModelError as exc:
        pytest.skip(f"model {name} is not available yet: {exc}")


def _out(model: nn.Module) -> torch.Tensor:
    torch.manual_seed(7)
    with torch.no_grad():
        return model(torch.rand(1, 3, 10, 12))


def _write(layout: str, state: dict[str, torch.Tensor], other: dict[str, torch.Tensor], tmp: Path) -> Path:
    """``state`` in ``layout``; ``other`` is a decoy that must not be the one loaded."""
    path = tmp / f"{layout}.pth"
    if layout == "basicsr":
        save_basicsr(state, path)
    elif layout == "basicsr-ema":
        save_basicsr(other, path, ema=state)  # BasicSR keeps training weights in params, EMA in params_ema
    elif layout == "mmagic":
        save_mmagic(state, path)
    elif layout == "plain":
        torch.save(state, path)
    elif layout == "dataparallel":
        torch.save({f"module.{k}": v for k, v in state.items()}, path)
    elif layout == "safetensors":
        path = path.with_suffix(".safetensors")
        save_safetensors(state, path)
    return path


LAYOUTS = ["basicsr", "basicsr-ema", "mmagic", "plain", "dataparallel", "safetensors"]


@pytest.mark.parametrize(("name", "scale"), CASES)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_gives_identical_outputs(tmp_path: Path, name: str, scale: int, layout: str) -> None:
    trained, decoy = _build(name, scale, 0), _build(name, scale, 1)
    path = _write(layout, trained.state_dict(), decoy.state_dict(), tmp_path)
    fresh = _build(name, scale, 2)
    expected = _out(trained)
    assert not torch.equal(_out(fresh), expected)
    load_weights(fresh, path)
    assert torch.equal(_out(fresh), expected)
    fmt = read_checkpoint(path)[1]
    assert fmt == {"dataparallel": "plain"}.get(layout, layout)


@pytest.mark.parametrize(("name", "scale"), CASES)
@pytest.mark.parametrize("layout", ["basicsr-ema", "mmagic", "dataparallel"])
def test_vsr_convert_then_load(tmp_path: Path, name: str, scale: int, layout: str) -> None:
    trained, decoy = _build(name, scale, 0), _build(name, scale, 1)
    src = _write(layout, trained.state_dict(), decoy.state_dict(), tmp_path)
    dst = tmp_path / "converted.safetensors"
    assert main(["convert", str(src), str(dst), "--model", name]) == errors.EXIT_OK
    meta = read_metadata(dst)
    assert meta["source_sha256"] == sha256_file(src) and meta["source_name"] == src.name
    assert (meta["source_format"], meta["model"], meta["scale"]) == (
        {"dataparallel": "plain"}.get(layout, layout), name, str(scale))
    fresh = _build(name, scale, 2)
    load_weights(fresh, dst)
    assert torch.equal(_out(fresh), _out(trained))
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


class _Planted:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch '{self.marker}'",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_planted_pickle_is_refused_by_load_and_convert(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    marker = tmp_path / "ran"
    model = _build("espcn", 2, 0)
    path = tmp_path / "planted.pth"
    torch.save({"params": model.state_dict(), "meta": _Planted(marker)}, path)
    with pytest.raises(ValueError, match="refused"):
        load_weights(model, path)
    out = tmp_path / "planted.safetensors"
    assert main(["convert", str(path), str(out)]) == errors.EXIT_MODEL
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "refused" in err[0]
    assert not marker.exists() and not out.exists()
