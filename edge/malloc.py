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

Python's own objects (up to 512 bytes: nearly all of them) do not come from glibc by default
but from pymalloc, which carves 1 MiB arenas into 16 KiB pools and gives an arena back only
when every object in it is gone. A pool it has once used stays resident while its arena lives,
whatever malloc_trim is asked. With the arena count steady, a daemon's RSS still rose 0.1–0.3
MB an hour for hours (`bench/edge_store.py --soak-minutes`), most of it in the arenas' resident
pages, while what Python held stayed flat (tracemalloc) and so did SQLite's own memory. The
daemon therefore runs with PYTHONMALLOC=malloc (`run_again_with_glibc_objects`: its typed
command line runs itself again with it, once, before the daemon's modules are loaded):
Python's objects come from glibc's heaps too, whose free pages the writer gives back. It costs
about 1 MB more at start and 8–15 % more CPU (32 meters for an hour, side by side: 5.0–5.2 %
of a core against 4.6 %).
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Mapping, Sequence

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


def daemon_environment(environ: Mapping[str, str]) -> dict[str, str] | None:
    """The environment to run the daemon again in: `environ` with PYTHONMALLOC=malloc, so its
    Python objects come from glibc, whose free pages can be given back (see the module's
    doc). None when it is set already (by the run before, or by whoever started the process,
    e.g. for debugging), when Python would ignore it (-E, -I) or runs in its development mode
    (-X dev, whose allocator checks it would drop), or where the C library is not glibc."""
    if "PYTHONMALLOC" in environ or sys.flags.ignore_environment or sys.flags.dev_mode:
        return None
    if not is_glibc():
        return None
    return {**environ, "PYTHONMALLOC": "malloc"}


def run_again_with_glibc_objects(args: Sequence[str]) -> None:
    """Run this process again at once, under the same id (execve: systemd and signals see one
    process), with `daemon_environment`. Only when its command line was typed (`args` end it,
    not arguments a program handed its main()) and can be run again as typed (not a program
    read from standard input, not a frozen executable). Returns when it does not, and when the
    system refuses: the process goes on with Python's own allocator."""
    environment = daemon_environment(os.environ)
    argv = sys.orig_argv
    typed = argv[len(argv) - len(args) :] == list(args)
    if environment is None or not typed or not sys.executable or argv[1:2] == ["-"]:
        return
    if getattr(sys, "frozen", False):
        return
    try:
        os.execve(sys.executable, [sys.executable, *argv[1:]], environment)  # noqa: S606
    except OSError:
        return
