"""glibc's allocator, set for a process that runs for months (docs/architecture.md: Memory).

glibc serves a request of 128 KiB or more with a mapping of its own, given back to the system
when freed, until a freed block tells it that such sizes are common: it then raises that
threshold (up to 32 MiB on a 64-bit system, 512 KiB on a 32-bit one) and serves them from its
heaps, where the pages stay, fragmented, once freed. The daemon builds each batch in blocks of
about a megabyte (the JSON, its compressed copy): on a 64-bit system, with the threshold
raised, an offline gateway's RSS rose by 2–4 MB at every rebuild (17.8 MB/h over 14 minutes of
`bench/edge_store.py --soak-minutes`); with it fixed, the same run stayed flat (0.14 MB/h).
Setting the threshold switches the adjustment off (mallopt(3)).

Smaller blocks come and go in the heaps of each thread (the store's writer thread has its own):
the pages a freed block leaves inside a heap stay with the process until glibc is asked to give
them back. `give_back_free_pages` asks (malloc_trim(3)); the daemon does it every few minutes,
so its RSS follows what it holds rather than what it once held.
"""

from __future__ import annotations

import ctypes
import os

M_MMAP_THRESHOLD = -3  # mallopt's parameter (malloc.h)
MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value


def is_glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (ValueError, OSError, AttributeError):  # another C library (no confstr: Windows)
        return False


def keep_large_blocks_mapped() -> bool:
    """Fix glibc's mmap threshold at its starting value: large blocks are mapped, and given
    back when freed, however many there have been. False where the C library is not glibc."""
    if not is_glibc():
        return False
    return bool(ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def give_back_free_pages() -> bool:
    """Return to the system the whole free pages of every glibc heap (malloc_trim(0)); what is
    in use is untouched. False where the C library is not glibc."""
    if not is_glibc():
        return False
    ctypes.CDLL(None).malloc_trim(0)
    return True
