"""``--precision auto`` chosen by this machine (``vsr_pipeline.autotune``): the hardware decides the
candidates, a timed probe of the real model picks among them, the result is cached per machine, model and
frame size, and a forced precision always wins."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from vsr_pipeline import autotune, precision
from vsr_pipeline.options import ModelSettings

CPU = torch.device("cpu")


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VSR_CACHE_DIR", str(tmp_path))
    return tmp_path / "autotune.json"


@pytest.fixture()
def probes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, tuple[int, ...]]]:
    """Every timed candidate: (model, precision, frames shape); the real timing still runs. The machine is
    taken as idle (a busy machine's probe is not cached: tested on its own)."""
    calls: list[tuple[str, str, tuple[int, ...]]] = []
    real = autotune.time_candidates

    def spy(spec, settings, device, frames, precisions, threads=0):  # type: ignore[no-untyped-def]
        calls.extend((spec.name, p, frames.shape) for p in precisions)
        return real(spec, settings, device, frames, precisions, threads)

    monkeypatch.setattr(autotune, "time_candidates", spy)
    monkeypatch.setattr(autotune.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    return calls


def test_candidates_follow_the_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    from models.registry import get_spec

    basicvsr, espcn = get_spec("basicvsr"), get_spec("espcn")
    monkeypatch.setattr(autotune, "cpu_has_bf16", lambda: True)
    assert set(autotune.candidates(basicvsr, CPU)[0]) == {"bf16", "fp32", "fp32-cl"}
    assert "bf16" not in autotune.candidates(espcn, CPU)[0]  # the quality gate: -0.07 dB measured
    monkeypatch.setattr(autotune, "cpu_has_bf16", lambda: False)  # an AVX2-only CPU: bf16 is emulated
    allowed, why = autotune.candidates(basicvsr, CPU)
    assert set(allowed) == {"fp32", "fp32-cl"} and "without bf16 units" in why
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 0))
    assert autotune.candidates(basicvsr, torch.device("cuda"))[0] == ["fp16"]
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    assert autotune.candidates(basicvsr, torch.device("cuda"))[0] == ["fp16", "bf16"]


def test_bf16_units_are_the_cpus_not_onednns_emulation(monkeypatch: pytest.MonkeyPatch) -> None:
    """oneDNN's bf16 query also says yes for AVX-512 without bf16 units (Skylake to Ice Lake), where bf16
    is emulated, 4x slower than fp32 channels-last for BasicVSR: x86 needs AVX-512 BF16 or AMX-BF16 in the
    CPU's flags, and no ``ONEDNN_MAX_CPU_ISA`` cap below them."""
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    monkeypatch.setattr(precision.platform, "machine", lambda: "x86_64")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    skylake = frozenset({"avx2", "avx512f", "avx512bw", "avx512_vnni"})
    monkeypatch.setattr(precision, "cpu_flags", lambda: skylake)
    assert not precision.cpu_has_bf16()
    assert precision.resolve_precision("auto", CPU, "basicvsr") == "fp32-cl"  # the static rule too
    monkeypatch.setattr(precision, "cpu_flags", lambda: skylake | {"avx512_bf16"})  # Cooper Lake, Zen 4
    assert precision.cpu_has_bf16()
    monkeypatch.setattr(precision, "cpu_flags", lambda: skylake | {"amx_bf16", "amx_tile"})  # Sapphire Rapids
    assert precision.cpu_has_bf16() and precision.resolve_precision("auto", CPU, "basicvsr") == "bf16"
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx512_core")  # oneDNN told not to use them
    assert not precision.cpu_has_bf16()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_AMX")
    assert precision.cpu_has_bf16()
    monkeypatch.setattr(precision, "cpu_flags", lambda: None)  # no /proc/cpuinfo: oneDNN's word
    assert precision.cpu_has_bf16()
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False, raising=False)
    assert not precision.cpu_has_bf16()
    monkeypatch.setattr(precision.platform, "machine", lambda: "aarch64")  # Arm: oneDNN checks the unit
    assert not precision.cpu_has_bf16()
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    assert precision.cpu_has_bf16()


def test_forced_bf16_without_bf16_units_warns_once(monkeypatch: pytest.MonkeyPatch,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Where bf16 is emulated (the engine's BasicVSR 7.9x slower than fp32 at 160x68 on an AVX2 EPYC), a
    forced ``--precision bf16`` is allowed but said, once per process (a batch checks each video); auto,
    fp32 and a CPU with bf16 units say nothing."""
    from models.registry import get_spec
    from vsr_pipeline import UpscaleOptions, options

    spec = get_spec("espcn")
    options._warn_once.cache_clear()
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: False)
    with caplog.at_level("WARNING", logger="vsr_pipeline.options"):
        for name in ("auto", "fp32-cl", "bf16", "bf16"):
            options.check_perf_options(spec, UpscaleOptions(model="espcn", precision=name), CPU)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "emulated" in said[0] and "--precision auto" in said[0]
    assert precision.emulated_bf16_note("bf16", torch.device("cuda")) is None
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    assert precision.emulated_bf16_note("bf16", CPU) is None


def test_probe_picks_the_fastest_and_is_cached_per_model_and_size(cache: Path, probes: list) -> None:
    settings = ModelSettings(model="espcn", scale=2, batch=2)
    choice, reason = autotune.choose_precision(settings, CPU, 24, 16)
    assert choice in ("fp32", "fp32-cl") and "probe" in reason
    assert sorted(p for _, p, _ in probes) == ["fp32", "fp32-cl"]
    entry = next(iter(json.loads(cache.read_text()).values()))
    assert choice == min(entry["seconds"], key=entry["seconds"].get)  # the choice follows the figures

    probes.clear()
    again, why = autotune.choose_precision(settings, CPU, 24, 16)  # same machine, model and size: no probe
    assert again == choice and "cached" in why and probes == []

    autotune.choose_precision(settings, CPU, 32, 16)  # another frame size: probed again
    assert len(probes) == 2 and probes[0][2][1:3] == (16, 32)
    probes.clear()
    autotune.choose_precision(ModelSettings(model="espcn", scale=3, batch=2), CPU, 24, 16)  # another scale
    assert len(probes) == 2
    probes.clear()
    other = ModelSettings(model="vespcn", scale=4, batch=1)  # another model
    autotune.choose_precision(other, CPU, 24, 16)
    assert {m for m, _, _ in probes} == {"vespcn"}
    assert len(json.loads(cache.read_text())) == 4


def test_the_process_thread_count_does_not_change_the_cache_key(cache: Path, probes: list) -> None:
    """An engine made earlier in the process (vsr bench's model-only run at 1 thread) changes torch's thread
    count; a probe with the same explicit threads must still be found, not redone inside the job."""
    settings = ModelSettings(model="espcn", scale=2, batch=2)
    before = torch.get_num_threads()
    try:
        autotune.choose_precision(settings, CPU, 24, 16, threads=2)
        torch.set_num_threads(1)
        _, reason = autotune.choose_precision(settings, CPU, 24, 16, threads=2)
    finally:
        torch.set_num_threads(before)
    assert len(probes) == 2 and reason.split("; ")[-1].startswith("cached probe")


def test_a_probe_on_a_busy_machine_is_kept_while_busy_and_redone_when_idle(
        cache: Path, probes: list, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ModelSettings(model="espcn", scale=2, batch=2)
    monkeypatch.setattr(autotune.os, "getloadavg", lambda: (9.0, 9.0, 9.0))
    choice, reason = autotune.choose_precision(settings, CPU, 24, 16)
    assert "machine busy" in reason and len(probes) == 2
    again, why = autotune.choose_precision(settings, CPU, 24, 16)  # still busy: one choice for the session
    assert again == choice and "busy machine" in why and len(probes) == 2
    monkeypatch.setattr(autotune.os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    autotune.choose_precision(settings, CPU, 24, 16)  # idle now: probed again, then cached for good
    assert len(probes) == 4
    autotune.choose_precision(settings, CPU, 24, 16)
    assert len(probes) == 4


def test_the_weights_do_not_change_the_cache_key(cache: Path, probes: list) -> None:
    """Timing depends on the architecture, not the weights' values: another checkpoint reuses the probe."""
    autotune.choose_precision(ModelSettings(model="espcn", scale=2, batch=2), CPU, 24, 16)
    probes.clear()
    other = ModelSettings(model="espcn", scale=2, batch=2, weights="photos-bi")
    autotune.choose_precision(other, CPU, 24, 16)
    assert probes == []


def test_a_cache_from_other_hardware_is_not_used(cache: Path, probes: list,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ModelSettings(model="espcn", scale=2, batch=2)
    autotune.choose_precision(settings, CPU, 24, 16)
    probes.clear()
    from vsr_pipeline import probe_cache

    monkeypatch.setattr(probe_cache, "_cpu_name", lambda: "another CPU")
    autotune.choose_precision(settings, CPU, 24, 16)
    assert len(probes) == 2


def test_a_forced_precision_wins_and_probes_nothing(cache: Path, probes: list,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(autotune, "cpu_has_bf16", lambda: False)
    choice, reason = autotune.choose_precision(ModelSettings(model="basicvsr", precision="bf16"), CPU, 64, 48)
    assert (choice, reason) == ("bf16", "--precision bf16") and probes == [] and not cache.exists()
    with pytest.raises(ValueError, match="CUDA"):
        autotune.choose_precision(ModelSettings(model="espcn", precision="fp16"), CPU, 64, 48)


def test_one_candidate_needs_no_probe(cache: Path, probes: list, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    choice, _ = autotune.choose_precision(ModelSettings(model="espcn"), torch.device("cuda"), 64, 48)
    assert choice == "fp16" and probes == []


@pytest.mark.usefixtures("ray_local")  # a job of its own would start and stop Ray
def test_the_job_reports_its_choice_and_why(tmp_path: Path, cache: Path) -> None:
    from tests.conftest import make_clip, textured_frames
    from vsr_pipeline import UpscaleOptions, upscale

    clip = make_clip(tmp_path / "in.mp4", textured_frames(4, 24, 16))
    opts = UpscaleOptions(model="espcn", scale=2, crf=0, progress=False)
    result = upscale(clip, tmp_path / "out.mkv", opts)
    assert result.precision in ("fp32", "fp32-cl") and "probe" in (result.precision_reason or "")
    cores = os.cpu_count() or 1
    assert result.threads in {cores, cores - 1, max(1, cores // 2)} - {0} and result.threads_reason
    if cores > 1:  # the job's decode and encode were measured and weighed
        assert "decode+encode" in (result.threads_reason or "")
    forced = upscale(clip, tmp_path / "forced.mkv", UpscaleOptions(model="espcn", scale=2, crf=0,
                                                                    precision="fp32", progress=False))
    assert (forced.precision, forced.precision_reason) == ("fp32", "--precision fp32")
    assert precision.resolve_precision("auto", CPU, "espcn") in ("fp32", "fp32-cl")


def test_threads_keep_only_cores_that_pay(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fewest threads within THREAD_GAIN of the fastest; cached per precision; one core probes nothing;
    the real probe restores the process's thread count."""
    monkeypatch.setattr(autotune.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    real = autotune.time_threads
    timed: list[list[int]] = []
    figures = {"fp32": {4: 1.0, 3: 1.02, 2: 1.03}, "fp32-cl": {4: 1.0, 3: 1.3, 2: 1.6}}

    def fake(spec, settings, device, frames, counts):  # type: ignore[no-untyped-def]
        timed.append(counts)
        return {c: figures[settings.precision][c] for c in counts}

    monkeypatch.setattr(autotune, "time_threads", fake)
    fp32 = ModelSettings(model="espcn", scale=2, precision="fp32")
    threads, why = autotune.choose_threads(fp32, CPU, 24, 16, cores=4)
    assert threads == 2 and "gain under 5%" in why and timed == [[4, 3, 2]]
    assert autotune.choose_threads(fp32, CPU, 24, 16, cores=4)[0] == 2 and len(timed) == 1  # cached
    cl = ModelSettings(model="espcn", scale=2, precision="fp32-cl")
    threads, why = autotune.choose_threads(cl, CPU, 24, 16, cores=4)
    assert threads == 4 and "every core" in why and len(timed) == 2
    assert autotune.choose_threads(fp32, CPU, 24, 16, cores=1) == (1, "one core") and len(timed) == 2
    assert autotune.choose_threads(fp32, torch.device("cuda"), 24, 16)[0] == 0
    from models.registry import get_spec

    before = torch.get_num_threads()
    seconds = real(get_spec("espcn"), fp32, CPU, np.zeros((4, 16, 24, 3), np.uint8), [2, 1])
    assert set(seconds) == {2, 1} and all(v > 0 for v in seconds.values())
    assert torch.get_num_threads() == before


def test_threads_leave_cores_to_an_encoder_that_needs_them(cache: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """With the decoder and encoder's CPU per frame beside the model, the predicted pipeline time decides:
    every core where the encoder is light, fewer where it is heavy enough to overlap the model instead."""
    monkeypatch.setattr(autotune.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    # ESPCN x4 640x272 on 2 cores as measured: 0.049 s/frame at 2 threads, 0.094 at 1; x264 0.102 CPU-s
    monkeypatch.setattr(autotune, "time_threads", lambda *a: {2: 0.049, 1: 0.094})
    fp32 = ModelSettings(model="espcn", scale=4, precision="fp32")
    assert autotune.choose_threads(fp32, CPU, 24, 16, cores=2, beside=(0.0, ""))[0] == 2
    assert autotune.choose_threads(fp32, CPU, 24, 16, cores=2, beside=(0.008, "light"))[0] == 2
    threads, why = autotune.choose_threads(fp32, CPU, 24, 16, cores=2, beside=(0.102, "x264"))
    assert threads == 1 and "left to decode and encode" in why and "x264" in why
    assert "2 threads 0.1510" in why and "1 threads 0.1224" in why  # 1.2 x max(0.094, 0.102)
    # AVX2 emulated, one probe as measured: 2 threads 0.0716, 1 thread 0.1371, x264 0.0723 -> 2 threads
    # (predicted 0.1439 against 1.2 x 0.1371; the job ran 41-44 s at 2 threads against 45 s at 1)
    monkeypatch.setattr(autotune, "time_threads", lambda *a: {2: 0.0716, 1: 0.1371})
    cl = ModelSettings(model="espcn", scale=4, precision="fp32-cl")
    assert autotune.choose_threads(cl, CPU, 24, 16, cores=2, beside=(0.0723, "x264"))[0] == 2
    seconds = autotune.pipeline_seconds({4: 1.0, 3: 1.2, 2: 2.0}, 3.0, 4)
    assert seconds == pytest.approx({4: 4.0, 3: 3.6, 2: 2.4})
    assert autotune.pipeline_seconds({2: 1.0, 1: 2.0}, 0.0, 2) == {2: 1.0, 1: 2.0}


@pytest.mark.usefixtures("ray_local")  # a job of its own would start and stop Ray
def test_a_batch_with_one_upscaler_chooses_threads_like_a_single_job(tmp_path: Path, cache: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """``vsr batch`` on this CPU with one upscaler and no ``--threads``: the same choice as ``vsr upscale``
    (first readable input's decode and encode weighed); forced threads or several upscalers are kept."""
    from tests.conftest import make_clip, textured_frames
    from vsr_pipeline.batch_runner import _decide_threads
    from vsr_pipeline.options import UpscaleOptions
    from vsr_pipeline.upscaler_pool import Placement

    monkeypatch.setattr(autotune.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setattr(autotune, "time_threads", lambda *a: {2: 0.049, 1: 0.094})
    clip = make_clip(tmp_path / "in.mp4", textured_frames(8, 48, 32))
    opts = UpscaleOptions(model="espcn", scale=2, precision="fp32", batch=1)
    spec = autotune.get_spec("espcn")
    one = Placement(1, 1, 0, 2)
    args = ([str(tmp_path / "gone.mp4"), str(clip)], [tmp_path / "o1.mp4", tmp_path / "o2.mp4"], "cpu")
    placement, why = _decide_threads(opts, spec, *args, one, 0)
    assert placement.threads == 2 and "decode+encode" in (why or "")  # a light encoder: every core
    monkeypatch.setattr(autotune, "decode_encode_seconds", lambda *a: (0.1, "x264 at a large size"))
    placement, why = _decide_threads(opts, spec, *args, one, 0)  # encode 2x the model at 2 threads
    assert placement.threads == 1 and "left to decode and encode" in (why or "")
    assert _decide_threads(opts, spec, *args, one, 2) == (one, None)
    two = Placement(2, 1, 0, 1)
    assert _decide_threads(opts, spec, *args, two, 0) == (two, None)


def test_a_costly_frame_is_probed_smaller_and_long_calls_are_not_repeated(
        cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A frame whose probe call would pass CALL_BUDGET_S is probed on a smaller frame of its shape (figures
    scaled by pixels, said in the reason and the cache); a call past LONG_CALL_S is its own figure."""
    from models.registry import get_spec

    monkeypatch.setattr(autotune.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    spec, settings = get_spec("espcn"), ModelSettings(model="espcn", scale=2, precision="fp32", batch=1)
    assert autotune.probe_size(spec, settings, CPU, 120, 80) == (120, 80)  # under CALIBRATE_PIXELS
    assert autotune.probe_size(spec, settings, CPU, 320, 240) == (320, 240)  # ESPCN is cheap
    monkeypatch.setattr(autotune, "CALL_BUDGET_S", 1e-9)
    w, h = autotune.probe_size(spec, settings, CPU, 320, 240)
    assert w * h >= autotune.CALIBRATE_PIXELS * 0.9 and w * h < 320 * 240 and abs(w / h - 4 / 3) < 0.1
    sizes: list[tuple[int, ...]] = []
    real = autotune.time_candidates

    def spy(spec, settings, device, frames, precisions, threads=0):  # type: ignore[no-untyped-def]
        sizes.append(frames.shape)
        return real(spec, settings, device, frames, precisions, threads)

    monkeypatch.setattr(autotune, "time_candidates", spy)
    why = autotune.choose_precision(ModelSettings(model="espcn", scale=2, batch=1), CPU, 320, 240)[1]
    assert sizes == [(1, h, w, 3)] and f"on {w}x{h} frames, scaled by pixels" in why and "at 320x240" in why
    assert next(iter(json.loads(cache.read_text()).values()))["at"] == [w, h]
    assert "scaled by pixels" in autotune.choose_precision(ModelSettings(model="espcn", scale=2, batch=1),
                                                           CPU, 320, 240)[1]  # cached, still said

    class Counting:
        calls = 0

        def process(self, window, keep, frames):  # type: ignore[no-untyped-def]
            Counting.calls += 1

    frames = np.zeros((2, 8, 8, 3), np.uint8)
    autotune._time_values(Counting(), spec, CPU, frames, [1, 2], lambda v: None)
    assert Counting.calls == 2 + 2 * autotune.PROBE_CALLS
    monkeypatch.setattr(autotune, "LONG_CALL_S", -1.0)  # every call "long": the warm-ups are the figures
    Counting.calls = 0
    assert set(autotune._time_values(Counting(), spec, CPU, frames, [1, 2], lambda v: None)) == {1, 2}
    assert Counting.calls == 2


@pytest.mark.usefixtures("ray_local")  # a job of its own would start and stop Ray
def test_decode_encode_cost_is_measured_on_the_job_and_cached(tmp_path: Path, cache: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Real decode and x264 encode of the job's first frames: CPU seconds per frame, larger for a larger
    output and a slower preset, cached per encode settings and sizes."""
    from tests.conftest import make_clip, textured_frames
    from vsr_pipeline import encode_cost
    from vsr_pipeline.media import EncodeSettings, probe

    monkeypatch.setattr(autotune.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    clip = make_clip(tmp_path / "in.mp4", textured_frames(8, 96, 64))
    info = probe(clip)
    calls: list[int] = []
    real = encode_cost.time_decode_encode

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(encode_cost, "time_decode_encode", spy)
    fast = EncodeSettings(preset="ultrafast")
    x2, why = autotune.decode_encode_seconds(clip, info, 2, fast, ".mp4", CPU)
    assert x2 > 0 and why.startswith("probe: decode") and calls == [2]
    again, why = autotune.decode_encode_seconds(clip, info, 2, fast, ".mp4", CPU)
    assert again == x2 and why.startswith("cached probe") and calls == [2]
    x8, _ = autotune.decode_encode_seconds(clip, info, 8, fast, ".mp4", CPU)
    slow, _ = autotune.decode_encode_seconds(clip, info, 2, EncodeSettings(preset="veryslow"), ".mp4", CPU)
    assert calls == [2, 8, 2] and x8 > 2 * x2 and slow > x2
    pngs, _ = autotune.decode_encode_seconds(clip, info, 2, fast, "", CPU)
    assert pngs > 0 and len(calls) == 4
    missing, why = autotune.decode_encode_seconds(tmp_path / "gone.mp4", info, 3, fast, ".mp4", CPU)
    assert missing == 0.0 and why.startswith("not measured")
    # a large output is measured on fewer frames (x264 takes seconds per 8K frame)
    sizes = ((640, 272), (2560, 1088), (3840, 2160), (7680, 4320))
    assert [encode_cost.probe_frames(w, h) for w, h in sizes] == [8, 8, 2, 2]


def test_batch_auto_keeps_the_smallest_that_pays(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--batch auto``: the smallest batch within BATCH_GAIN of the fastest; cached per model, size and
    precision (invalidated when they change); a forced batch and a recurrent model probe nothing."""
    monkeypatch.setattr(autotune.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    timed: list[tuple[str, tuple[int, ...], list[int]]] = []
    figures = {(24, 16): {1: 1.0, 2: 0.97, 4: 0.96}, (64, 48): {1: 1.0, 2: 0.8, 4: 0.6}}

    def fake(spec, settings, device, frames, batches, threads=0):  # type: ignore[no-untyped-def]
        timed.append((spec.name, frames.shape, batches))
        return {b: figures[(frames.shape[2], frames.shape[1])][b] for b in batches}

    monkeypatch.setattr(autotune, "time_batches", fake)
    espcn = ModelSettings(model="espcn", scale=2, precision="fp32")
    batch, why = autotune.choose_batch(espcn, CPU, 24, 16)
    assert batch == 1 and "gain under 5%" in why and "batch 4 0.9600 s/frame" in why
    assert timed == [("espcn", (4, 16, 24, 3), [1, 2, 4])]  # one output frame per frame of the largest batch
    assert autotune.choose_batch(espcn, CPU, 24, 16)[0] == 1 and len(timed) == 1  # cached
    assert "cached probe" in autotune.choose_batch(espcn, CPU, 24, 16)[1]
    assert autotune.choose_batch(espcn, CPU, 64, 48)[0] == 4 and len(timed) == 2  # another size: probed
    autotune.choose_batch(ModelSettings(model="espcn", scale=2, precision="fp32-cl"), CPU, 24, 16)
    assert len(timed) == 3  # another precision: probed
    window = ModelSettings(model="vespcn", scale=4, precision="fp32")
    autotune.choose_batch(window, CPU, 24, 16)
    assert timed[-1] == ("vespcn", (4 + 2, 16, 24, 3), [1, 2, 4])  # plus the window's context frames
    forced = ModelSettings(model="espcn", scale=2, batch=3)
    assert autotune.choose_batch(forced, CPU, 24, 16) == (3, "--batch 3")
    batch, why = autotune.choose_batch(ModelSettings(model="basicvsr", precision="fp32"), CPU, 24, 16)
    assert batch == autotune.DEFAULT_BATCH and "recurrent" in why
    assert len(timed) == 4
    assert json.loads(cache.read_text())  # every probe went to the cache file


def test_batch_probe_times_the_real_model(cache: Path) -> None:
    from models.registry import get_spec

    settings = ModelSettings(model="espcn", scale=2, precision="fp32")
    frames = np.zeros((4, 16, 24, 3), np.uint8)
    seconds = autotune.time_batches(get_spec("espcn"), settings, CPU, frames, [1, 2, 4])
    assert set(seconds) == {1, 2, 4} and all(0 < v < 10 for v in seconds.values())


@pytest.mark.usefixtures("ray_local")  # a job of its own would start and stop Ray
def test_the_job_reports_its_batch_and_a_resume_keeps_it(tmp_path: Path, cache: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """``vsr upscale --json`` carries ``batch`` and ``batch_reason``; the ledger records the batch, and a
    resumed ``--batch auto`` keeps it even where a new probe would choose another."""
    from tests.conftest import make_clip, textured_frames
    from vsr_pipeline import UpscaleOptions, upscale
    from vsr_pipeline.job import plan_job, resolve_auto_settings
    from vsr_pipeline.ledger import job_dir

    clip = make_clip(tmp_path / "in.mp4", textured_frames(4, 24, 16))
    opts = UpscaleOptions(model="espcn", scale=2, crf=0, precision="fp32", progress=False)
    result = upscale(clip, tmp_path / "out.mkv", opts)
    assert result.batch in autotune.CPU_BATCHES and "probe" in (result.batch_reason or "")
    forced = upscale(clip, tmp_path / "forced.mkv", UpscaleOptions(model="espcn", scale=2, crf=0, batch=3,
                                                                    precision="fp32", progress=False))
    assert (forced.batch, forced.batch_reason) == (3, "--batch 3")
    ledger = job_dir(tmp_path / "half.mkv")
    ledger.mkdir()
    (ledger / "ledger.json").write_text(json.dumps({"settings": {"batch": 2, "precision": "fp32"}}))
    monkeypatch.setattr(autotune, "time_batches", lambda *a, **k: pytest.fail("a resumed job probed"))
    plan = resolve_auto_settings(plan_job(clip, tmp_path / "half.mkv", opts, CPU), CPU)
    assert plan.opts.batch == 2 and "kept from the unfinished run" in plan.batch_reason


@pytest.mark.usefixtures("ray_local")  # a job of its own would start and stop Ray
def test_forced_threads_win_probe_nothing_and_reach_the_upscaler(tmp_path: Path, cache: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """``vsr upscale --threads N`` (``UpscaleOptions.threads``) skips the thread probe, the precision and
    batch probes run at N threads, and the upscaler actor runs N; 0 and below are refused."""
    from tests.conftest import make_clip, textured_frames
    from vsr_pipeline import UpscaleOptions, upscale
    from vsr_pipeline.cli import main
    from vsr_pipeline.errors import UsageError
    from vsr_pipeline.job import plan_job, resolve_auto_settings

    clip = make_clip(tmp_path / "in.mp4", textured_frames(4, 24, 16))
    seen: list[int] = []
    real = autotune.choose_batch

    def batch_spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append(args[5] if len(args) > 5 else kwargs["threads"])
        return real(*args, **kwargs)

    monkeypatch.setattr(autotune, "choose_batch", batch_spy)
    monkeypatch.setattr(autotune, "choose_job_threads", lambda *a, **k: pytest.fail("threads probed"))
    opts = UpscaleOptions(model="espcn", scale=2, crf=0, threads=1, progress=False)
    plan = resolve_auto_settings(plan_job(clip, tmp_path / "plan.mkv", opts, CPU), CPU)
    assert (plan.threads, plan.threads_reason) == (1, "--threads 1") and seen == [1]
    result = upscale(clip, tmp_path / "out.mkv", opts)
    assert (result.threads, result.threads_reason) == (1, "--threads 1")
    assert result.device.startswith("cpu (1 threads")  # what the actor's torch runs with
    with pytest.raises(SystemExit) as exit_info:
        main(["upscale", str(clip), "-o", str(tmp_path / "zero.mkv"), "--threads", "0"])
    assert exit_info.value.code == 2
    with pytest.raises(UsageError, match="--threads"):
        upscale(clip, tmp_path / "negative.mkv", UpscaleOptions(model="espcn", scale=2, threads=-1))


@pytest.mark.usefixtures("ray_local")  # a job of its own would start and stop Ray
def test_the_ledger_records_the_threads_and_a_resume_keeps_them(tmp_path: Path, cache: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The threads change a forward pass's rounding, not the segments' validity: they are in the ledger's
    ``extra``, and a resumed job keeps them instead of probing again (a forced ``--threads`` still wins)."""
    from dataclasses import replace

    from tests.conftest import make_clip, textured_frames
    from vsr_pipeline import UpscaleOptions, upscale
    from vsr_pipeline.job import plan_job, resolve_auto_settings
    from vsr_pipeline.ledger import Ledger, job_dir

    clip = make_clip(tmp_path / "in.mp4", textured_frames(4, 24, 16))
    opts = UpscaleOptions(model="espcn", scale=2, crf=0, precision="fp32", batch=1, progress=False)
    monkeypatch.setattr(Ledger, "remove", lambda self: None)  # keep the finished job's ledger to read it
    result = upscale(clip, tmp_path / "out.mkv", opts)
    recorded = json.loads((job_dir(tmp_path / "out.mkv") / "ledger.json").read_text())
    assert result.threads is not None and recorded["extra"]["threads"] == result.threads
    ledger = job_dir(tmp_path / "half.mkv")
    ledger.mkdir()
    (ledger / "ledger.json").write_text(json.dumps({"settings": {"batch": 1, "precision": "fp32"},
                                                    "extra": {"threads": 1}}))
    monkeypatch.setattr(autotune, "choose_job_threads", lambda *a, **k: (2, "probed"))
    plan = resolve_auto_settings(plan_job(clip, tmp_path / "half.mkv", opts, CPU), CPU)
    assert plan.threads == 1 and "kept from the unfinished run" in plan.threads_reason
    forced = resolve_auto_settings(plan_job(clip, tmp_path / "half.mkv", replace(opts, threads=2), CPU), CPU)
    assert (forced.threads, forced.threads_reason) == (2, "--threads 2")
    fresh = resolve_auto_settings(plan_job(clip, tmp_path / "half.mkv", replace(opts, resume="never"), CPU),
                                  CPU)
    assert (fresh.threads, fresh.threads_reason) == (2, "probed")


def test_probes_run_with_the_actors_heap(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The upscaler actor keeps freed buffers (``Engine(reuse_memory=True)``); a probe timed without that
    pays page faults the actor does not (it made batch 1 look 1.5x faster than 4 for ESPCN at 640x272), so
    every probe runs with the same malloc settings, and the driver gets glibc's defaults back after."""
    from vsr_pipeline import heap

    monkeypatch.setattr(autotune.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    state: list[bool] = []
    seen: list[tuple[str, bool]] = []
    monkeypatch.setattr(heap, "reuse_freed_memory", lambda enabled=True: state.append(enabled) or True)
    monkeypatch.setattr(heap, "release_free_memory", lambda: state.append(False) or True)

    def fake(name):  # type: ignore[no-untyped-def]
        def timed(spec, settings, device, frames, values, threads=0):  # type: ignore[no-untyped-def]
            seen.append((name, state[-1]))
            return {v: 1.0 for v in values}
        return timed

    monkeypatch.setattr(autotune, "time_batches", fake("batch"))
    monkeypatch.setattr(autotune, "time_candidates", fake("precision"))
    monkeypatch.setattr(autotune, "time_threads", fake("threads"))
    settings = ModelSettings(model="espcn", scale=2, precision="fp32")
    autotune.choose_batch(settings, CPU, 24, 16)
    autotune.choose_threads(settings, CPU, 24, 16, cores=2)
    autotune.choose_precision(ModelSettings(model="espcn", scale=2), CPU, 24, 16)
    assert seen == [("batch", True), ("threads", True), ("precision", True)]
    assert state[-1] is False
