"""Kill -9 a multi-chunk `vsr upscale` at random moments, resume each time, compare with an uninterrupted run.

1. An uninterrupted run gives the reference output and its duration T.
2. Then the same command runs again and again (same output path); run i is killed with SIGKILL at a
   random moment: a random delay (0-2 s) after the ledger shows k finished chunks, k drawn uniformly
   from the i-th tenth of the chunks (so the kills spread over the whole job), until ``--kills`` kills
   have landed; the run after that is left to finish. (Moments tied to progress, not to the clock, so a
   loaded machine does not make the kills miss.)
3. The final output's decoded frames and pts must equal the reference's (and the bytes are compared too).

Chunks recomputed: every run logs each chunk it submits (``--debug``); submissions beyond the chunk count
are work lost to kills (chunks in flight at the moment of a kill). A chunk the ledger had recorded must
never be submitted again; the script checks that too.

    PYTHONPATH=. python benchmarks/reliability_kill_resume.py          # 10 kills, 180 frames 160x120 -> x4
    PYTHONPATH=. python benchmarks/reliability_kill_resume.py --quick    # 3 kills, 36 frames, 6 chunks
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from vsr_pipeline.ledger import job_dir

try:  # the test suite's clip makers; tests/ is not installed
    from tests.conftest import make_clip, textured_frames
except ModuleNotFoundError as e:
    if e.name != "tests":
        raise
    raise SystemExit("error: no module tests: run from the repository root with PYTHONPATH=.") from None

ROOT = Path(__file__).resolve().parent.parent

SUBMIT = re.compile(r"chunk (\d+) submitted")
READY = re.compile(r"workers starting")  # vsr_pipeline.job logs it (--debug) as the actors start


def decode(path: Path) -> tuple[list[int], np.ndarray]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        return [f.pts for f in frames], np.stack([f.to_ndarray(format="rgb24") for f in frames])


def done_chunks(out: Path) -> set[int]:
    ledger = job_dir(out) / "ledger.json"
    try:
        return {int(k) for k in json.loads(ledger.read_text())["done"]}
    except (OSError, ValueError, KeyError):
        return set()


def command(src: Path, out: Path, args: argparse.Namespace) -> list[str]:
    return [sys.executable, "-m", "vsr_pipeline.cli", "upscale", str(src), "-o", str(out), "--model",
            args.model, "--scale", str(args.scale), "--chunk", str(args.chunk), "--no-progress", "--debug"]


def run(
    cmd: list[str], out: Path, kill_at: tuple[int, float] | None, log: Path
) -> tuple[int, float, list[int]]:
    """Run ``cmd``; with ``kill_at = (k, t)``, SIGKILL it ``t`` seconds after its workers are ready and the
    ledger shows ``k`` finished chunks. Returns (exit code, seconds, chunk submissions)."""
    started = time.monotonic()
    reached: float | None = None
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT)
        while proc.poll() is None:
            now = time.monotonic()
            if (kill_at is not None and reached is None and READY.search(log.read_text(errors="replace"))
                    and len(done_chunks(out)) >= kill_at[0]):
                reached = now
            if kill_at is not None and reached is not None and now - reached >= kill_at[1]:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        code = proc.wait()
    seconds = time.monotonic() - started
    return code, seconds, [int(m.group(1)) for m in SUBMIT.finditer(log.read_text(errors="replace"))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 kills, 36 frames")
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--frames", type=int, default=180)
    ap.add_argument("--size", default="160x120", help="input WxH (the encoder's work grows with it)")
    ap.add_argument("--chunk", type=int, default=6)
    ap.add_argument("--model", default="bicubic")
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "kill_resume.json"))
    args = ap.parse_args()
    if args.quick:
        args.kills, args.frames = 3, 36
    rng = random.Random(args.seed)
    n_chunks = -(-args.frames // args.chunk)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        w, h = (int(v) for v in args.size.split("x"))
        src = make_clip(tmp / "in.mp4", textured_frames(args.frames, w, h), audio=True)
        ref = tmp / "ref.mp4"
        code, t_ref, _ = run(command(src, ref, args), ref, None, tmp / "ref.log")
        assert code == 0, (tmp / "ref.log").read_text()[-2000:]
        out = tmp / "out.mp4"
        runs = []
        kills = 0
        submissions = 0
        resubmitted_done = 0
        while True:
            before = done_chunks(out)
            kill_at = None
            if kills < args.kills:  # kill i: after a random number of chunks within the i-th share of the job
                lo, hi = kills * n_chunks // args.kills, (kills + 1) * n_chunks // args.kills - 1
                k = rng.randint(lo, max(lo, hi))
                kill_at = (max(k, len(before)), rng.uniform(0.0, 2.0))
            log = tmp / f"run{len(runs)}.log"
            code, seconds, submitted = run(command(src, out, args), out, kill_at, log)
            after = done_chunks(out)
            killed = code == -signal.SIGKILL
            kills += killed
            submissions += len(submitted)
            resubmitted_done += len(set(submitted) & before)
            runs.append({
                "kill_after_done": None if kill_at is None else kill_at[0],
                "kill_delay_s": None if kill_at is None else round(kill_at[1], 2), "killed": killed,
                "exit": code, "seconds": round(seconds, 2), "done_before": len(before),
                "done_after": len(after) if killed else n_chunks, "submitted": len(submitted),
            })
            print(json.dumps(runs[-1]), flush=True)
            if not killed:
                assert code == 0, (tmp / f"run{len(runs) - 1}.log").read_text()[-2000:]
                break
        pts_ref, frames_ref = decode(ref)
        pts_out, frames_out = decode(out)
        result = {
            "frames": args.frames, "size": args.size, "chunk": args.chunk, "chunks": n_chunks,
            "model": args.model,
            "scale": args.scale, "kills": kills, "runs": len(runs), "uninterrupted_s": round(t_ref, 2),
            "chunk_submissions": submissions, "recomputed_chunks": submissions - n_chunks,
            "done_chunks_resubmitted": resubmitted_done,
            "identical_frames": bool(pts_ref == pts_out and np.array_equal(frames_ref, frames_out)),
            "identical_bytes": ref.read_bytes() == out.read_bytes(),
            "job_folder_removed": not job_dir(out).exists(), "per_run": runs,
        }
    print(json.dumps({k: v for k, v in result.items() if k != "per_run"}, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    if not result["identical_frames"] or resubmitted_done:
        sys.exit(1)


if __name__ == "__main__":
    main()
