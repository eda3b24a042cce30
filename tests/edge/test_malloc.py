"""The daemon's process keeps glibc from serving megabyte blocks out of its heaps once it has
freed one (edge/malloc.py): each batch is built in such blocks, and pages of the heap stay with
the process after the blocks are freed. Seen through glibc's own count of mapped blocks
(mallinfo2), in a fresh process with and without the setting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edge.malloc import is_glibc

pytestmark = pytest.mark.skipif(not is_glibc(), reason="glibc's allocator only")

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
batch = bytearray(4 * 1024 * 1024)  # a batch built and sent: mapped, then freed
del batch
before = libc.mallinfo2().hblks
json_text = bytearray(512 * 1024)  # the next batch's block
print(libc.mallinfo2().hblks - before)
"""


def mapped_blocks_for_the_next_batch(setting: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, setting], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


def test_a_large_block_is_mapped_however_many_came_before() -> None:
    assert mapped_blocks_for_the_next_batch("fixed") == 1
    # glibc's own behaviour, which the setting is there for: the block comes from the heap
    assert mapped_blocks_for_the_next_batch("default") == 0
