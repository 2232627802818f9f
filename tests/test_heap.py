"""vsr_pipeline.heap: with reuse on, freed large buffers serve the next pass without page faults."""

from __future__ import annotations

import resource
import sys

import pytest
import torch

from vsr_pipeline.heap import reuse_freed_memory

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")


def faults_per_pass(passes: int = 8) -> list[int]:
    """Minor page faults of each of ``passes`` identical passes that fill two large buffers (64 and 32 MiB,
    like a forward pass's feature maps) and free them."""
    out = []
    for _ in range(passes):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        a = torch.empty(16 * 2**20)
        a.fill_(1.0)
        b = torch.empty(8 * 2**20)
        b.fill_(2.0)
        del a, b
        out.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return out


def test_reuse_stops_faulting_large_buffers_in_every_pass() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert reuse_freed_memory(False)
        default = faults_per_pass()
        assert reuse_freed_memory(True)
        reused = faults_per_pass()
    finally:
        assert reuse_freed_memory(False)  # glibc's defaults again for the rest of the test process
        torch.set_num_threads(threads)
    # 96 MiB in 4 KiB pages, mmapped afresh and zeroed by the kernel in every pass
    assert min(default[-4:]) > 20_000, default
    # once the heap holds both buffers (a few passes), a pass faults nothing in
    assert max(reused[-4:]) < 500, reused
