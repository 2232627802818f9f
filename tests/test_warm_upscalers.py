"""Warm upscalers (``vsr_pipeline.upscaler_pool``): where Ray outlives a job, the next job with the same
placement and restart budget takes the finished job's actors (loading its model in their processes where it
is another) and computes exactly what new actors would; anything else (other Ray options, a failure, time)
leaves no actor holding a slot."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import ray
import torch

from tests import faults
from tests.conftest import make_clip, textured_frames
from tests.test_windows import random_weights
from vsr_pipeline import Engine, UpscaleOptions, upscale, warm_actors
from vsr_pipeline.errors import VsrError
from vsr_pipeline.ledger import job_dir
from vsr_pipeline.upscaler_pool import release_warm_upscalers


def opts(**kw: object) -> UpscaleOptions:
    base: dict[str, object] = {"model": "espcn", "scale": 2, "chunk": 4, "crf": 0, "precision": "fp32-cl",
                               "progress": False}
    base.update(kw)
    return UpscaleOptions(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("warm") / "in.mp4", textured_frames(10, 48, 32))


def parked() -> list[object]:
    p = warm_actors._parked
    return [] if p is None else list(p.actors)


def is_dead(actor: object) -> bool:
    try:
        ray.get(actor.stats.remote(), timeout=60)  # type: ignore[attr-defined]
    except ray.exceptions.RayActorError:
        return True
    return False


@pytest.mark.usefixtures("ray_local")
def test_the_next_job_takes_the_warm_upscaler_and_gives_the_same_output(clip: Path, tmp_path: Path) -> None:
    release_warm_upscalers()
    first = upscale(clip, tmp_path / "a.mp4", opts())
    (actor,) = parked()
    second = upscale(clip, tmp_path / "b.mp4", opts())
    assert parked() == [actor]  # the same actor, kept again
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()
    assert first.frames_out == second.frames_out == 10
    stats = ray.get(actor.stats.remote())  # type: ignore[attr-defined]
    assert stats["frames"] == 10 and stats["calls"] == 3  # this job's account only (reset when taken)

    # threads, batch and tile are the job's: the warm actor takes them and writes what a new actor with
    # them writes
    other = {"threads": 1, "batch": 2, "tile": 24, "overlap": 4}
    upscale(clip, tmp_path / "c.mp4", opts(**other))
    assert parked() == [actor]
    assert ray.get(actor.settings.remote())["threads"] == 1  # type: ignore[attr-defined]
    release_warm_upscalers()
    upscale(clip, tmp_path / "d.mp4", opts(**other))
    assert (tmp_path / "c.mp4").read_bytes() == (tmp_path / "d.mp4").read_bytes()
    assert (tmp_path / "c.mp4").read_bytes() != (tmp_path / "a.mp4").read_bytes()  # tiles: other rounding

    (actor,) = parked()
    upscale(clip, tmp_path / "e.mp4", opts(retries=1))  # a restart budget is Ray's: a new actor, the warm one
    assert parked() and parked() != [actor]             # killed
    assert is_dead(actor)


@pytest.mark.usefixtures("ray_local")
def test_warm_upscalers_are_killed_when_unused(clip: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warm_actors, "WARM_SECONDS", 0.5)
    upscale(clip, tmp_path / "out.mp4", opts(precision="fp32"))  # takes the previous test's warm actor
    (actor,) = parked()
    time.sleep(1.5)
    assert not parked() and is_dead(actor)


@pytest.mark.usefixtures("ray_local")
def test_a_rewritten_weights_file_is_loaded_again(clip: Path, tmp_path: Path) -> None:
    """The same --weights path with other contents: a new actor, and the output the new weights give."""
    weights = random_weights(tmp_path / "w.safetensors", "espcn", 2, seed=1)
    upscale(clip, tmp_path / "a.mp4", opts(weights=weights))
    (actor,) = parked()
    random_weights(tmp_path / "w.safetensors", "espcn", 2, seed=2)
    upscale(clip, tmp_path / "b.mp4", opts(weights=weights))
    assert parked() == [actor]  # the same process, the weights loaded again (``Upscaler.swap``)
    upscale(clip, tmp_path / "c.mp4", opts(weights=random_weights(tmp_path / "w2.safetensors", "espcn", 2,
                                                                   seed=2)))
    assert (tmp_path / "b.mp4").read_bytes() == (tmp_path / "c.mp4").read_bytes()
    assert (tmp_path / "a.mp4").read_bytes() != (tmp_path / "b.mp4").read_bytes()


@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize("other", [{"model": "fsrcnn", "scale": 4}, {"precision": "fp32"},
                                   {"model": "bicubic"}])
def test_a_warm_upscaler_loads_another_model_and_writes_what_a_new_one_does(
    other: dict[str, object], clip: Path, tmp_path: Path
) -> None:
    """Another model or precision (not a Ray option): the same actor process loads it (``Upscaler.swap``),
    and the job's output is the bytes a new actor writes."""
    upscale(clip, tmp_path / "a.mp4", opts())
    (actor,) = parked()
    upscale(clip, tmp_path / "b.mp4", opts(**other))
    assert parked() == [actor]
    assert ray.get(actor.settings.remote())["model"] == other.get("model", "espcn")  # type: ignore[attr-defined]
    release_warm_upscalers()
    upscale(clip, tmp_path / "c.mp4", opts(**other))
    assert (tmp_path / "b.mp4").read_bytes() == (tmp_path / "c.mp4").read_bytes()
    if "model" in other:
        assert (tmp_path / "a.mp4").read_bytes() != (tmp_path / "b.mp4").read_bytes()


@pytest.mark.usefixtures("ray_local")
def test_a_swapped_upscaler_restarted_mid_job_computes_the_jobs_model(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ray rebuilds a killed actor with its first constructor's arguments (here ESPCN's, another job's); the
    chunks carry the job's model, so the output is still the job's (bicubic), byte for byte."""
    import threading

    from tests.test_reliability import _descendants_named, _has_done_chunk

    upscale(clip, tmp_path / "espcn.mp4", opts(retries=2, chunk=2))
    (actor,) = parked()
    upscale(clip, tmp_path / "ref.mp4", opts(model="bicubic", retries=2, chunk=2))
    assert parked() == [actor]  # swapped to bicubic
    faults.install(monkeypatch, "delay:0.7")  # slow segments so the kill lands mid-job
    out = tmp_path / "out.mp4"
    result: list[object] = []
    bicubic = opts(model="bicubic", retries=2, chunk=2)  # 5 chunks: some still to upscale after the first
    job = threading.Thread(target=lambda: result.append(upscale(clip, out, bicubic)))
    job.start()
    killed: list[int] = []
    deadline = time.monotonic() + 120
    while job.is_alive() and time.monotonic() < deadline and not killed:
        if _has_done_chunk(job_dir(out) / "ledger.json"):
            for pid in _descendants_named("ray::Upscaler"):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        time.sleep(0.05)
    job.join(timeout=300)
    assert killed and result and result[0].frames_out == 10  # type: ignore[attr-defined]
    # the account of the restarted process (it starts from zero): it upscaled some chunks
    assert result[0].model_seconds  # type: ignore[attr-defined]
    assert out.read_bytes() == (tmp_path / "ref.mp4").read_bytes()
    assert out.read_bytes() != (tmp_path / "espcn.mp4").read_bytes()


@pytest.mark.usefixtures("ray_local")
def test_a_failed_job_keeps_no_upscaler_warm(clip: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    release_warm_upscalers()
    faults.install(monkeypatch, "bug:1")
    with pytest.raises(VsrError):
        upscale(clip, tmp_path / "out.mp4", opts(retries=0))
    assert not parked()


def test_reset_undoes_an_out_of_memory_back_off() -> None:
    """An engine that backed off to tiles after an out-of-memory error computes, once reset, what a new one
    does (and its account starts again)."""
    frames = textured_frames(3, 96, 64)
    engine = Engine("espcn", None, 2, device="cpu", threads=1, precision="fp32")
    fresh = engine.process(slice(0, 3), slice(0, 3), frames)
    real, failed = engine.forward, []

    def fail_once(x: torch.Tensor, **kw: object) -> torch.Tensor:
        if not failed:
            failed.append(True)
            raise torch.OutOfMemoryError("injected: out of memory")
        return real(x, **kw)

    engine.forward = fail_once
    engine.process(slice(0, 3), slice(0, 3), frames)
    assert engine.tile is not None and engine.backoffs and engine.stats()["calls"] == 2
    engine.reset()
    assert engine.tile is None and engine.batch == 4 and not engine.backoffs
    assert engine.stats()["calls"] == 0 and engine.stats()["first"] is None
    np.testing.assert_array_equal(engine.process(slice(0, 3), slice(0, 3), frames), fresh)


def test_the_job_settings_sent_with_a_chunk_replace_the_constructor_ones() -> None:
    """What an actor Ray restarted (rebuilt with the arguments it was first started with, another job's
    maybe) computes from a chunk that carries the job's settings: what an engine started with them does."""
    frames = textured_frames(3, 64, 48)
    job = {"threads": 1, "batch": 4, "tile": None, "overlap": 8, "sequences": 1}
    fresh = Engine("espcn", None, 2, device="cpu", precision="fp32", **job)
    first = Engine("espcn", None, 2, device="cpu", precision="fp32", threads=2, batch=1, tile=16, overlap=4)
    want = fresh.process(slice(0, 3), slice(0, 3), frames)
    assert not np.array_equal(first.process(slice(0, 3), slice(0, 3), frames), want)  # tiles: other rounding
    np.testing.assert_array_equal(first.process(slice(0, 3), slice(0, 3), frames, base=job), want)
    assert first.settings() == fresh.settings() and first.threads == 1
