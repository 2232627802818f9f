"""Faults: a chunk that meets a transient failure (an exception that need not recur, a worker that dies) is
retried and the output is identical; one that keeps failing so fails the job naming its frames; an error that
would recur fails at once with its own exit code, the model never run again; Ctrl-C leaves no output and a
resumable ledger; corrupt frames follow --on-corrupt; weights are data; no shell; Ray on loopback without a
dashboard."""

from __future__ import annotations

import ast
import contextlib
import errno
import json
import logging
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
import torch

from tests import faults
from tests.conftest import ROOT, flip_packet_bytes, make_clip, textured_frames
from tests.test_resume import PTS, clip, decode, opts, reference  # noqa: F401  (fixtures)
from vsr_pipeline import UpscaleOptions, errors, upscale
from vsr_pipeline.batch_runner import BatchOptions, run_batch
from vsr_pipeline.cli import main
from vsr_pipeline.cluster import is_lost_worker, ray_session
from vsr_pipeline.errors import ChunkFailedError, WorkerLostError, WorkerRestartingError, is_transient
from vsr_pipeline.ledger import job_dir
from vsr_pipeline.media import FrameReader, MediaError

pytestmark = pytest.mark.usefixtures("ray_local")


def one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    lines = [ln for ln in err if ln.startswith("vsr: error:")]
    assert len(lines) == 1 and "Traceback" not in "\n".join(err), err
    return lines[0]


@pytest.mark.parametrize("mode", ["raise", "exit"])
def test_failed_chunk_is_retried_and_output_is_identical(
    mode: str,
    clip: Path,  # noqa: F811
    reference: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``raise``: a transient exception (ConnectionError) in chunk 1's encoding; ``exit``: the encoder's
    process dies at chunk 1 (Ray restarts the actor, the driver resubmits every chunk it lost)."""
    faults.install(monkeypatch, f"{mode}:1:{tmp_path / 'fired'}")
    out = tmp_path / "out.mp4"
    res = upscale(clip, out, opts())
    assert (tmp_path / "fired").exists() and res.retries >= 1
    assert res.chunks_computed == 4 and res.frames_out == 12
    assert out.read_bytes() == reference.read_bytes()


def test_chunk_failing_every_time_fails_the_job_with_its_frames(
    clip: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    faults.install(monkeypatch, "always:1")
    out = tmp_path / "out.mp4"
    code = main(["upscale", str(clip), "-o", str(out), "--model", "bicubic", "--scale", "2", "--chunk", "3",
                 "--retries", "1", "--no-progress"])
    assert code == errors.EXIT_CHUNK
    line = one_error_line(capsys)
    assert "chunk 1 (frames 3-5) failed 2 times, last: ConnectionError: injected fault" in line
    assert not out.exists() and (job_dir(out) / "ledger.json").exists()


def test_which_failures_are_retried() -> None:
    """Transient: Ray's system errors (as ``RayExecutor.result`` hands them on), memory, I/O of the moment;
    everything else recurs."""
    import ray.exceptions as rex

    lost = [rex.ActorDiedError(), rex.WorkerCrashedError(), rex.NodeDiedError("n"), rex.OutOfMemoryError("m"),
            rex.OwnerDiedError("ab" * 14, None, "")]
    assert all(is_lost_worker(e) for e in lost)
    assert not is_lost_worker(rex.RayTaskError("write_segment", "tb", ValueError("x")))
    for exc in (WorkerLostError("ActorDiedError: ..."), MemoryError(), ConnectionResetError(), TimeoutError(),
                OSError(errno.EIO, "Input/output error")):
        assert is_transient(exc), exc
    for exc in (ValueError("pts must increase"), TypeError(), RuntimeError("shape mismatch"), MediaError("x"),
                FileNotFoundError(), PermissionError(), OSError(errno.ENOSPC, "No space left on device")):
        assert not is_transient(exc), exc


def _submissions(caplog: pytest.LogCaptureFixture) -> list[tuple[int, int]]:
    """(chunk, attempt) of every chunk the scheduler handed to the model (its debug log)."""
    return [r.args for r in caplog.records if r.getMessage().startswith("chunk ") and "submitted" in r.msg]  # type: ignore[misc]


@pytest.mark.parametrize(("mode", "code", "message"), [
    ("input", errors.EXIT_INPUT, "injected: the encoder refuses chunk 1's frames"),
    ("bug", errors.EXIT_INTERNAL, "chunk 1 (frames 3-5) failed: ValueError: injected bug at chunk 1 (bug:1) "
     "(internal error: run with --debug for details); not retried"),
])
def test_error_that_recurs_fails_at_once_without_rerunning_the_model(
    mode: str,
    code: int,
    message: str,
    clip: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An encoder refusing a chunk's frames (MediaError: exit 3), a ValueError of our own stage code (a bug:
    exit 1): the same chunk would fail the same way, so it is never resubmitted (the issue's file ran the
    model three times, then exited 5)."""
    faults.install(monkeypatch, f"{mode}:1")
    out = tmp_path / "out.mp4"
    with caplog.at_level(logging.DEBUG, logger="vsr_pipeline.scheduler"):
        rc = main(["upscale", str(clip), "-o", str(out), "--model", "bicubic", "--scale", "2", "--chunk", "3",
                   "--retries", "2", "--no-progress"])
    assert rc == code
    assert message in one_error_line(capsys)
    sent = _submissions(caplog)
    assert (1, 1) in sent and all(attempt == 1 for _, attempt in sent), sent
    assert "retrying" not in caplog.text and not out.exists()


def test_batch_counts_one_forward_call_per_chunk_when_an_error_recurs(
    clip: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The upscalers' own count (``Engine.stats``): one forward call per chunk submitted, none repeated."""
    faults.install(monkeypatch, "bug:1")
    with caplog.at_level(logging.DEBUG, logger="vsr_pipeline.scheduler"):
        summary = run_batch([str(clip)], BatchOptions(opts(retries=2), tmp_path / "out", upscalers=1))
    sent = _submissions(caplog)
    assert (1, 1) in sent and all(attempt == 1 for _, attempt in sent), sent
    assert sum(summary["upscaler_calls"]) == len(sent)  # each chunk through the model once
    video = summary["videos"][0]
    assert video["status"] == "failed" and video["exit_code"] == errors.EXIT_INTERNAL
    assert "chunk 1 (frames 3-5) failed: ValueError" in video["error"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_exits_130_without_output_and_resumes_to_the_same_file(
    sig: signal.Signals,
    clip: Path,  # noqa: F811
    reference: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Ctrl-C (SIGINT), or SIGTERM from a scheduler: exit 130, one line, no output, a resumable ledger."""
    out = tmp_path / "out.mp4"
    # the CLI with every segment slowed by 1.5 s (tests/fault_cli.py installs the fault in that process)
    cmd = [sys.executable, "-m", "tests.fault_cli", "delay:1.5", "--", "upscale", str(clip), "-o", str(out),
           "--model", "bicubic", "--scale", "2", "--chunk", "3", "--crf", "0", "--no-progress"]  # = opts()
    # started with SIGINT ignored, as a background job of a non-interactive shell is (and as the test runner's
    # children may be): the CLI must still stop on it
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    ledger = job_dir(out) / "ledger.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if _has_done_chunk(ledger):
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == errors.EXIT_INTERRUPTED, err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("vsr: error:")]
    assert len(lines) == 1 and "interrupted" in lines[0] and "Traceback" not in err, err
    assert not out.exists() and not list(tmp_path.glob("*partial*"))
    done = json.loads(ledger.read_text())["done"]
    assert 1 <= len(done) < 4
    res = upscale(clip, out, opts())
    assert res.chunks_resumed == len(done) and res.chunks_computed == 4 - len(done)
    assert out.read_bytes() == reference.read_bytes()


def _has_done_chunk(ledger: Path) -> bool:
    """Whether the job's ledger records a finished chunk (the job may remove it at any moment)."""
    try:
        return bool(json.loads(ledger.read_text() or "{}").get("done"))
    except (OSError, ValueError):
        return False


def _corrupt_clip(path: Path) -> tuple[Path, int]:
    """A 20-frame clip with bytes flipped inside frame packets 8 and 9; returns it and how many frames the
    decoder loses (measured by decoding it packet by packet)."""
    flip_packet_bytes(make_clip(path.with_name("clean.mp4"), textured_frames(20, 32, 24)), path)
    decoded = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        for p in c.demux(s):
            with contextlib.suppress(av.FFmpegError):
                decoded += len(s.decode(p))
    return path, 20 - decoded


def test_corrupt_frames_repeat_skip_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, lost = _corrupt_clip(tmp_path / "bad.mp4")
    assert lost >= 1
    with av.open(str(tmp_path / "clean.mp4")) as c:
        s = c.streams.video[0]
        all_pts = [f.pts * s.time_base for f in c.decode(s)]
    rep = upscale(src, tmp_path / "rep.mp4", opts(chunk=6))
    assert rep.corrupt_frames == lost and rep.frames_out == 20
    bad = [c["index"] for c in rep.corrupt]
    pts, _ = decode(tmp_path / "rep.mp4")
    assert pts == all_pts  # frame count and timing intact
    with FrameReader(src, on_corrupt="repeat") as reader:  # a lost frame is the last good one before it
        lr, _ = reader.read(20)
    for i in bad:
        prev = max(j for j in range(i) if j not in bad)
        assert np.array_equal(lr[i], lr[prev])
    skip = upscale(src, tmp_path / "skip.mp4", opts(chunk=6, on_corrupt="skip"))
    assert skip.frames_out == 20 - lost and skip.corrupt == rep.corrupt
    assert decode(tmp_path / "skip.mp4")[0] == [p for i, p in enumerate(all_pts) if i not in bad]
    code = main(["upscale", str(src), "-o", str(tmp_path / "f.mp4"), "--model", "bicubic", "--scale", "2",
                 "--on-corrupt", "fail", "--no-progress"])
    assert code == errors.EXIT_INPUT
    line = one_error_line(capsys)
    assert f"frame {bad[0]} at {float(all_pts[bad[0]]):.3f} s cannot be decoded" in line
    assert not (tmp_path / "f.mp4").exists()


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_runs_a_command_is_refused_and_never_runs(
    clip: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"params": _Payload(marker)}, evil)
    code = main(["upscale", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", "espcn", "--scale", "2",
                 "--weights", str(evil), "--no-progress"])
    assert code == errors.EXIT_MODEL
    assert "evil.pth" in one_error_line(capsys)
    assert not marker.exists() and not (tmp_path / "o.mp4").exists()


def _python_files() -> list[Path]:
    return [p for d in ("vsr_pipeline", "workers", "models", "benchmarks") for p in (ROOT / d).rglob("*.py")]


def test_no_shell_and_no_string_commands() -> None:
    """No ``shell=True``, no ``os.system``/``os.popen``, and every subprocess command is a list."""
    bad = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            if name in ("os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput"):
                bad.append(f"{path}:{node.lineno} {name}")
            for kw in node.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                    bad.append(f"{path}:{node.lineno} shell=")
            first = node.args[0] if node.args else None
            if name.startswith("subprocess.") and isinstance(first, ast.Constant | ast.JoinedStr):
                bad.append(f"{path}:{node.lineno} string command")
    assert not bad, bad


def test_every_torch_load_is_weights_only() -> None:
    bad = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                kw = {k.arg: k.value for k in node.keywords}
                value = kw.get("weights_only")
                if not (isinstance(value, ast.Constant) and value.value is True):
                    bad.append(f"{path}:{node.lineno}")
    assert not bad, bad


def test_ray_started_by_the_cli_binds_loopback_without_dashboard(monkeypatch: pytest.MonkeyPatch) -> None:
    import ray

    seen: dict[str, object] = {}
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: seen.update(kw))
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    with ray_session(None):
        pass
    assert seen["_node_ip_address"] == "127.0.0.1" and seen["include_dashboard"] is False
    seen.clear()
    with ray_session("auto"):
        pass
    assert seen["include_dashboard"] is False


def test_options_defaults_are_the_documented_ones() -> None:
    o = UpscaleOptions()
    assert (o.on_corrupt, o.resume, o.retries) == ("repeat", "auto", 2)
    assert Fraction(1, 25) and PTS  # fixtures module imported


def _descendants_named(prefix: str) -> list[int]:
    """PIDs of this process's descendants whose command line starts with ``prefix`` (Ray names its actor
    processes ``ray::ClassName``); other users' Ray processes on the machine are never touched."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        names[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    me = os.getpid()

    def mine(pid: int) -> bool:
        for _ in range(20):
            pid = parents.get(pid, 0)
            if pid == me:
                return True
            if pid <= 1:
                return False
        return False

    return [p for p, n in names.items() if n.startswith(prefix) and mine(p)]


@pytest.mark.slow
def test_upscaler_process_killed_mid_job_is_restarted_and_output_is_identical(
    clip: Path,  # noqa: F811
    reference: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import threading

    faults.install(monkeypatch, "delay:0.7")  # slow segments so the kill lands mid-job
    out = tmp_path / "out.mp4"
    result: list[object] = []
    job = threading.Thread(target=lambda: result.append(upscale(clip, out, opts())))
    job.start()
    ledger = job_dir(out) / "ledger.json"
    killed = []
    deadline = time.monotonic() + 120
    while job.is_alive() and time.monotonic() < deadline and not killed:
        if _has_done_chunk(ledger):
            for pid in _descendants_named("ray::Upscaler"):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        time.sleep(0.05)
    job.join(timeout=300)
    assert killed, "no Upscaler process found to kill"
    assert result and result[0].frames_out == 12 and result[0].chunks_computed == 4  # type: ignore[attr-defined]
    assert out.read_bytes() == reference.read_bytes()


class _RestartingThenFine:
    """An executor whose first ``restarting`` results are a restarting actor's, then every chunk succeeds."""

    def __init__(self, restarting: int) -> None:
        self.left, self.submitted = restarting, 0

    def submit(self, work: object) -> int:
        self.submitted += 1
        return self.submitted

    def wait(self, handles: list[int], timeout: float | None) -> list[int]:
        return handles[:1]

    def result(self, handle: int) -> tuple[str, int]:
        if self.left > 0:
            self.left -= 1
            raise WorkerRestartingError("ActorUnavailableError: The actor is restarting")
        return "segment", 1


def test_a_restarting_actor_is_waited_for_without_using_up_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    """A restarted upscaler loads torch and its model again (seconds on a slow machine): its chunks are
    resubmitted until it is back without using up an attempt (retries=0 would otherwise fail the job)."""
    from vsr_pipeline import scheduler
    from vsr_pipeline.plan import Chunk
    from vsr_pipeline.scheduler import ChunkWork, run_chunks

    monkeypatch.setattr(scheduler, "RESTART_POLL_S", 0.01)
    def work(n: int) -> list[ChunkWork]:
        return [ChunkWork(Chunk(i, i, i + 1, i, i + 1), slice(0, 1), [], [i]) for i in range(n)]

    executor = _RestartingThenFine(restarting=5)
    stats = run_chunks(work(3), executor, retries=0)
    # chunks 0 and 1 each met the restart (one retry each, whatever the polls), none used up its attempt
    assert stats["computed"] == 3 and stats["retries"] == 2 and executor.submitted == 8
    monkeypatch.setattr(scheduler, "RESTART_WAIT_S", 0.03)  # an actor that never comes back: attempts count
    with pytest.raises(ChunkFailedError):
        run_chunks(work(1), _RestartingThenFine(restarting=100), retries=1)
