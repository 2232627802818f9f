"""glibc malloc settings for a process that allocates the same large buffers over and over (an upscaler).

By default glibc serves every block above 32 MiB (a 2560x1088 float feature map is 11 MiB per channel,
a batch of them hundreds) with a fresh ``mmap`` and gives it back with ``munmap`` when freed, so each forward
pass page-faults its buffers in again and the kernel zeroes every page: measured 1.8x the time of ESPCN x4 on
272x640 frames (docs/benchmarks.md section 8.3f). ``reuse_freed_memory(True)`` serves large blocks from the
heap and never trims it, so freed buffers are reused by the next pass; the process keeps its peak heap (it
does not grow with the video's length: the same buffers come back each chunk). ``False`` restores glibc's
defaults and ``release_free_memory()`` hands what the heap holds free back to the OS (``malloc_trim``), so
the process then pays page faults like a fresh one. A no-op (returns False) where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
#: glibc's defaults (malloc/malloc.c: DEFAULT_TRIM_THRESHOLD, DEFAULT_MMAP_MAX)
_DEFAULT_TRIM = 128 * 1024
_DEFAULT_MMAP_MAX = 65536
#: the largest value mallopt takes (an int): in effect "never trim"
_NEVER_TRIM = 2**31 - 1


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.mallopt.restype = ctypes.c_int
        libc.gnu_get_libc_version  # noqa: B018 - glibc only: mallopt elsewhere differs or is missing
    except (OSError, AttributeError):
        return None
    return libc


def reuse_freed_memory(enabled: bool = True) -> bool:
    """Keep (``True``) or return (``False``, glibc's defaults) freed large blocks; True when applied."""
    libc = _libc()
    if libc is None:
        return False
    mmap_max, trim = (0, _NEVER_TRIM) if enabled else (_DEFAULT_MMAP_MAX, _DEFAULT_TRIM)
    return bool(libc.mallopt(_M_MMAP_MAX, mmap_max)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, trim))


def single_arena() -> bool:
    """All threads allocate from the main arena (``mallopt(M_ARENA_MAX, 1)``); True when applied. For a
    process whose model runs on a thread other than the main one (a live stream): a thread's own arena is
    a heap of at most 64 MiB, so :func:`reuse_freed_memory` cannot keep its large buffers there; measured
    ESPCN x4 at 640x272 2.05x slower per frame on such a thread, as fast as on the main thread with one arena
    (``benchmarks/speed_engine_thread.py``). Call it before any thread allocates (FFmpeg's decoder threads
    too): glibc fixes the arena limit when the first extra arena is made, and a thread keeps its arena."""
    libc = _libc()
    return bool(libc.mallopt(_M_ARENA_MAX, 1)) if libc is not None else False


def release_free_memory() -> bool:
    """Return the heap's free memory to the OS (glibc ``malloc_trim(0)``); True when some was released."""
    libc = _libc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))
