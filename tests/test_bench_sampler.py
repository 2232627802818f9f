"""``vsr bench``'s /proc sampler: an actor's CPU time survives the actor's exit."""

from __future__ import annotations

import subprocess
import sys
import time

from vsr_pipeline.procstat import TreeSampler, cpu_seconds

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.6: pass\n"


def test_cpu_of_an_actor_that_exited_is_kept() -> None:
    """A child titled like a Ray actor (``ray::Burner`` in its command line) burns 0.6 s of CPU, exits and is
    reaped while the sampler still lists it (the tree is relisted only every ``tree_every`` samples), as
    Ray's actors are at the end of a job. A vanished process reads 0 CPU: the figure must still be the
    0.6 s it used (it read 0.0, or negative, for whole `vsr bench` runs before)."""
    with TreeSampler(interval=0.05, tree_every=10_000, memory_every=10_000) as sampler:
        child = subprocess.Popen([sys.executable, "-c", BURN, "ray::Burner"])
        time.sleep(0.2)
        sampler._tree.append(child.pid)  # listed, as the next relisting would have done
        child.wait()
        assert cpu_seconds(child.pid) == 0.0  # gone
        time.sleep(0.3)  # samples of the vanished pid
    used = sampler.busy()["Burner"] * sampler.wall
    assert 0.4 <= used <= 2.0, used
