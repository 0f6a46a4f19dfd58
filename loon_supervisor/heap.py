"""A fixed malloc threshold for the long-running verbs.

glibc raises its mmap threshold every time a large block is freed (up to 32 MiB), so after a
burst of large buffers (a follower catching up at full speed: recv buffers, MiB writes)
later large buffers come from the heap, where freed space stays resident when it is not at
the top: the supervisor's peak RSS at a teardown with every file at the rotation cap varied
from ~70 to ~250 MiB between identical runs (bench/teardown.py). A fixed threshold keeps
blocks of ``THRESHOLD`` and more in their own mappings, returned to the system when freed.
1 MiB, not glibc's initial 128 KiB: asyncio reads sockets into 256 KiB buffers, and a
mapping per read cost ~1 % of a core at 8 x 100 lines/s and a tenth of the throughput.
Written by hand: no maintained library exposes ``mallopt``; ctypes is the standard way.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
THRESHOLD = 1024 * 1024


def fix_mmap_threshold(threshold: int = THRESHOLD) -> bool:
    """Set it once at start; False where there is no glibc (then nothing changes)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False
