"""How often a job finds the previous job's upscaler actors warm (``vsr_pipeline.warm_actors``), and why not.

A pytest plugin: loaded into a run of the suite, it wraps ``warm_actors.take`` and appends one JSON line per
job that starts an upscaler pool: ``hit`` (taken warm), ``swap`` (taken warm, another model loaded in the same
processes: ``Upscaler.swap``), ``none`` (nothing parked) or ``miss`` (new actors), with the parts of the key
that differed (``args.NAME``: an Engine argument). Run as a script, it sums a log up.

    PYTHONPATH=benchmarks VSR_WARM_HITS=/tmp/warm.jsonl python -m pytest -q -n 2 -p speed_warm_hits \
        tests/test_pipeline.py tests/test_resume.py tests/test_reliability.py tests/test_batch.py ...
    python benchmarks/speed_warm_hits.py /tmp/warm.jsonl
"""

from __future__ import annotations

import collections
import json
import os
import sys
from typing import Any

#: the parts of ``UpscalerPool.start``'s key, in order: (slots, model) flattened
PARTS = ("placement", "restarts", "class", "node", "job", "weights_file", "args")


def differences(parked: tuple[Any, ...], wanted: tuple[Any, ...]) -> list[str]:
    """Names of the key parts (Engine arguments one by one) that differ."""
    out: list[str] = []
    for name, a, b in zip(PARTS, (*parked[0], *parked[1]), (*wanted[0], *wanted[1]), strict=True):
        if name == "args":
            out += sorted(f"args.{k}" for k in set(a) | set(b) if a.get(k) != b.get(k))
        elif a != b:
            out.append(name)
    return out


def pytest_configure(config: Any) -> None:
    from vsr_pipeline import warm_actors

    path = os.environ.get("VSR_WARM_HITS", "warm_hits.jsonl")
    take = warm_actors.take

    def logged(key: Any, accepts: Any = None) -> Any:
        parked = warm_actors._parked
        record: dict[str, Any] = {"test": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]}
        if parked is None:
            record["result"] = "none"
        elif parked.key == key:
            record["result"] = "hit"
        else:
            swap = accepts is not None and accepts(parked.key)
            record["result"], record["differ"] = "swap" if swap else "miss", differences(parked.key, key)
        with open(path, "a") as f:  # one short line per job: appends from two workers do not interleave
            f.write(json.dumps(record) + "\n")
        return take(key, accepts)

    warm_actors.take = logged


def summary(path: str) -> dict[str, Any]:
    """Counts of hit/none/miss, and of misses by the set of parts that differed."""
    results: collections.Counter[str] = collections.Counter()
    misses: collections.Counter[str] = collections.Counter()
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            results[r["result"]] += 1
            if r["result"] in ("miss", "swap"):
                misses[f'{r["result"]}: {", ".join(r["differ"])}'] += 1
    return {"jobs": sum(results.values()), **results, "misses_by_difference": dict(misses.most_common())}


if __name__ == "__main__":
    print(json.dumps(summary(sys.argv[1]), indent=1))
