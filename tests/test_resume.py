"""Resume: segments + ledger. A job stopped part-way redoes only unfinished chunks and gives the same output;
changed settings or a changed input start over, saying why; joined segments keep every pts and frame."""

from __future__ import annotations

import json
import logging
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from tests import faults
from tests.conftest import make_clip, textured_frames
from vsr_pipeline import UpscaleOptions, upscale
from vsr_pipeline.errors import ChunkFailedError, UsageError
from vsr_pipeline.ledger import Ledger, job_dir
from vsr_pipeline.media import VideoWriter
from vsr_pipeline.media.mux import concat_segments

pytestmark = pytest.mark.usefixtures("ray_local")

PTS = [0, 1, 2, 4, 5, 7, 8, 9, 12, 13, 14, 16]  # variable frame rate


def decode(path: Path) -> tuple[list[Fraction], np.ndarray]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        return [f.pts * s.time_base for f in frames], np.stack([f.to_ndarray(format="rgb24") for f in frames])


def audio_packets(path: Path) -> list[tuple[Fraction, bytes]]:
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        return [(Fraction(p.pts) * s.time_base, bytes(p)) for p in c.demux(s) if p.size]


def opts(**kw: object) -> UpscaleOptions:
    """Lossless x264 (crf 0: no macroblock tree), whose bitstream is a function of the frames alone."""
    base: dict[str, object] = {"model": "bicubic", "scale": 2, "chunk": 3, "crf": 0, "progress": False}
    base.update(kw)
    return UpscaleOptions(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("clip")
    return make_clip(d / "in.mp4", textured_frames(len(PTS), 32, 24), pts=PTS, audio=True)


@pytest.fixture(scope="module")
def reference(clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ref") / "ref.mp4"
    res = upscale(clip, out, opts())
    assert (res.chunks, res.chunks_computed, res.chunks_resumed) == (4, 4, 0)
    assert not job_dir(out).exists()  # the job folder goes once the output is complete
    return out


def test_segments_join_with_exact_pts_frames_and_audio(clip: Path, reference: Path) -> None:
    pts, frames = decode(reference)
    src_pts, _ = decode(clip)
    assert pts == src_pts and frames.shape == (12, 48, 64, 3)
    assert audio_packets(reference) == audio_packets(clip)


def test_concat_equals_the_segments_decoded_one_by_one(tmp_path: Path) -> None:
    frames = textured_frames(12, 32, 24)
    segs = []
    for i, (a, b) in enumerate([(0, 5), (5, 7), (7, 12)]):
        seg = tmp_path / f"{i}.mp4"
        with VideoWriter(seg, 32, 24, Fraction(1, 25), Fraction(25)) as w:
            w.write(frames[a:b], PTS[a:b])
        segs.append(seg)
    assert concat_segments(segs, tmp_path / "all.mp4") == 12
    parts = [decode(s) for s in segs]
    pts, joined = decode(tmp_path / "all.mp4")
    assert pts == [p for part in parts for p in part[0]]
    assert np.array_equal(joined, np.concatenate([part[1] for part in parts]))
    with av.open(str(tmp_path / "all.mp4")) as c:
        dts = [p.dts for p in c.demux(c.streams.video[0]) if p.size]
    assert dts == sorted(set(dts))  # strictly increasing across the joints


def test_crash_then_rerun_redoes_only_unfinished_chunks(clip: Path, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with faults.injected("always:2"), pytest.raises(ChunkFailedError,
                                                     match=r"chunk 2 \(frames 6-8\) failed 2 times"):
        upscale(clip, out, opts(retries=1))
    assert not out.exists() and not list(tmp_path.glob("*partial*"))
    ledger = json.loads((job_dir(out) / "ledger.json").read_text())
    # chunks 0 and 1 finished; chunk 3 only if it was in flight when chunk 2 gave up
    assert {"0", "1"} <= set(ledger["done"]) <= {"0", "1", "3"}
    done_before = len(ledger["done"])
    res = upscale(clip, out, opts())
    assert (res.chunks_resumed, res.chunks_computed) == (done_before, 4 - done_before)
    assert decode(out)[0] == decode(reference)[0]
    assert np.array_equal(decode(out)[1], decode(reference)[1])
    assert out.read_bytes() == reference.read_bytes()
    assert not job_dir(out).exists()


def _half_done(clip: Path, out: Path) -> None:
    with faults.injected("always:3"), pytest.raises(ChunkFailedError):
        upscale(clip, out, opts(retries=0))


def test_changed_settings_start_over_and_say_why(
    clip: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    out = tmp_path / "out.mp4"
    _half_done(clip, out)
    with caplog.at_level(logging.WARNING):
        res = upscale(clip, out, opts(crf=20))
    assert (res.chunks_resumed, res.chunks_computed) == (0, 4)
    assert "starting over: crf changed (0 -> 20)" in caplog.text


def test_changed_input_starts_over(
    clip: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    src = tmp_path / "in.mp4"
    src.write_bytes(clip.read_bytes())
    out = tmp_path / "out.mp4"
    _half_done(src, out)
    make_clip(src, textured_frames(len(PTS), 32, 24, seed=1), pts=PTS, audio=True)
    with caplog.at_level(logging.WARNING):
        res = upscale(src, out, opts())
    assert res.chunks_resumed == 0 and "starting over: the input file changed" in caplog.text


def test_resume_required_but_impossible_is_a_usage_error(clip: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot resume"):
        upscale(clip, tmp_path / "out.mp4", opts(resume="require"))
    assert not (tmp_path / "out.mp4").exists()


def test_png_folder_output_resumes(clip: Path, tmp_path: Path) -> None:
    whole = tmp_path / "whole"
    upscale(clip, whole, opts())
    out = tmp_path / "frames"
    _half_done(clip, out)
    res = upscale(clip, out, opts())
    assert res.chunks_resumed >= 1 and res.chunks_resumed + res.chunks_computed == 4
    names = sorted(os.listdir(out))
    assert names == sorted(os.listdir(whole)) and len(names) == 12
    assert all((out / n).read_bytes() == (whole / n).read_bytes() for n in names)


def test_ledger_ignores_segments_it_does_not_name(tmp_path: Path) -> None:
    out = tmp_path / "o.mp4"
    led = Ledger.open(out, {"a": 1})
    (led.segments / "000000.mp4").write_bytes(b"x" * 10)
    led.record(0, 0, 3, "000000.mp4", 3)
    (led.segments / ".000001.partial.mp4").write_bytes(b"half")
    led.release()
    again = Ledger.open(out, {"a": 1})
    assert set(again.done) == {0} and not (again.segments / ".000001.partial.mp4").exists()
    (again.segments / "000000.mp4").write_bytes(b"x" * 5)  # a segment that is not what was recorded
    again.release()
    assert Ledger.open(out, {"a": 1}).done == {}


def test_two_jobs_cannot_write_one_output(tmp_path: Path) -> None:
    first = Ledger.open(tmp_path / "o.mp4", {"a": 1})
    with pytest.raises(UsageError, match="another vsr job"):
        Ledger.open(tmp_path / "o.mp4", {"a": 1})
    first.release()


def test_an_upgrade_between_runs_starts_over_and_says_which(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """Segments made by another version of torch or FFmpeg (an upgrade between a crash and its rerun) are not
    joined with new ones; the warning names the version that changed."""
    from vsr_pipeline.manifest import segment_software

    now = segment_software()
    old = {**now, "torch": "2.0.0"}
    out = tmp_path / "o.mp4"
    led = Ledger.open(out, {"crf": 0, "software": old})
    led.record(0, 0, 3, None, 0)
    led.save()
    led.release()
    with caplog.at_level(logging.WARNING):
        again = Ledger.open(out, {"crf": 0, "software": now})
    assert again.done == {}
    assert f"starting over: software: torch changed ('2.0.0' -> {now['torch']!r})" in caplog.text
    again.release()


def test_a_resumed_auto_precision_keeps_the_recorded_choice(clip: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A probe that would now pick another precision (a busy machine went idle) must not throw away the
    finished chunks: the resumed run keeps the precision its ledger recorded."""
    from vsr_pipeline import autotune

    out = tmp_path / "out.mp4"
    _half_done(clip, out)
    settings = json.loads((job_dir(out) / "ledger.json").read_text())["settings"]
    recorded = settings["precision"]
    from vsr_pipeline.manifest import segment_software

    assert settings["software"] == segment_software()  # an upgrade starts over (the test above)
    other = "fp32" if recorded == "fp32-cl" else "fp32-cl"
    monkeypatch.setattr(autotune, "choose_precision", lambda *a, **k: (other, "a probe changed its mind"))
    res = upscale(clip, out, opts())
    assert res.chunks_resumed > 0 and res.precision == recorded
    assert res.precision_reason is not None and "kept from the unfinished run" in res.precision_reason


def test_a_resumed_default_chunk_keeps_the_recorded_size(clip: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The default chunk follows the machine's memory: a rerun that would size it otherwise (another machine,
    a changed rule) keeps the unfinished run's chunk, so its finished chunks count."""
    from vsr_pipeline import job

    out = tmp_path / "out.mp4"
    monkeypatch.setattr(job, "spec_chunk", lambda *a, **k: 3)
    with faults.injected("always:3"), pytest.raises(ChunkFailedError):
        upscale(clip, out, opts(chunk=None, retries=0))
    monkeypatch.setattr(job, "spec_chunk", lambda *a, **k: 5)
    res = upscale(clip, out, opts(chunk=None))
    assert (res.chunk, res.chunks, res.chunks_resumed, res.chunks_computed) == (3, 4, 3, 1)
    other = tmp_path / "other.mp4"
    assert upscale(clip, other, opts(chunk=None)).chunk == 5  # a fresh job takes the default
