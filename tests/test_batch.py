"""``vsr batch``: many videos, one shared upscaler pool, per-video isolation, summary and report; and the
pipeline's parallel (seeking) decoders. Real clips, real Ray, real encoding."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from conftest import ROOT, make_clip, textured_frames
from test_parallel_decode import encode_x264

from vsr_pipeline import UpscaleOptions, upscale
from vsr_pipeline.batch_runner import EXIT_ALL_FAILED, EXIT_SOME_FAILED, BatchOptions, output_paths, run_batch
from vsr_pipeline.errors import EXIT_INTERRUPTED, UsageError
from vsr_pipeline.ledger import job_dir

pytestmark = pytest.mark.usefixtures("ray_local")

VFR = [0, 1, 2, 4, 5, 7, 8, 9, 12, 13, 14, 16, 17]


def decode(path: Path) -> tuple[list[Fraction], np.ndarray]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        return [f.pts * s.time_base for f in frames], np.stack([f.to_ndarray(format="rgb24") for f in frames])


def audio_bytes(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def opts(**kw: object) -> UpscaleOptions:
    """Lossless x264 (crf 0), so equal HR frames decode equal: at crf 18 x264's macroblock-tree lookahead
    made different bitstreams from equal frames in a few of 100 runs (docs/benchmarks.md, determinism).
    A fixed precision: ``auto`` is probed per frame size (vsr_pipeline.autotune), and a batch decides once
    for its shared pool at the first input's size, so a single run of another size may choose otherwise."""
    base: dict[str, object] = {"model": "espcn", "scale": 2, "chunk": 4, "crf": 0, "progress": False,
                               "precision": "fp32-cl"}
    base.update(kw)
    return UpscaleOptions(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("batch_in")
    bad = d / "bad.mp4"
    bad.write_bytes(b"this is not a video " * 200)
    return {
        "vfr": make_clip(d / "vfr.mp4", textured_frames(len(VFR), 32, 24, seed=1), pts=VFR, audio=True),
        "a": make_clip(d / "a.mp4", textured_frames(9, 32, 24, seed=2)),
        "b": make_clip(d / "b.mkv", textured_frames(11, 40, 24, seed=3), audio=True),
        "bad": bad,
    }


def test_shared_pool_gives_the_single_job_output_and_a_bad_file_fails_alone(
    inputs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [inputs["vfr"], inputs["a"], inputs["bad"], inputs["b"], tmp_path / "missing.mp4"]
    summary = run_batch([str(p) for p in names],
                        BatchOptions(opts(), tmp_path / "out", format="mp4", upscalers=2, jobs=3,
                                     threads=os.cpu_count() or 1))
    status = {Path(v["input"]).name: v["status"] for v in summary["videos"]}
    assert status == {"vfr.mp4": "ok", "a.mp4": "ok", "bad.mp4": "failed", "b.mkv": "ok",
                      "missing.mp4": "failed"}
    assert summary["exit_code"] == EXIT_SOME_FAILED
    assert summary["upscalers"] == 2 and len(summary["upscaler_busy_s"]) == 2
    bad = next(v for v in summary["videos"] if v["status"] == "failed")
    assert "bad.mp4" in bad["error"] and "\n" not in bad["error"] and bad["exit_code"] == 3
    assert [v["frames"] for v in summary["videos"]] == [len(VFR), 9, 0, 11, 0]
    # every output is exactly what `vsr upscale` makes of that input alone (same settings, and the same
    # torch thread count: the convolution's summation order, so the last bit, depends on it)
    from vsr_pipeline import autotune

    cores = os.cpu_count() or 1
    monkeypatch.setattr(autotune, "choose_threads", lambda *a, **k: (cores, "as the batch's --threads"))
    for key in ("vfr", "b"):
        ref = tmp_path / f"ref_{key}.mp4"
        upscale(inputs[key], ref, opts())
        got = tmp_path / "out" / f"{inputs[key].stem}.mp4"
        (pts_ref, frames_ref), (pts, frames) = decode(ref), decode(got)
        assert pts == pts_ref
        np.testing.assert_array_equal(frames, frames_ref)
        assert audio_bytes(got) == audio_bytes(inputs[key])
    assert decode(tmp_path / "out" / "vfr.mp4")[0] == [Fraction(p, 25) for p in VFR]
    # summary, report and plot beside the outputs
    saved = json.loads(Path(summary["summary"]).read_text())
    assert [v["status"] for v in saved["videos"]] == [v["status"] for v in summary["videos"]]
    report = Path(summary["report"]).read_text()
    assert report.count("| ok |") == 3 and report.count("| failed |") == 2
    assert Path(summary["plot"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "out" / "bad.mp4").exists()

    # a rerun keeps what exists (skipped) and fails only the bad ones again
    again = run_batch([str(inputs["a"]), str(inputs["b"])], BatchOptions(opts(), tmp_path / "out", "mp4"))
    assert [v["status"] for v in again["videos"]] == ["skipped", "skipped"]
    assert again["exit_code"] == 0
    assert again["summary"] != summary["summary"]  # a new report; the first one is kept


def _done_chunks(ledger: Path) -> int:
    """Chunks a job's ledger records as finished (0 while it is absent or being rewritten)."""
    try:
        return len(json.loads(ledger.read_text() or "{}").get("done", {}))
    except (OSError, ValueError):
        return 0


@pytest.mark.slow
def test_ctrl_c_stops_the_batch_keeps_finished_videos_and_the_same_command_resumes(
    inputs: dict[str, Path], tmp_path: Path
) -> None:
    """SIGINT in the middle of the second of three videos (one at a time): exit 130 with one line, the
    first video's output kept, no output for the other two, the second's finished chunks in its ledger;
    the same command again skips the first, resumes the second and does the third, each output equal to
    what `vsr upscale` makes of that input alone."""
    names = [inputs["a"], inputs["b"], inputs["vfr"]]
    outdir = tmp_path / "out"
    args = ["batch", *map(str, names), "-o", str(outdir), "--model", "espcn", "--scale", "2", "--chunk", "4",
            "--crf", "0", "--upscalers", "1", "--jobs", "1", "--precision", "fp32-cl", "--json"]
    cmd = [sys.executable, "-m", "vsr_pipeline.cli", *args]
    # each segment's write waits 1 s (tests/fault_cli.py installs the fault in that process), so the second
    # video is caught between its chunks
    slow = [sys.executable, "-m", "tests.fault_cli", "delay:1", "--", *args]
    proc = subprocess.Popen(slow, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    ledger_b = job_dir(outdir / "b.mp4") / "ledger.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and _done_chunks(ledger_b) == 0:
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_INTERRUPTED, err
    lines = [ln for ln in err.splitlines() if ln.startswith("vsr: error:")]
    assert len(lines) == 1 and "interrupted: 1 of 3 videos are done" in lines[0] and "Traceback" not in err
    assert (outdir / "a.mp4").exists()
    assert not (outdir / "b.mp4").exists() and not (outdir / "vfr.mp4").exists()
    assert not list(outdir.glob("*partial*"))
    done_b = _done_chunks(ledger_b)
    assert 1 <= done_b < 3  # b: 11 frames in chunks of 4

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert [v["status"] for v in summary["videos"]] == ["skipped", "ok", "ok"]
    assert summary["videos"][1]["chunks_resumed"] == done_b
    for key in ("a", "b", "vfr"):
        ref = tmp_path / f"ref_{key}.mp4"
        upscale(inputs[key], ref, opts(chunk=4))
        got = outdir / f"{inputs[key].stem}.mp4"
        (pts_ref, frames_ref), (pts, frames) = decode(ref), decode(got)
        assert pts == pts_ref
        np.testing.assert_array_equal(frames, frames_ref)
    assert audio_bytes(outdir / "b.mp4") == audio_bytes(inputs["b"])


def test_output_names_that_collide_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="would both write"):
        output_paths(["x/clip.mp4", "y/clip.mov"], tmp_path, "mp4")
    assert output_paths(["x/clip.mp4", "y/other.mov"], tmp_path, "mkv") == [
        tmp_path / "clip.mkv", tmp_path / "other.mkv"]


def test_bad_batch_options_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no inputs"):
        run_batch([], BatchOptions(opts(), tmp_path))
    with pytest.raises(UsageError, match="--format"):
        run_batch(["a.mp4"], BatchOptions(opts(), tmp_path, format="gif"))


def test_cli_exit_code_says_none_succeeded(inputs: dict[str, Path], tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text(f"# one bad file\n\n{inputs['bad']}\n{tmp_path / 'missing.mp4'}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "vsr_pipeline.cli", "batch", "--list", str(listing), "-o", str(tmp_path / "o"),
         "--model", "bicubic", "--scale", "2", "--json"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == EXIT_ALL_FAILED, proc.stderr
    assert "Traceback" not in proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [v["status"] for v in summary["videos"]] == ["failed", "failed"]
    assert Path(summary["report"]).exists()


def test_parallel_decoders_give_the_sequential_output(tmp_path: Path) -> None:
    """Three seeking decoders (keyframe every 12 frames, B-frames) and one sequential decoder: the same
    output, frame for frame."""
    clip = encode_x264(tmp_path / "gop.mp4", frames=60)
    one = upscale(clip, tmp_path / "one.mkv", opts(model="bicubic", chunk=8))
    three = upscale(clip, tmp_path / "three.mkv", opts(model="bicubic", chunk=8, decoders=3))
    assert one.frames_out == three.frames_out == 60
    (pts1, f1), (pts3, f3) = decode(tmp_path / "one.mkv"), decode(tmp_path / "three.mkv")
    assert pts1 == pts3 == [Fraction(i, 25) for i in range(60)]  # Matroska segments (no dts) join exactly
    np.testing.assert_array_equal(f1, f3)


def test_segments_starting_off_the_millisecond_keep_exact_pts(tmp_path: Path) -> None:
    """A 15 fps clip in 1/15360 s: chunks start at 8192/15360 s, which MP4's default 1/1000 s movie
    timescale cannot hold (it read back 5 ticks early); every output pts must equal the input's."""
    pts = [1024 * i for i in range(20)]
    clip = make_clip(tmp_path / "in.mp4", textured_frames(20, 32, 24), pts=pts, time_base=Fraction(1, 15360))
    upscale(clip, tmp_path / "out.mp4", opts(model="bicubic", chunk=8))
    assert decode(tmp_path / "out.mp4")[0] == [Fraction(p, 15360) for p in pts]


def test_busy_share_counts_calls_after_the_last_recorded_chunk() -> None:
    """A video whose chunks all failed after the last recorded chunk of another (its attempts still ran the
    model): the span covers those calls, so the share stays a share (it read 6.45 in issue 20)."""
    from vsr_pipeline.batch_runner import busy_share

    stats = [{"busy_s": 9.0, "first": 100.0, "last": 110.0}]  # 9 s of forward calls between t=100 and 110
    share = busy_share(stats, start=100.0, end=101.4)  # the last recorded chunk at t=101.4
    assert share == pytest.approx(0.9) and share <= 1.0
    two = [{"busy_s": 4.0, "first": 100.0, "last": 105.0}, {"busy_s": 0.0, "first": None, "last": None}]
    assert busy_share(two, 100.0, 104.0) == pytest.approx(4.0 / (5.0 * 2))


def test_a_stream_in_a_batch_is_refused_up_front_without_its_password(tmp_path: Path) -> None:
    """A camera URL (or stdin) among a batch's inputs: exit 2, one line naming it with its password
    hidden, nothing written. Before: each URL failed as "rtsp:/host/cam: no such file" (its path mangled)
    after the batch had started, and the summary and report named it whole, password included."""
    lst = tmp_path / "cams.txt"
    lst.write_text("# cameras\nrtsp://admin:Secret-99@127.0.0.1:9/cam\n")
    out = tmp_path / "out"
    run = subprocess.run([sys.executable, "-m", "vsr_pipeline.cli", "batch", "--list", str(lst), "-o",
                          str(out), "--model", "bicubic", "--scale", "2"], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "RAY_ADDRESS": "local"})
    assert run.returncode == 2, run.stderr
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("vsr: error:")]
    assert len(errors) == 1 and "rtsp://admin:***@127.0.0.1:9/cam" in errors[0] and "vsr upscale" in errors[0]
    assert "Secret-99" not in run.stderr + run.stdout and not out.exists()
