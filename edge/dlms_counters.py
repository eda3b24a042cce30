"""DLMS invocation counters on the gateway's disk: one small file per meter, written durably.

A ciphered APDU's IV is the sender's system title and its invocation counter; sending two
APDUs under one key with the same counter breaks AES-GCM, and a meter refuses a counter it has
seen. So the reader reserves counters in blocks and each block is on disk before its first
counter goes out (`protocols.dlms.security.InvocationCounters`): the file is written to a
temporary name, flushed with fsync, renamed over the old one, and the folder fsynced, so a kill
-9 or a power cut leaves either the old or the new file whole, never a torn one, and the next
run starts above every counter the last run may have sent.

    <data_dir>/dlms-counters/<meter_id>.json
    {"next_client": 1280, "meter_title": "4d4d4d0000bc614e", "meter_counter": 733}
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from protocols.dlms.security import CounterState
from shared import GridgateError


class CounterFileError(GridgateError):
    """A counter file cannot be read or written; the message names it."""


class CounterFile:
    """The `CounterLedger` of one meter."""

    def __init__(self, folder: Path, meter_id: str) -> None:
        self.path = folder / f"{meter_id}.json"

    def load(self) -> CounterState:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return CounterState()
        except (OSError, ValueError) as exc:
            # never guess: a counter read wrong could reuse an IV; a person decides
            raise CounterFileError(
                f"{self.path}: unreadable invocation counters ({exc}); if the meter's keys"
                " are new, delete the file, else restore it (counters must never go back)"
            ) from exc
        try:
            title = data.get("meter_title")
            return CounterState(
                next_client=int(data["next_client"]),
                meter_title=bytes.fromhex(title) if title else None,
                meter_counter=int(data.get("meter_counter", -1)),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CounterFileError(f"{self.path}: invocation counters malformed ({exc})") from exc

    def save(self, state: CounterState) -> None:
        folder = self.path.parent
        folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps(
            {
                "next_client": state.next_client,
                "meter_title": state.meter_title.hex() if state.meter_title else None,
                "meter_counter": state.meter_counter,
            }
        )
        temporary = self.path.with_suffix(".json.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, self.path)
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a power cut
        finally:
            os.close(directory)
