"""The daemon's process keeps glibc from serving megabyte blocks out of its heaps once it has
freed one (edge/malloc.py): each batch is built in such blocks, and pages of the heap stay with
the process after the blocks are freed. Seen through glibc's own count of mapped blocks
(mallinfo2), in a fresh process with and without the setting. Its free pages go back to the
system when asked, and so do those of Python's objects once they come from glibc too
(PYTHONMALLOC=malloc), which pymalloc's would not."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys

import pytest

from edge.malloc import daemon_environment, is_glibc

pytestmark = pytest.mark.skipif(
    not is_glibc() or not hasattr(ctypes.CDLL(None), "mallinfo2"),
    reason="glibc's allocator, 2.33 or later (mallinfo2)",
)
# what sets glibc's thresholds from outside, which the probe must not inherit
MALLOC_ENVIRONMENT = (
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "GLIBC_TUNABLES",
    "PYTHONMALLOC",
)

PROBE = """
import ctypes, sys
from edge.malloc import keep_large_blocks_mapped

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd",
        "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
if sys.argv[1] == "fixed":
    assert keep_large_blocks_mapped()
# within 512 KiB, where glibc raises its threshold on 32-bit systems too
batch = bytearray(448 * 1024)  # a batch built and sent: mapped, then freed
del batch
before = libc.mallinfo2().hblks
json_text = bytearray(256 * 1024)  # the next batch's block
print(libc.mallinfo2().hblks - before)
"""


def mapped_blocks_for_the_next_batch(setting: str) -> int:
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENVIRONMENT}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, setting], capture_output=True, text=True, check=True, env=env
    )
    return int(done.stdout)


def test_a_large_block_is_mapped_however_many_came_before() -> None:
    assert mapped_blocks_for_the_next_batch("fixed") == 1
    # glibc's own behaviour, which the setting is there for: the block comes from the heap
    assert mapped_blocks_for_the_next_batch("default") == 0


TRIM_PROBE = """
import ctypes, sys
from edge.malloc import give_back_free_pages

def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
# 32 MiB in 64 KiB blocks (below the mmap threshold: from the heap), every other one freed:
# half the heap free, in holes a block wide, none at its top to shrink it by
blocks = [libc.malloc(65536) for _ in range(512)]
for block in blocks:
    ctypes.memset(block, 1, 65536)
for block in blocks[::2]:
    libc.free(block)
before = rss_kib()
if sys.argv[1] == "trim":
    assert give_back_free_pages()
print(before - rss_kib())
"""


def given_back_kib(action: str) -> int:
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENVIRONMENT}
    done = subprocess.run(
        [sys.executable, "-c", TRIM_PROBE, action],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return int(done.stdout)


def test_the_free_pages_inside_a_heap_go_back_to_the_system() -> None:
    # 16 MiB is free in holes of 64 KiB: trimmed, nearly all of it leaves the process
    assert given_back_kib("trim") > 8 * 1024
    # glibc's own behaviour, which the call is there for: the holes stay resident
    assert given_back_kib("keep") < 1024


OBJECTS_PROBE = """
from edge.malloc import give_back_free_pages

def rss_kib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4

# some 48 MB of small objects (a reading's floats, strings and tuples are such), of which one
# in a thousand outlives the rest: every megabyte keeps a few, none is wholly free
objects = [bytes(200) for _ in range(200_000)]
kept = objects[::1000]
del objects
before = rss_kib()
assert give_back_free_pages()
print(before - rss_kib())
"""


def objects_given_back_kib(allocator: str) -> int:
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENVIRONMENT}
    done = subprocess.run(
        [sys.executable, "-c", OBJECTS_PROBE],
        capture_output=True,
        text=True,
        check=True,
        env={**env, "PYTHONMALLOC": allocator},
    )
    return int(done.stdout)


def test_the_pages_of_freed_python_objects_go_back_when_glibc_serves_them() -> None:
    # the daemon's allocator: all but the pages around the survivors leave the process
    assert objects_given_back_kib("malloc") > 24 * 1024
    # pymalloc's (Python's default), which the daemon leaves for that: its arenas stay resident
    assert objects_given_back_kib("pymalloc") < 4 * 1024


def test_the_daemon_runs_on_glibcs_allocator_unless_told_otherwise() -> None:
    assert daemon_environment({"PATH": "/usr/bin"}) == {
        "PATH": "/usr/bin",
        "PYTHONMALLOC": "malloc",
    }
    assert daemon_environment({"PYTHONMALLOC": "malloc"}) is None  # already so: no second run
    assert daemon_environment({"PYTHONMALLOC": "debug"}) is None  # someone's own choice
