"""`vsr models` and `vsr convert`, run in-process through vsr_pipeline.cli.main."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models.registry import ModelError, ModelSpec, build_model, count_params, get_spec, register
from models.weights import read_metadata, save_basicsr, save_mmagic
from vsr_pipeline import errors
from vsr_pipeline.cli import main
from vsr_pipeline.model_commands import model_row

FIELDS = {"name", "kind", "temporal", "radius", "params", "params_scale", "scales", "upsampling",
          "accepts_backbone", "needs_weights", "weights", "registered_weights", "default_weights",
          "compressed_weights", "summary"}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _models(capsys: pytest.CaptureFixture[str]) -> dict[str, dict]:
    code, out, err = _run(capsys, "models", "--json")
    assert code == errors.EXIT_OK, err
    return {m["name"]: m for m in json.loads(out.strip().splitlines()[-1])["models"]}



def test_models_json_lists_every_model_with_its_fields(capsys: pytest.CaptureFixture[str]) -> None:
    models = _models(capsys)
    assert sum(m["kind"] == "sisr" for m in models.values()) >= 15
    video = {n for n, m in models.items() if m["kind"] == "video"}
    assert video >= {"basicvsr", "vespcn", "edvr-m", "edvr-l"}
    for m in models.values():
        assert set(m) >= FIELDS, m["name"]
        assert m["params_scale"] == (4 if 4 in m["scales"] else m["scales"][0])
        if "error" in m:
            assert m["params"] is None and "\n" not in m["error"]
        elif m["needs_weights"]:
            assert isinstance(m["params"], int) and m["params"] > 0, m["name"]
    assert models["bicubic"]["params"] == 0 and models["bicubic"]["upsampling"] == "none"
    assert models["espcn"]["params"] == 37_200  # RGB ESPCN at x4 (docstring of models/sisr/espcn.py)
    vsr = models["basicvsr"]
    assert (vsr["temporal"], vsr["radius"], vsr["default_weights"]) == ("recurrent", 0, "reds4")
    assert vsr["registered_weights"] == ["reds4", "vimeo-bi", "vimeo-bd", "compressed"]  # registration order
    edvr = models["edvr-l"]
    assert (edvr["temporal"], edvr["radius"], edvr["accepts_backbone"]) == ("window", 2, True)


@pytest.mark.parametrize("name", ["srcnn", "edsr-baseline", "lapsrn", "basicvsr"])
def test_listed_params_match_a_real_build(name: str) -> None:
    """The listing counts on the meta device; a normal CPU build must give the same number."""
    row = model_row(get_spec(name))
    if "error" in row:
        pytest.skip(row["error"])
    assert row["params"] == count_params(build_model(name, row["params_scale"]))


def test_broken_model_is_listed_with_an_error(capsys: pytest.CaptureFixture[str],
                                              scratch_specs: None) -> None:
    register(ModelSpec("zz-broken", "sisr", "none", (2,), "models.no_such_module:Net", {}, {}, None))
    code, out, err = _run(capsys, "models")
    assert code == errors.EXIT_OK, err
    line = next(ln for ln in out.splitlines() if ln.startswith("zz-broken"))
    assert "ERROR" in line and "not importable" in line
    broken = _models(capsys)["zz-broken"]
    assert broken["params"] is None and "models.no_such_module" in broken["error"]


def _espcn(scale: int) -> torch.nn.Module:
    torch.manual_seed(scale)
    try:
        return build_model("espcn", scale)
    except ModelError as exc:
        pytest.skip(str(exc))


def test_convert_finds_the_scale_and_refuses_to_overwrite(capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    src, dst = tmp_path / "espcn.pth", tmp_path / "espcn.safetensors"
    save_basicsr(_espcn(3).state_dict(), src)
    code, out, err = _run(capsys, "convert", str(src), str(dst), "--model", "espcn", "--json")
    assert code == errors.EXIT_OK, err
    result = json.loads(out.strip().splitlines()[-1])
    assert (result["model"], result["scale"], result["source_format"], result["output"]) == (
        "espcn", "3", "basicsr", str(dst))
    assert read_metadata(dst)["scale"] == "3" and result["bytes"] == dst.stat().st_size

    before = dst.read_bytes()
    code, _, err = _run(capsys, "convert", str(src), str(dst))
    assert code == errors.EXIT_USAGE and "output exists" in err and "--overwrite" in err
    assert dst.read_bytes() == before
    code, _, err = _run(capsys, "convert", str(src), str(dst), "--overwrite")
    assert code == errors.EXIT_OK, err


def test_convert_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    src = tmp_path / "espcn_x3.pth"
    save_mmagic(_espcn(3).state_dict(), src)
    out = tmp_path / "o.safetensors"

    code, _, err = _run(capsys, "convert", str(src), str(out), "--model", "espcn", "--scale", "2")
    lines = err.strip().splitlines()
    assert code == errors.EXIT_MODEL and len(lines) == 1
    assert "(mmagic) do not fit model espcn (x2); at x2: 2 shape mismatches: body.4.weight" in lines[0]

    code, _, err = _run(capsys, "convert", str(src), str(out), "--model", "srcnn")
    assert code == errors.EXIT_MODEL and "missing keys" in err and "unexpected keys: body.0.weight" in err
    assert not out.exists()

    code, _, err = _run(capsys, "convert", str(src), str(out), "--model", "bicubic")
    assert code == errors.EXIT_USAGE and "no parameters" in err
    code, _, err = _run(capsys, "convert", str(src), str(tmp_path / "o.pth"))
    assert code == errors.EXIT_USAGE and "must end in .safetensors" in err
    code, _, err = _run(capsys, "convert", str(tmp_path / "absent.pth"), str(out))
    assert code == errors.EXIT_USAGE and "not found" in err
    code, _, err = _run(capsys, "convert", str(src), str(out), "--model", "nope")
    assert code == errors.EXIT_MODEL and "unknown model 'nope'" in err
    assert not out.exists()
