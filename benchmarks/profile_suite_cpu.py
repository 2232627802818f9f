"""Where a command's CPU time goes, by kind of process: run it, sample every process twice a second.

    python benchmarks/profile_suite_cpu.py --json benchmarks/results/suite_cpu.json -- \\
        .venv/bin/python -m pytest -q -n 2 --dist loadfile

Every process on the machine is sampled (``/proc/PID/stat``: user + system time), so what the kernel or other
jobs spend shows up too. A process is counted under the kind it last had (a Ray worker forks from the raylet,
then names itself ``ray::IDLE`` and, once it hosts an actor, ``ray::Upscaler`` ...); one that lives less than
a sampling interval is missed, and the CPU a process spent between its last sample and its exit is lost, so
the totals are lower bounds. Prints a table (kinds of at least 0.1 CPU-s); ``--json`` keeps it (``kinds``:
CPU seconds and processes per kind, ``wall_s``, ``returncode``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
#: command-line pieces that name a kind of process, first match wins
KINDS = (("gcs_server", "ray gcs_server"), ("raylet", "ray raylet"), ("dashboard", "ray dashboard"),
         ("log_monitor", "ray log_monitor"), ("runtime_env", "ray runtime_env agent"),
         ("monitor.py", "ray monitor"), ("vsr_pipeline.cli", "vsr CLI run"), ("fault_cli", "vsr CLI run"),
         ("execnet", "pytest worker"), ("xdist", "pytest worker"), ("pytest", "pytest"))


def kind_of(pid: str) -> str | None:
    """What process ``pid`` is now (None: gone)."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    if comm.startswith("ray::"):
        return comm
    for piece, kind in KINDS:
        if piece in cmd:
            return kind
    if "exec(eval(" in cmd:  # how execnet starts a pytest-xdist worker
        return "pytest worker"
    return f"kernel: {comm}" if not cmd else comm


def cpu_seconds(pid: str) -> tuple[float, int] | None:
    """(user + system CPU seconds, start time in ticks) of ``pid`` (None: gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICK, int(fields[19])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, help="write the table here")
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between samples (0.5)")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = ap.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("give the command to profile after --")
    before: dict[tuple[str, int], float] = {}  # CPU seen at the start (spent before the command)
    last: dict[tuple[str, int], tuple[str, float]] = {}  # (pid, start) -> (kind, CPU seconds)
    for pid in filter(str.isdigit, os.listdir("/proc")):
        got = cpu_seconds(pid)
        if got is not None:
            before[(pid, got[1])] = got[0]
    me = str(os.getpid())
    started = time.monotonic()
    proc = subprocess.Popen(command)
    while True:
        done = proc.poll() is not None
        for pid in filter(str.isdigit, os.listdir("/proc")):
            got, kind = cpu_seconds(pid), kind_of(pid)
            if got is None or kind is None or pid == me:
                continue
            last[(pid, got[1])] = (kind, got[0] - before.get((pid, got[1]), 0.0))
        if done:
            break
        time.sleep(args.interval)
    wall = time.monotonic() - started
    cpu: Counter[str] = Counter()
    procs: Counter[str] = Counter()
    for kind, seconds in last.values():
        cpu[kind] += seconds
        procs[kind] += 1
    kinds = {k: {"cpu_s": round(v, 1), "processes": procs[k]} for k, v in cpu.most_common() if v >= 0.1}
    total = sum(cpu.values())
    print(f"{' '.join(command)}: exit {proc.returncode}, {wall:.0f} s wall, {total:.0f} CPU-s sampled")
    for k, v in kinds.items():
        print(f"{v['cpu_s']:9.1f} s {100 * v['cpu_s'] / max(total, 1e-9):5.1f} % {v['processes']:5d}  {k}")
    if args.json:
        args.json.write_text(json.dumps({"command": command, "wall_s": round(wall, 1), "cpus": os.cpu_count(),
                                         "returncode": proc.returncode, "cpu_s": round(total, 1),
                                         "kinds": kinds}, indent=1) + "\n")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
