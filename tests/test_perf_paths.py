"""Fast paths give the right answer: bf16 vs fp32 agreement, bf16 chunked == whole, batched vs unbatched,
threads inside a Ray actor, precision choice, and the pipeline's --precision/--tile flags end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from models.registry import build_model
from models.video.basicvsr import BasicVSR
from tests.conftest import ROOT, shared_path, textured_frames
from tests.test_windows import random_weights
from vsr_pipeline import precision
from vsr_pipeline.engine import Engine, make_forward, run_model, to_frames
from vsr_pipeline.media import probe
from vsr_pipeline.metrics import psnr_y
from vsr_pipeline.precision import (
    FP32_CPU,
    Precision,
    resolve_precision,
)
from workers.upscaler import Upscaler

CPU = torch.device("cpu")
BF16 = Precision("bf16", CPU)


def _espcn(scale: int = 2, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model("espcn", scale).eval()


def test_auto_precision_is_bf16_on_the_cpu_only_where_measured_safe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    safe = precision.cpu_bf16_safe()
    assert "espcn" not in safe  # measured -0.07 dB: not on its spec
    assert resolve_precision("auto", CPU, "espcn") == "fp32-cl"
    assert resolve_precision("auto", CPU, "srcnn") == "fp32"  # not measured: plain fp32
    for name in safe:
        assert resolve_precision("auto", CPU, name) == "bf16"
    for name in set(precision.cpu_fp32_channels_last()) - set(safe):
        assert resolve_precision("auto", CPU, name) == "fp32-cl"
    assert resolve_precision("auto", torch.device("cuda"), "espcn") == "fp16"
    assert resolve_precision("auto", CPU, "basicvsr") == "bf16"  # measured -0.002 dB (fp32 state)
    assert resolve_precision("fp32", CPU, "basicvsr") == "fp32"
    with pytest.raises(ValueError, match="CUDA"):
        resolve_precision("fp16", CPU, "espcn")
    with pytest.raises(ValueError, match="unknown precision"):
        resolve_precision("fp8", CPU, "espcn")


def test_auto_precision_never_picks_bf16_on_a_cpu_without_bf16_units(monkeypatch: pytest.MonkeyPatch) -> None:
    """On an AVX2-only CPU bf16 is emulated (10x slower than fp32): auto falls back to fp32 channels-last."""
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    assert resolve_precision("auto", CPU, "basicvsr") == "fp32-cl"
    assert resolve_precision("bf16", CPU, "basicvsr") == "bf16"  # asked for explicitly: still allowed


def test_bf16_output_is_quantised_from_float32() -> None:
    """A bf16 tensor is widened before rounding to 8 bits: same levels as its float32 value."""
    x = torch.rand(2, 3, 5, 7).to(torch.bfloat16)
    assert np.array_equal(to_frames(x.clone()), to_frames(x.float()))


def test_bf16_agrees_with_fp32_single_image() -> None:
    model = _espcn()
    frames = textured_frames(4, 40, 32)
    fp32 = run_model(model, "none", frames, CPU, batch=2)
    bf16 = run_model(make_forward(BF16.prepare(_espcn()), BF16), "none", frames, CPU, batch=2)
    assert bf16.shape == fp32.shape
    assert psnr_y(bf16, fp32, 0) > 40
    assert np.abs(bf16.astype(int) - fp32).mean() < 1.0


def test_bf16_agrees_with_fp32_recurrent() -> None:
    torch.manual_seed(2)
    model = BasicVSR(num_feat=8, num_block=1).eval()
    frames = textured_frames(3, 32, 24, seed=1)
    fp32 = run_model(model, "recurrent", frames, CPU)
    bf16 = run_model(make_forward(BF16.prepare(model), BF16), "recurrent", frames, CPU)
    assert psnr_y(bf16, fp32, 0) > 38


def test_bf16_chunked_equals_whole_with_fixed_batches() -> None:
    """The fixed-shape batches keep chunked == whole exact in bf16 channels-last too."""
    fwd = make_forward(BF16.prepare(_espcn()), BF16)
    frames = textured_frames(7, 24, 16)
    whole = run_model(fwd, "none", frames, CPU, batch=3)
    for cut in (1, 3, 4):
        parts = np.concatenate([run_model(fwd, "none", frames[:cut], CPU, batch=3),
                                run_model(fwd, "none", frames[cut:], CPU, batch=3)])
        assert np.array_equal(parts, whole)


def test_fp32_channels_last_agrees_with_fp32_and_keeps_chunked_equal_whole() -> None:
    cl = Precision("fp32-cl", CPU)
    fwd = make_forward(cl.prepare(_espcn(seed=7)), cl)
    frames = textured_frames(7, 24, 16, seed=8)
    whole = run_model(fwd, "none", frames, CPU, batch=3)
    plain = run_model(_espcn(seed=7), "none", frames, CPU, batch=3)
    assert np.abs(whole.astype(int) - plain).max() <= 1
    parts = np.concatenate([run_model(fwd, "none", frames[:4], CPU, batch=3),
                            run_model(fwd, "none", frames[4:], CPU, batch=3)])
    assert np.array_equal(parts, whole)
    torch.manual_seed(2)
    rec = BasicVSR(num_feat=8, num_block=1).eval()
    seq = textured_frames(3, 32, 24, seed=1)
    fp32 = run_model(rec, "recurrent", seq, CPU)
    fp32_cl = run_model(make_forward(cl.prepare(rec), cl), "recurrent", seq, CPU)
    assert np.abs(fp32_cl.astype(int) - fp32).max() <= 1


def test_batched_equals_unbatched_within_rounding() -> None:
    """Batch 1 and batch 4 take different kernels (a few 1e-7 apart): at most one level, rarely."""
    model = _espcn(seed=3)
    frames = textured_frames(5, 24, 16, seed=4)
    one = run_model(model, "none", frames, CPU, batch=1)
    four = run_model(model, "none", frames, CPU, batch=4)
    diff = np.abs(one.astype(int) - four)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_tiled_forward_through_run_model_matches_whole() -> None:
    model = _espcn(seed=5)
    frames = textured_frames(2, 72, 40, seed=6)
    whole = run_model(model, "none", frames, CPU, batch=2)
    tiled = run_model(make_forward(model, FP32_CPU, tile=32, overlap=16), "none", frames, CPU, batch=2)
    assert np.abs(tiled.astype(int) - whole).max() <= 1


def test_upscaler_precision_settings(tmp_path: Path) -> None:
    weights = random_weights(tmp_path / "e.safetensors", "espcn", 2)
    up = Engine("espcn", weights, 2, "cpu", threads=1, batch=2, precision="bf16")
    assert up.settings()["precision"] == "bf16" and up.settings()["channels_last"]
    conv_weight = next(p for p in up.model.parameters() if p.dim() == 4)
    assert conv_weight.is_contiguous(memory_format=torch.channels_last)
    frames = textured_frames(3, 24, 16)
    ref = run_model(_load(weights), "none", frames, CPU, batch=2)
    assert psnr_y(up.process(slice(0, 3), slice(0, 3), frames), ref, 0) > 40
    assert "bf16" in up.device_name()


def _load(weights: str) -> torch.nn.Module:
    from vsr_pipeline.engine import load_upscaler_model

    return load_upscaler_model("espcn", weights, 2)


@pytest.mark.usefixtures("ray_local")
def test_actor_uses_the_threads_it_is_given(tmp_path: Path) -> None:
    """Ray starts a num_cpus=1 actor with OMP_NUM_THREADS=1; the Upscaler must still run the threads it
    is given (the pipeline gives it every core)."""
    import ray

    weights = random_weights(tmp_path / "e.safetensors", "espcn", 2)
    actor = ray.remote(num_cpus=1)(Upscaler).remote("espcn", weights, 2, "cpu", 2)
    assert ray.get(actor.settings.remote())["threads"] == 2
    assert "2 threads" in ray.get(actor.device_name.remote())
    ray.kill(actor)


@pytest.mark.usefixtures("ray_local")
def test_pipeline_precision_and_tile_flags(tmp_path: Path) -> None:
    """--precision bf16 --tile through the Ray job equals the Upscaler with the same settings, frame for
    frame (PNG output, lossless); fp16 on the CPU is a usage error."""
    from vsr_pipeline import UpscaleOptions, upscale
    from vsr_pipeline.errors import UsageError
    from vsr_pipeline.media import ImageFolderWriter, list_images, read_images

    weights = random_weights(tmp_path / "e.safetensors", "espcn", 2)
    frames = textured_frames(5, 40, 24)
    src = tmp_path / "lr"
    with ImageFolderWriter(src) as w:
        w.write(frames, list(range(len(frames))))
    out = tmp_path / "hr"
    opts = UpscaleOptions(model="espcn", weights=weights, scale=2, chunk=2, precision="bf16", tile=16,
                          overlap=4, batch=2, progress=False)
    upscale(src, out, opts)
    up = Engine("espcn", weights, 2, "cpu", batch=2, precision="bf16", tile=16, overlap=4)
    expected = np.concatenate([up.process(slice(0, len(c)), slice(0, len(c)), c)
                               for c in (frames[0:2], frames[2:4], frames[4:5])])
    assert np.array_equal(read_images(list_images(out)), expected)
    with pytest.raises(UsageError, match="CUDA"):
        upscale(src, tmp_path / "x", UpscaleOptions(model="espcn", weights=weights, scale=2, device="cpu",
                                                   precision="fp16", progress=False))


@pytest.mark.slow
@pytest.mark.usefixtures("ray_local")
def test_bench_command_reports_every_variant(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from tests.conftest import make_clip
    from vsr_pipeline.cli import main

    clip = make_clip(tmp_path / "in.mp4", textured_frames(4, 32, 24))
    code = main(["bench", "--model", "espcn", "--input", str(clip), "--frames", "3", "--scale", "4",
                 "--repeats", "1", "--device", "cpu", "--preset", "ultrafast", "--json"])
    assert code == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["frames"] == 3 and r["precision"] in ("fp32", "fp32-cl")  # espcn: no bf16 (-0.07 dB); probed
    assert "probe" in r["precision_reason"]
    for key in ("model_fps", "pipeline_fps", "naive_fps", "peak_rss_mb", "peak_pss_mb"):
        assert r[key] > 0, key
    assert r["pipeline_over_model"] == pytest.approx(r["pipeline_fps"] / r["model_fps"], abs=1e-3)
    assert {"Decoder", "Upscaler", "Encoder", "driver"} <= set(r["stage_busy"])
    assert r["upscaler_startup_s"] > 0 and r["pipeline_fps_after_startup"] > r["pipeline_fps"]
    # the upscaler actor's forward time inside the pipeline: real, and only part of the pipeline's wall time
    assert 0 < r["seconds"]["pipeline_model"][0] < r["seconds"]["pipeline"][0]
    assert r["pipeline_outside_model_s"] >= r["upscaler_startup_s"] * 0.5
    assert r["pipeline_head_s"] > 0 and r["pipeline_tail_s"] > 0
    assert r["pipeline_head_s"] + r["pipeline_tail_s"] <= r["pipeline_outside_model_s"] + 0.05
    assert sum(r["naive_share"].values()) <= 1.0 + 1e-6
    # the bound from each stage alone: its definition, and every stage measured
    cpu = r["stage_cpu_s_per_frame"]
    assert all(cpu[k] > 0 for k in ("decode", "model", "encode"))
    walls = r["stage_wall_s"]
    limit = max(walls["model"], walls["encode"], sum(cpu.values()) * 3 / (os.cpu_count() or 1))
    slack = 0.0006  # the walls are rounded to 1 ms and the CPU figures to 10 us per frame in the JSON
    assert 3 / (limit + slack) <= r["bound_fps"] <= 3 / max(limit - slack, 1e-9)
    assert r["pipeline_over_bound"] == pytest.approx(r["pipeline_fps"] / r["bound_fps"], abs=1e-3)
    # Ray was running already (the fixture): its start and stop, which a `vsr upscale` run pays, not known
    assert r["ray_start_s"] is None and r["ray_stop_s"] is None and r["cli_fps"] is None
    from vsr_pipeline.bench import format_bench

    assert "with Ray" not in format_bench(r)
    started = r | {"ray_start_s": 2.0, "ray_stop_s": 1.0, "cli_fps": r["model_fps"] / 2}
    assert "x0.50 of model only: a `vsr upscale` run also starts Ray (2.0 s)" in format_bench(started)


@pytest.mark.slow
def test_gpu_table_script_runs_on_the_cpu_and_fp32_is_its_own_reference(tmp_path: Path) -> None:
    """benchmarks/speed_gpu_table.py (run by hand on a lent GPU) end to end on the CPU at tiny sizes: real
    clips and weights extracted, one row per model, precision and variant, PSNR against fp32 and the
    ground truth."""
    shared_path("videos", "bigbuckbunny.mp4")  # skips without the shared data
    script = [sys.executable, str(ROOT / "benchmarks" / "speed_gpu_table.py")]
    carry, out = tmp_path / "carry", tmp_path / "table.json"
    subprocess.run([*script, "--extract", str(carry), "--pipeline-frames", "6"], check=True, timeout=300)
    assert (carry / "weights" / "basicvsr" / "BasicVSR_REDS4.pth").stat().st_size
    assert probe(carry / "clip_320x180.mp4").frames == 6
    subprocess.run([*script, "--device", "cpu", "--carry", str(carry), "--models", "basicvsr", "espcn",
                    "--precisions", "fp32", "bf16", "--frames", "2", "--sequences", "2", "--basicvsr-size",
                    "16x24", "--image-size", "16x24", "--image-frames", "2", "--repeats", "1", "--batch", "2",
                    "--threads", "2", "--pipeline-frames", "0", "--out", str(out)], check=True, timeout=300)
    table = json.loads(out.read_text())
    assert [(r["model"], r["precision"], r["sequences"]) for r in table["rows"]] == [
        ("basicvsr", "fp32", 1), ("basicvsr", "bf16", 1), ("basicvsr", "bf16", 2), ("espcn", "fp32", None),
        ("espcn", "bf16", None)]
    assert all(r["fps"] > 0 and r["input"] == "24x16" for r in table["rows"])
    fp32, bf16 = table["rows"][:2]
    assert fp32["psnr_vs_fp32_db"] is None and 40 < bf16["psnr_vs_fp32_db"] < 100
    assert fp32["weights"] == "reds4 (carried)"


def test_compiling_basicvsr_compiles_its_steps_and_keeps_its_parameter_names() -> None:
    """``--compile`` on a recurrent model compiles SPyNet, the trunks and the reconstruction (not the T-step
    loop: one graph per chunk length, unrolled), in place: the checkpoint's keys still load strictly."""
    from vsr_pipeline.engine import compile_model

    net = BasicVSR(num_feat=8, num_block=1)
    keys = list(net.state_dict())
    assert compile_model(net) is net
    assert list(net.state_dict()) == keys
    assert all(getattr(m, "_compiled_call_impl", None) is not None
               for m in (net.spynet, net.backward_trunk, net.forward_trunk))
    net.load_state_dict(BasicVSR(num_feat=8, num_block=1).state_dict(), strict=True)
