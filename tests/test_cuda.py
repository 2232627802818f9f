"""The CUDA paths (issue 22), skipped without an NVIDIA GPU: fp16/bf16 autocast, tiling and a real
out-of-memory back-off, ``torch.compile``, torchvision's deformable convolution against ours, the upscaler
actor placed with ``num_gpus``, chunked == whole, and every model with weights against the CPU.

Real frames and the BasicVSR weights come from ``.gpu_carry`` (``benchmarks/speed_gpu_table.py --extract``;
the GPU machine has neither ../shared nor the weights package) or, here, from ../shared and the installed
packages. ``VSR_CUDA_TESTS_DEVICE=cpu`` runs the tests' own code on the CPU (a dry run of this file before a
GPU session; the CUDA-only checks skip): what they compare is then trivially equal.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from models.registry import WeightsNotFoundError, get_spec, list_specs, resolve_weights
from tests.conftest import ROOT, SHARED, make_clip, textured_frames
from tests.test_deform_conv import _random_case
from tests.test_windows import random_weights
from vsr_pipeline.engine import Engine
from vsr_pipeline.metrics import psnr_y

GPU = os.environ.get("VSR_CUDA_TESTS_DEVICE", "cuda")
CARRY = Path(os.environ.get("VSR_GPU_CARRY", ROOT / ".gpu_carry"))
pytestmark = pytest.mark.skipif(GPU == "cuda" and not torch.cuda.is_available(),
                                reason="needs an NVIDIA GPU (issue 22; docs/performance.md, CUDA)")


def cuda_only() -> None:
    if GPU != "cuda":
        pytest.skip("a CUDA-only feature (dry run on the CPU)")


def carried_weights(model: str) -> str | None:
    """The weights file for ``model``: carried (``.gpu_carry/weights/<model>/``), else the registered
    default's file; None (the test skips) when neither is here."""
    folder = CARRY / "weights" / model
    found = sorted(p for p in folder.glob("*") if p.suffix in (".pth", ".safetensors", ".param"))
    if found:
        return str(found[0])
    try:
        path = resolve_weights(model, None, scale_of(model))
    except WeightsNotFoundError:
        return None
    return None if path is None else str(path)


def scale_of(model: str) -> int:
    scales = get_spec(model).scales
    return 4 if 4 in scales else scales[0]


def real_frames(n: int, height: int = 272, width: int = 640) -> np.ndarray:
    """The first ``n`` frames of bikes.mp4 (real H.264 footage), cropped to ``height x width``."""
    from vsr_pipeline.media.reader import FrameReader

    for path in (CARRY / "bikes.mp4", SHARED / "videos" / "bikes.mp4"):
        if path.exists():
            with FrameReader(path) as reader:
                rgb, _ = reader.read(n)
            return np.ascontiguousarray(rgb[:, :height, :width])
    pytest.skip("bikes.mp4 is neither carried (.gpu_carry) nor in ../shared/data")


def lr_and_gt(n: int) -> tuple[np.ndarray, np.ndarray]:
    from vsr_pipeline.degrade import degrade_bi

    gt = real_frames(n)
    return degrade_bi(gt, 4), gt


def run(engine: Engine, lr: np.ndarray) -> np.ndarray:
    n = len(lr)
    return engine.process(slice(0, n), slice(0, n), lr)


def mean_psnr(a: np.ndarray, b: np.ndarray, crop: int = 0) -> float:
    return float(np.mean([psnr_y(x, y, crop) for x, y in zip(a, b, strict=True)]))


def differing(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    """Largest absolute difference (8-bit levels) and the share of values that differ."""
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return int(d.max()), float((d > 0).mean())


@pytest.mark.parametrize(("model", "precision"),
                         [("basicvsr", "fp16"), ("basicvsr", "bf16"), ("espcn", "fp16")])
def test_autocast_stays_within_0_02_db_of_fp32_on_real_frames(model: str, precision: str) -> None:
    """auto's rule (vsr_pipeline.precision): a lower precision is kept only within 0.02 dB Y-PSNR of fp32."""
    if precision == "fp16":
        cuda_only()
    weights = carried_weights(model)
    if weights is None:
        pytest.skip(f"no weights for {model} here")
    lr, gt = lr_and_gt(12)
    psnr = {p: mean_psnr(run(Engine(model, weights, 4, GPU, batch=4, precision=p), lr), gt, 4)
            for p in ("fp32", precision)}
    delta = psnr[precision] - psnr["fp32"]
    assert abs(delta) <= 0.02, f"{model} {precision}: {psnr} (delta {delta:+.4f} dB)"


def test_tiles_on_the_gpu_give_the_whole_frames() -> None:
    """ESPCN's receptive field (4 LR pixels) fits in a quarter of the 16-pixel overlap: tiles change nothing
    but float rounding."""
    lr, _ = lr_and_gt(4)
    whole = run(Engine("espcn", None, 4, GPU, batch=2, precision="fp32"), lr)
    tiled = run(Engine("espcn", None, 4, GPU, batch=2, precision="fp32", tile=48), lr)
    worst, share = differing(whole, tiled)
    assert worst <= 1 and share < 1e-3, (worst, share)


def test_a_real_out_of_memory_backs_off_to_tiles_and_keeps_the_frames(tmp_path: Path) -> None:
    """The GPU is capped (``set_per_process_memory_fraction``) so that a 540x960 frame's dense features
    (RRDBNet: 192 channels at LR size, ~0.4 GB each) cannot fit but the HR output can: the engine backs off to
    tiles and produces what an uncapped engine with the same tiles produces."""
    cuda_only()
    weights = random_weights(tmp_path / "rrdb.safetensors", "realesrgan-anime", 4)  # memory, not values
    big = np.ascontiguousarray(np.tile(real_frames(1, 270, 480), (1, 2, 2, 1)))  # (1, 540, 960, 3)
    capped = Engine("realesrgan-anime", weights, 4, GPU, batch=1, precision="fp16")
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction((torch.cuda.memory_allocated() + 640 * 2**20) / total)
    try:
        out = run(capped, big)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert capped.backoffs, "no out-of-memory error under the cap: the test no longer tests the back-off"
    ref = run(Engine("realesrgan-anime", weights, 4, GPU, batch=1, precision="fp16", tile=capped.tile), big)
    assert out.shape == (1, 2160, 3840, 3)
    worst, share = differing(out, ref)  # under the cap cuDNN may pick kernels with less workspace
    assert worst <= 2 and share < 0.01, (capped.backoffs, worst, share)


@pytest.mark.parametrize("model", ["espcn", "basicvsr"])
def test_compiled_gives_the_eager_frames(model: str) -> None:
    """``--compile`` (BasicVSR: its per-frame parts, ``compile_steps``) in auto's precision."""
    cuda_only()
    weights = carried_weights(model)
    if weights is None:
        pytest.skip(f"no weights for {model} here")
    lr, _ = lr_and_gt(8)
    eager = run(Engine(model, weights, 4, GPU, batch=4, precision="auto"), lr)
    compiled_engine = Engine(model, weights, 4, GPU, batch=4, precision="auto", compile=True)
    compiled = run(compiled_engine, lr)
    again = compiled_engine.process(slice(0, 6), slice(1, 5), lr)  # another chunk length: no recompile crash
    assert again.shape == (4, *eager.shape[1:])
    worst, share = differing(eager, compiled)  # fused kernels round fp16 intermediates differently
    assert mean_psnr(eager, compiled) > 45, (mean_psnr(eager, compiled), worst, share)


@pytest.mark.parametrize(("stride", "padding", "dilation", "dgroups"),
                         [(1, 1, 1, 1), (1, 1, 1, 8), (2, 1, 1, 4), (1, 2, 2, 2)])
def test_torchvision_deform_conv_agrees_with_ours_on_the_gpu(stride: int, padding: int, dilation: int,
                                                            dgroups: int) -> None:
    from models.ops.deform_conv import modulated_deform_conv2d, torchvision_deform_conv2d

    if torchvision_deform_conv2d() is None:
        pytest.skip("torchvision cannot be imported here")
    case = _random_case(9, 16, 8, 30, 34, (3, 3), (stride,) * 2, (padding,) * 2, (dilation,) * 2, dgroups,
                        n=2)
    x, offset, mask, weight, bias = (t.to(GPU) for t in case)
    args = (x, offset, mask, weight, bias, stride, padding, dilation, dgroups)
    tv = modulated_deform_conv2d(*args, backend="torchvision")
    pure = modulated_deform_conv2d(*args, backend="pure")
    cpu = modulated_deform_conv2d(*case, stride, padding, dilation, dgroups, backend="pure")
    torch.testing.assert_close(pure, tv, atol=1e-4, rtol=0)
    torch.testing.assert_close(pure.cpu(), cpu, atol=1e-4, rtol=0)


@pytest.mark.ray
def test_the_upscaler_actor_runs_on_the_gpu_it_is_placed_on(tmp_path: Path, ray_local: None) -> None:
    """Ray hides the GPU from an actor placed without ``num_gpus`` (CUDA_VISIBLE_DEVICES=""), so a CUDA job
    that finishes had its upscaler placed on one."""
    import ray

    from vsr_pipeline import UpscaleOptions, release_warm_upscalers, upscale, warm_actors
    from vsr_pipeline.media import FrameReader, probe

    release_warm_upscalers()
    if GPU == "cuda":
        assert ray.cluster_resources().get("GPU", 0) >= 1, ray.cluster_resources()
    src = make_clip(tmp_path / "in.mp4", textured_frames(12, 64, 48))
    res = upscale(src, tmp_path / "out.mp4", UpscaleOptions(model="espcn", device=GPU, progress=False))
    name = torch.cuda.get_device_name(0) if GPU == "cuda" else "cpu"
    assert name in res.device, res.device
    info = probe(tmp_path / "out.mp4")
    assert (info.frames, info.width, info.height) == (12, 256, 192)

    # the next job takes the warm upscaler (its GPU slot kept) and the idle decoder and encoder, and writes
    # the same frames
    (upscaler,) = warm_actors._parked.actors if warm_actors._parked else [None]
    idle = warm_actors.idle_count()
    assert upscaler is not None and idle == 2
    again = upscale(src, tmp_path / "again.mp4", UpscaleOptions(model="espcn", device=GPU, progress=False))
    assert again.device == res.device and warm_actors._parked is not None
    assert warm_actors._parked.actors == [upscaler] and warm_actors.idle_count() == idle
    with FrameReader(tmp_path / "out.mp4") as a, FrameReader(tmp_path / "again.mp4") as b:
        assert np.array_equal(a.read(12)[0], b.read(12)[0])

    # a job of another model: the same actor loads it on its GPU (``Upscaler.swap``) and writes what a new
    # actor writes; the old model's memory is given back: live bytes within 64 KiB of a new actor's (ESPCN's
    # weights alone are 150 KB)
    fsrcnn = UpscaleOptions(model="fsrcnn", scale=4, device=GPU, progress=False)
    upscale(src, tmp_path / "swapped.mp4", fsrcnn)
    assert warm_actors._parked is not None and warm_actors._parked.actors == [upscaler]
    swapped_bytes = ray.get(upscaler.memory.remote())  # type: ignore[attr-defined]
    release_warm_upscalers()
    upscale(src, tmp_path / "new.mp4", fsrcnn)
    assert warm_actors._parked is not None
    new_bytes = ray.get(warm_actors._parked.actors[0].memory.remote())
    assert swapped_bytes <= new_bytes + 64 * 1024, (swapped_bytes, new_bytes)
    with FrameReader(tmp_path / "swapped.mp4") as a, FrameReader(tmp_path / "new.mp4") as b:
        assert np.array_equal(a.read(12)[0], b.read(12)[0])
    release_warm_upscalers()


def test_basicvsr_chunks_give_the_same_frames_as_sequences_of_four_or_alone() -> None:
    """``--sequences 4``: one forward pass of 4 chunks (``Engine.process_group``) gives each chunk what it
    gives padded alone, bit for bit; against one sequence per pass (other kernels), close (fp16)."""
    weights = carried_weights("basicvsr")
    if weights is None:
        pytest.skip("no weights for basicvsr here")
    lr, _ = lr_and_gt(12)
    items = [(slice(2 * i, 2 * i + 6), slice(2, 4), 1) for i in range(4)]
    four = Engine("basicvsr", weights, 4, GPU, precision="auto", sequences=4)
    together = four.process_group(items, lr, lr, lr, lr)
    alone = [four.process(w, k, lr) for w, k, _ in items]
    assert all(np.array_equal(a, b) for a, b in zip(together, alone, strict=True))
    one = Engine("basicvsr", weights, 4, GPU, precision="auto")
    single, grouped = np.concatenate([one.process(w, k, lr) for w, k, _ in items]), np.concatenate(together)
    assert mean_psnr(grouped, single) > 45, differing(grouped, single)


@pytest.mark.ray
@pytest.mark.parametrize("model", ["espcn", "basicvsr"])
def test_chunked_equals_whole_on_the_gpu(tmp_path: Path, ray_local: None, model: str) -> None:
    """Through the pipeline in auto's precision: every chunking gives the whole clip's frames (recurrent
    models with padding covering the clip)."""
    from vsr_pipeline import UpscaleOptions, upscale
    from vsr_pipeline.media import list_images, read_images

    weights = carried_weights(model)
    if weights is None:
        pytest.skip(f"no weights for {model} here")
    lr, _ = lr_and_gt(7)
    lr = np.ascontiguousarray(lr[:, :40, :56])
    src = tmp_path / "lr"
    src.mkdir()
    import cv2

    for i, frame in enumerate(lr):
        cv2.imwrite(str(src / f"{i:04d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    runs = [(100, 0), (3, 0)] if model == "espcn" else [(7, 0), (2, 7)]
    outs = []
    for chunk, padding in runs:
        out = tmp_path / f"sr{chunk}"
        upscale(src, out, UpscaleOptions(model=model, weights=weights, device=GPU, chunk=chunk,
                                         padding=padding, progress=False))
        outs.append(read_images(list_images(out)))
    assert outs[0].shape == (7, 160, 224, 3)
    assert np.array_equal(outs[0], outs[1]), differing(outs[0], outs[1])


def _models_with_weights() -> list[str]:
    return sorted(s.name for s in list_specs() if s.parametric and s.weights)


@pytest.mark.parametrize("model", _models_with_weights())
def test_every_model_with_weights_gives_the_cpus_frames_on_the_gpu(model: str) -> None:
    """fp32 on both (cuDNN's TF32 off, ``Precision.autocast``): at most 1 level apart on under 1 % of the
    values (different kernels round differently; recurrent flows carry it from frame to frame)."""
    weights = carried_weights(model)
    if weights is None:
        pytest.skip(f"no weights for {model} here")
    spec = get_spec(model)
    scale = scale_of(model)
    frames = 5 if spec.kind == "video" else 2
    lr = real_frames(frames, 48 * 4, 64 * 4)[:, ::4, ::4].copy()  # (T, 48, 64, 3)
    cpu = run(Engine(model, weights, scale, "cpu", batch=2, precision="fp32"), lr)
    gpu = run(Engine(model, weights, scale, GPU, batch=2, precision="fp32"), lr)
    worst, share = differing(cpu, gpu)
    assert worst <= 1 and share < 0.01, (worst, share, mean_psnr(cpu, gpu))


def test_ten_bit_frames_cross_the_gpu_exactly() -> None:
    """uint16 frames go up and come back through torch's uint16 (copies only, which CUDA supports since 2.3):
    a 10-bit job's frames on the GPU equal the CPU's within one 16-bit step of rounding, and the round
    trip to_tensor -> to_frames is exact."""
    from vsr_pipeline.engine import to_frames, to_tensor

    frames = (np.random.default_rng(0).random((2, 24, 40, 3)) * 65535).round().astype(np.uint16)
    back = to_frames(to_tensor(frames, torch.device(GPU)), np.uint16)
    assert back.dtype == np.uint16 and np.array_equal(back, frames)
    lr = (real_frames(3, 48 * 4, 64 * 4)[:, ::4, ::4].astype(np.uint16) * 257).copy()
    cpu = run(Engine("espcn", None, 4, "cpu", batch=2, precision="fp32", bit_depth=10), lr)
    gpu = run(Engine("espcn", None, 4, GPU, batch=2, precision="fp32", bit_depth=10), lr)
    assert cpu.dtype == gpu.dtype == np.uint16
    assert np.abs(cpu.astype(np.int64) - gpu).max() <= 64  # a 10-bit level is 64 of these
