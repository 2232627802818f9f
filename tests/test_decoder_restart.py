"""A decoder that dies (its process, or its node) or meets an error of the moment is replaced: one new decoder
reads on sequentially from the first unfinished chunk, the chunks in flight finish first, and the output is
the same as a clean run's. A decoder that keeps failing fails the job (exit 5), its finished chunks kept."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests import faults
from tests.test_reliability import one_error_line
from tests.test_resume import clip, opts, reference  # noqa: F401  (fixtures)
from vsr_pipeline import errors, upscale
from vsr_pipeline.cli import main

pytestmark = pytest.mark.usefixtures("ray_local")


@pytest.mark.parametrize(("spec", "decoders"), [("exit:2", 2), ("exit:1", 1), ("raise:2", 1), ("exit:-1", 1)])
def test_failed_decoder_is_replaced_and_output_is_identical(
    spec: str,
    decoders: int,
    clip: Path,  # noqa: F811
    reference: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``exit``: the decoder's process dies at the start of decode batch K (``os._exit``: a crash, an
    out-of-memory kill); ``raise``: it raises ConnectionError there (I/O trouble of the moment). Two seeking
    decoders (batch 2 is the second one's) or one sequential. K = -1: it dies once every chunk is done, when
    the job asks for its reports (a new decoder reads the whole input again for them)."""
    fired = tmp_path / "fired"
    faults.install_decoder(monkeypatch, f"{spec}:{fired}")
    out = tmp_path / "out.mp4"
    with caplog.at_level(logging.DEBUG, logger="vsr_pipeline"):
        res = upscale(clip, out, opts(decoders=decoders))
    assert fired.exists() and res.retries == 1
    assert "a decoder failed" in caplog.text and "reads on from the first unfinished chunk" in caplog.text
    assert (res.chunks_computed, res.frames_out) == (4, 12)
    assert out.read_bytes() == reference.read_bytes()
    # the chunks submitted before the failure finished and were kept, none computed twice
    sent = [r.args[0] for r in caplog.records if "submitted" in str(r.msg)]
    assert sorted(sent) == [0, 1, 2, 3], sent


def test_decoder_failing_every_time_fails_the_job_and_keeps_finished_chunks(
    clip: Path,  # noqa: F811
    reference: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Batch 2 fails on every attempt: ``--retries 1`` gives two, then exit 5 naming the failure; chunks 0
    and 1 are in the ledger, and a rerun without the fault computes only the other two."""
    out = tmp_path / "out.mp4"
    args = ["upscale", str(clip), "-o", str(out), "--model", "bicubic", "--scale", "2", "--chunk", "3",
            "--crf", "0", "--retries", "1", "--no-progress"]
    with pytest.MonkeyPatch.context() as mp:
        faults.install_decoder(mp, "always:2")
        assert main(args) == errors.EXIT_CHUNK
    line = one_error_line(capsys)
    assert "decoding failed 2 times, last: ConnectionError: injected fault at chunk 2" in line, line
    assert "finished chunks are kept, rerun to resume" in line and not out.exists()
    caplog.clear()
    assert main(args) == 0
    assert "resuming: 2 chunk(s) already done" in caplog.text
    assert out.read_bytes() == reference.read_bytes()


@pytest.mark.parametrize("spec", ["exit:2", "exit:-1"])
def test_the_corrupt_frame_report_survives_a_replaced_decoder(spec: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A clip with frames the decoder loses (``--on-corrupt repeat``): a decoder that dies mid-input or while
    the job asks for its report is replaced, and the job reports the same lost frames as a clean run, with
    the same output bytes."""
    from tests.test_reliability import _corrupt_clip

    src, lost = _corrupt_clip(tmp_path / "bad.mp4")
    clean = upscale(src, tmp_path / "clean_out.mp4", opts(chunk=6))
    assert clean.corrupt_frames == lost >= 1
    faults.install_decoder(monkeypatch, f"{spec}:{tmp_path / 'fired'}")
    res = upscale(src, tmp_path / "out.mp4", opts(chunk=6))
    assert (tmp_path / "fired").exists() and res.retries == 1
    assert res.corrupt == clean.corrupt and res.corrupt_frames == lost
    assert (tmp_path / "out.mp4").read_bytes() == (tmp_path / "clean_out.mp4").read_bytes()
