"""Idle decoders and encoders (``vsr_pipeline.warm_actors``): where Ray outlives a job, the next job takes the
finished job's decoder and encoder processes instead of starting new ones, and writes exactly what new ones
would (other inputs, sizes and outputs: the restart test's first job is at scale 3, the second at 2); a
restarted, failed or expired actor is not kept, and one Ray restarts mid-job writes its own job's segments
(each chunk names its job), not the job it was first made for."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray

from tests import faults
from tests.conftest import make_clip, textured_frames
from tests.test_warm_upscalers import opts  # ESPCN x2, chunk 4, crf 0, fp32-cl
from vsr_pipeline import upscale, warm_actors
from vsr_pipeline.errors import VsrError
from vsr_pipeline.executors import idle_key
from vsr_pipeline.media import FrameReader, MediaError
from vsr_pipeline.upscaler_pool import release_warm_upscalers
from workers.decoder import Decoder


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    d = tmp_path_factory.mktemp("idle")
    return [make_clip(d / f"in{k}.mp4", textured_frames(9, 48, 32, seed=k)) for k in range(2)]


def idle(kind: str) -> list[str]:
    """Actor ids of the idle actors of class ``kind`` (Decoder, Encoder)."""
    with warm_actors._lock:
        return [a._actor_id.hex() for key, entries in warm_actors._idle.items()
                if getattr(key[1], "__name__", None) == kind for _, a in entries]


def is_dead(actor: Any) -> bool:
    call = actor.ready if hasattr(actor, "ready") else actor.close  # an encoder, or a decoder
    try:
        ray.get(call.remote(), timeout=60)
    except ray.exceptions.RayActorError:
        return True
    return False


@pytest.mark.usefixtures("ray_local")
def test_the_next_job_takes_the_idle_decoder_and_encoder_and_writes_the_same(clips: list[Path],
                                                                             tmp_path: Path) -> None:
    release_warm_upscalers()
    upscale(clips[1], tmp_path / "png_new", opts())  # new processes: the reference
    decoders, encoders = idle("Decoder"), idle("Encoder")
    assert len(decoders) == 1 and len(encoders) == 1
    upscale(clips[0], tmp_path / "a.mp4", opts())  # another input, a video instead of PNG frames
    upscale(clips[1], tmp_path / "png", opts())
    assert idle("Decoder") == decoders and idle("Encoder") == encoders
    pngs = sorted((tmp_path / "png").iterdir())
    assert len(pngs) == 9 and [p.read_bytes() for p in pngs] == [
        p.read_bytes() for p in sorted((tmp_path / "png_new").iterdir())]
    release_warm_upscalers()
    assert idle("Decoder") == idle("Encoder") == []


@pytest.mark.usefixtures("ray_local")
def test_an_encoder_restarted_mid_job_writes_its_own_jobs_segments(clips: list[Path], tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The idle encoder first served a job on another input at scale 3; in the next job its process dies
    at chunk 1 and Ray restarts it. The retried chunk goes to this job's segments at this job's size, and
    the restarted encoder is not kept (its restart budget is partly spent)."""
    release_warm_upscalers()
    upscale(clips[1], tmp_path / "ref.mp4", opts())
    marker = tmp_path / "fired"
    marker.touch()  # the fault does not fire in the first job
    cls = faults.install(monkeypatch, f"exit:1:{marker}")
    upscale(clips[0], tmp_path / "first.mp4", opts(scale=3))
    key = idle_key(cls, {"num_cpus": 0, "max_restarts": 3, "max_task_retries": 0})
    assert warm_actors.idle_count(key) == 1
    marker.unlink()
    res = upscale(clips[1], tmp_path / "out.mp4", opts())
    assert marker.exists() and res.retries >= 1 and res.frames_out == 9
    assert (tmp_path / "out.mp4").read_bytes() == (tmp_path / "ref.mp4").read_bytes()
    assert warm_actors.idle_count(key) == 0  # restarted: killed, not kept
    assert len(idle("Decoder")) == 1
    release_warm_upscalers()


@pytest.mark.usefixtures("ray_local")
def test_a_failed_job_keeps_no_idle_actor(clips: list[Path], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    release_warm_upscalers()
    faults.install(monkeypatch, "bug:1")
    with pytest.raises(VsrError):
        upscale(clips[0], tmp_path / "out.mp4", opts(retries=0))
    assert idle("Decoder") == idle("Encoder") == []


@pytest.mark.usefixtures("ray_local")
def test_idle_actors_are_killed_when_unused(clips: list[Path], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    release_warm_upscalers()
    monkeypatch.setattr(warm_actors, "WARM_SECONDS", 0.5)
    upscale(clips[0], tmp_path / "out.mp4", opts())
    with warm_actors._lock:
        actors = [a for entries in warm_actors._idle.values() for _, a in entries]
    assert len(actors) == 2
    time.sleep(1.5)
    assert warm_actors.idle_count() == 0 and all(is_dead(a) for a in actors)


@pytest.mark.usefixtures("ray_local")
def test_at_most_idle_max_are_kept_and_a_dead_one_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    killed: list[Any] = []
    monkeypatch.setattr(warm_actors, "kill", lambda actors, why="": killed.extend(actors))
    monkeypatch.setattr(warm_actors, "IDLE_MAX", 2)
    key = ("session 1", "decoder")
    warm_actors.give(key, ["a", "b", "c"])
    assert killed == ["a"] and warm_actors.idle_count(key) == 2

    monkeypatch.setattr(warm_actors, "IDLE_CHECK_S", 0.05)
    never = ray.ObjectRef.from_random()  # a check that never answers: a dead actor's
    taken = warm_actors.take_idle(key, 5, lambda a: never if a == "c" else ray.put(True))
    assert taken == ["b"] and killed == ["a", "c"] and warm_actors.idle_count(key) == 0
    assert warm_actors.take_idle(("session 1", "encoder"), 1, lambda a: ray.put(True)) == []

    # Ray shut down and started again without release(): the earlier session's idle actors are killed
    warm_actors.give(key, ["d"])
    assert warm_actors.take_idle(("session 2", "decoder"), 1, lambda a: ray.put(True)) == []
    assert killed[-1] == "d" and warm_actors.idle_count() == 0


def test_a_decoder_reads_one_input_after_another_as_new_decoders_do(clips: list[Path],
                                                                    tmp_path: Path) -> None:
    dec = Decoder(str(clips[0]))
    dec.read_batch(1, 4)  # part-way through the first input
    assert dec.open(str(clips[1]))
    frames, pts = dec.read(9)
    with FrameReader(str(clips[1])) as fresh:
        want, want_pts = fresh.read(9)
    assert np.array_equal(frames, want) and pts == want_pts and dec.frames_decoded() == 9

    dec.close()
    with pytest.raises(RuntimeError, match="no input open"):
        dec.read(1)
    missing = Decoder(str(tmp_path / "missing.mp4"))  # the constructor does not fail: the first read does
    with pytest.raises(MediaError, match="no such file"):
        missing.read(1)
    with pytest.raises(MediaError):
        dec.open(str(tmp_path / "missing.mp4"))
    with pytest.raises(MediaError):
        dec.read(1)


@pytest.mark.usefixtures("ray_local")
def test_seeking_decoders_are_reused_too(tmp_path: Path) -> None:
    """``--decoders 2`` on a clip with a keyframe every 12 frames: the second job opens both idle decoders
    on its input, and every frame is the one new decoders give."""
    from tests.test_parallel_decode import encode_x264

    clip = encode_x264(tmp_path / "gop.mp4", frames=36)
    release_warm_upscalers()
    upscale(clip, tmp_path / "a.mp4", opts(decoders=2, chunk=6))
    decoders = idle("Decoder")
    assert len(decoders) == 2
    upscale(clip, tmp_path / "b.mp4", opts(decoders=2, chunk=6))
    assert sorted(idle("Decoder")) == sorted(decoders)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()  # a: new decoders
    release_warm_upscalers()
