"""Fixed costs beside the model on the CPU: Ray idle, the bench's own sampler, an upscaler's start-up.

    python benchmarks/speed_overhead.py [--seconds 15]

- **Ray idle**: CPU seconds per wall second of every process of an in-process Ray session (raylet, GCS,
  log monitor, idle workers) while nothing runs.
- **bench sampler**: the driver's CPU per wall second while ``vsr_pipeline.procstat.TreeSampler`` samples a
  tree holding three idle actors with BasicVSR loaded, at its defaults and at the old settings (every 0.1 s
  with PSS every 5th sample; every 0.5 s with PSS every 4th).
- **start-up**: an upscaler's ``import torch``, model build + weight load (BasicVSR, bf16), measured in a
  fresh subprocess.
Prints one JSON object; docs/benchmarks.md 8.3c quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from vsr_pipeline.cluster import ray_session
from vsr_pipeline.procstat import TreeSampler, cpu_seconds, process_tree

STARTUP = """
import time; t0 = time.perf_counter()
import torch; t1 = time.perf_counter()
from models.registry import get_spec
from vsr_pipeline.engine import Engine
Engine(get_spec("basicvsr"), None, 4, "cpu", 2, 4, precision="bf16"); t2 = time.perf_counter()
print(round(t1 - t0, 2), round(t2 - t1, 2))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0)
    args = ap.parse_args()
    out: dict = {"loadavg_start": os.getloadavg()}
    import ray

    with ray_session(None):
        time.sleep(5)  # let Ray's start settle
        me = os.getpid()
        tree = [p for p in process_tree(me) if p != me]
        before = {p: cpu_seconds(p) for p in tree}
        time.sleep(args.seconds)
        out["ray_idle_cores"] = round(sum(cpu_seconds(p) - c for p, c in before.items()) / args.seconds, 4)

        @ray.remote(num_cpus=0)
        class Holder:
            def __init__(self) -> None:
                from vsr_pipeline.engine import load_upscaler_model

                self.model = load_upscaler_model("basicvsr", None, 4)

            def ready(self) -> bool:
                return True

        holders = [Holder.remote() for _ in range(3)]  # type: ignore[attr-defined]
        ray.get([h.ready.remote() for h in holders])
        settings = {
            "default": {},
            "old_0.1s_pss_every_5": {"interval": 0.1, "tree_every": 1, "memory_every": 5},
            "old_0.5s_pss_every_4": {"interval": 0.5, "tree_every": 1, "memory_every": 4},
        }
        out["sampler_driver_cores"] = {}
        for name, kw in settings.items():
            c0, t0 = time.process_time(), time.perf_counter()
            with TreeSampler(**kw):
                time.sleep(args.seconds)
            cores = (time.process_time() - c0) / (time.perf_counter() - t0)
            out["sampler_driver_cores"][name] = round(cores, 4)
    imp, build = subprocess.run([sys.executable, "-c", STARTUP], capture_output=True, text=True,
                                check=True).stdout.split()
    out["startup_s"] = {"import_torch": float(imp), "build_and_load_basicvsr": float(build)}
    out["loadavg_end"] = os.getloadavg()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
