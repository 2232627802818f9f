"""Process-tree sampling from Linux ``/proc``: RSS/PSS and CPU seconds of this process and its descendants.

``vsr bench`` samples during each variant it times (peak memory, each Ray actor's CPU share: ``stage_busy``);
benchmarks use the same readings. Linux only; elsewhere the readings are 0.
"""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return out


def process_tree(pid: int) -> list[int]:
    children, out, todo = _children(), [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of ``pid`` in KiB (0 when it is gone)."""
    rss = pss = 0
    for line in _read(f"/proc/{pid}/smaps_rollup").splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1])
        elif line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss, pss


def rss_kb(pid: int) -> int:
    """Resident set of ``pid`` in KiB from /proc/PID/statm (a counter: cheap, unlike smaps_rollup)."""
    fields = _read(f"/proc/{pid}/statm").split()
    return int(fields[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024) if len(fields) > 1 else 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far."""
    text = _read(f"/proc/{pid}/stat")
    if not text:
        return 0.0
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_RAY_NAME = re.compile(r"ray::([A-Za-z_]\w*)")


class TreeSampler:
    """Samples, every ``interval`` seconds in a thread, the summed RSS/PSS of this process and its
    descendants (Ray's raylet, GCS and workers when Ray runs in-process) and each Ray actor's CPU time
    (by the ``ray::ClassName`` process title).

    Sampling costs the driver CPU: listing all of /proc to find the tree takes ~9 ms a sample and
    smaps_rollup makes the kernel walk every mapping (~10 ms per torch process); every 0.1 s with PSS every
    5th sample it took 0.08 of the 2 cores beside three idle BasicVSR actors
    (``benchmarks/speed_overhead.py``). So the known tree's CPU times and titles are read every
    ``interval`` (an actor that finishes a tiny job is named for well under a second), the tree is relisted
    and its RSS summed (statm: cheap) every ``tree_every`` samples (new actors mostly reuse Ray's prestarted
    workers, already in it) and PSS read every ``memory_every``: 0.024 cores. ``run_bench`` runs one
    sampler around every timed variant, so whatever it costs, each variant pays it alike."""

    def __init__(self, interval: float = 0.1, tree_every: int = 5, memory_every: int = 50) -> None:
        self.interval = interval
        self.tree_every = max(1, tree_every)
        self.memory_every = max(1, memory_every)
        self._tree: list[int] = []
        self._names: dict[int, str] = {}  # pid -> its final title's actor name ("" for none): read once
        self._samples = 0
        self.peak_rss_kb = self.peak_pss_kb = 0
        self.actor_cpu: dict[int, tuple[str, float, float]] = {}  # pid -> (name, first cpu, last cpu)
        self.driver_cpu = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeSampler:
        self._cpu0 = cpu_seconds(os.getpid())
        self._actor_cpu0 = {p: cpu_seconds(p) for p in process_tree(os.getpid())}
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample(memory=True)
        self.wall = time.perf_counter() - self._t0
        self.driver_cpu = cpu_seconds(os.getpid()) - self._cpu0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self, memory: bool | None = None) -> None:
        rss = pss = 0
        self._samples += 1
        memory = self._samples % self.memory_every == 1 if memory is None else memory
        relist = memory or not self._tree or self._samples % self.tree_every == 1
        if relist:
            self._tree = process_tree(os.getpid())
        for pid in self._tree:
            if memory:
                r, p = memory_kb(pid)
                rss, pss = rss + r, pss + p
            elif relist:
                rss += rss_kb(pid)
            name = self._names.get(pid)
            if name is None:
                cmdline = _read(f"/proc/{pid}/cmdline").replace("\0", " ")
                m = _RAY_NAME.search(cmdline)
                name = m.group(1) if m else ""
                # an idle worker may become an actor, a starting one is not titled yet: read those again
                if name != "IDLE" and "default_worker" not in cmdline:
                    self._names[pid] = name
            if name and name != "IDLE" and not name.endswith("Agent"):  # not Ray's own agents
                cpu = cpu_seconds(pid)
                _, first, last = self.actor_cpu.get(pid, (name, self._actor_cpu0.get(pid, 0.0), cpu))
                # an actor that has exited and been reaped reads 0 until the next relisting drops it: keep
                # its last real reading (that 0 wiped whole runs' figures: stage_busy 0.0 or negative)
                self.actor_cpu[pid] = (name, first, max(last, cpu))
        self.peak_rss_kb, self.peak_pss_kb = max(self.peak_rss_kb, rss), max(self.peak_pss_kb, pss)

    def busy(self) -> dict[str, float]:
        """CPU seconds per wall second of each actor class (summed over its processes) and the driver."""
        out: dict[str, float] = {}
        for name, first, last in self.actor_cpu.values():
            out[name] = out.get(name, 0.0) + (last - first) / self.wall
        out["driver"] = self.driver_cpu / self.wall
        return {k: round(v, 3) for k, v in sorted(out.items())}


# --- the three variants ------------------------------------------------------------------------------------


