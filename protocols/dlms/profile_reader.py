"""Reading profiles over an open COSEM session: capture objects once, scaler-units once per
register, buffers by range or by entry; the block load profile turned back into registers, the
event logs into events, the name plate into text.

What a meter's answers mean is decided in `profiles.py` (pure); this module only asks.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from dlms_cosem import enumerations as enums

from shared import Sample

from ..errors import FrameError, MeterException
from .client import CosemSession
from .cosem import DATA, PROFILE_GENERIC, format_ln
from .is15959 import (
    BLOCK_LOAD_PROFILE,
    DAILY_LOAD_PROFILE,
    EVENT_LOGS,
    NAME_PLATE,
    Log,
)
from .profiles import (
    FAR_FUTURE,
    CaptureColumn,
    EntrySelection,
    MeterEvent,
    ProfileTable,
    RangeSelection,
    decode_columns,
    decode_events,
    decode_profile,
    registers_from_blocks,
)

Selection = RangeSelection | EntrySelection


class ProfileReader:
    """Per meter: what its profiles' columns are and its registers' scaler-units, kept."""

    def __init__(self, meter_id: str) -> None:
        self.meter_id = meter_id
        self._columns: dict[bytes, list[CaptureColumn]] = {}
        self._periods: dict[bytes, int] = {}
        self._units: dict[bytes, tuple[int, int]] = {}
        self.absent_logs: set[Log] = set()  # event logs the meter does not have: not asked again

    async def columns(self, session: CosemSession, ln: bytes) -> list[CaptureColumn]:
        if ln not in self._columns:
            raw = await session.get(PROFILE_GENERIC, ln, 3)
            self._columns[ln] = decode_columns(raw, self.meter_id)
        return self._columns[ln]

    async def period(self, session: CosemSession, ln: bytes) -> timedelta:
        """The capture period (attribute 4), in seconds; 0 for a profile captured on events."""
        if ln not in self._periods:
            raw = await session.get(PROFILE_GENERIC, ln, 4)
            if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
                raise FrameError(f"{format_ln(ln)}: capture period is not a count of seconds")
            self._periods[ln] = raw
        return timedelta(seconds=self._periods[ln])

    async def _units_of(self, session: CosemSession, columns: list[CaptureColumn]) -> None:
        for column in columns:
            if column.is_register_value and column.ln not in self._units:
                value = await session.get(column.class_id, column.ln, 3)
                if not (isinstance(value, list) and len(value) == 2):
                    raise FrameError(
                        f"{column.name}: scaler_unit is not a 2-element structure",
                        meter=self.meter_id,
                    )
                scaler, unit = value
                if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                    raise FrameError(f"{column.name}: scaler_unit is not two integers")
                self._units[column.ln] = (scaler, unit)

    async def read(
        self, session: CosemSession, ln: bytes, selection: Selection | None = None
    ) -> ProfileTable:
        """A profile's buffer, all of it or what `selection` picks, decoded by its columns."""
        columns = await self.columns(session, ln)
        await self._units_of(session, columns)
        picked = columns
        if isinstance(selection, RangeSelection) and selection.columns:
            picked = list(selection.columns)
        elif isinstance(selection, EntrySelection):
            last = selection.last_column or len(columns)
            picked = columns[selection.first_column - 1 : last]
        buffer = await session.get(PROFILE_GENERIC, ln, 2, selection)
        return decode_profile(ln, picked, buffer, self._units, self.meter_id)

    async def load_profile(
        self, session: CosemSession, start: datetime, end: datetime
    ) -> list[Sample]:
        """Registers from `start` to `end` (inclusive) out of the block load profile: read
        directly where its columns are registers (C.8.E), else rebuilt from its block energy
        (C.29.E) on the daily profile's register at the last midnight before `start` — or, when
        the meter keeps none that early, back from the first midnight after it."""
        columns = await self.columns(session, BLOCK_LOAD_PROFILE)
        if not any(c.block_of for c in columns):
            table = await self.read(session, BLOCK_LOAD_PROFILE, RangeSelection(start, end))
            return table.samples(self.meter_id)
        day = timedelta(days=1)
        daily = await self.read(session, DAILY_LOAD_PROFILE, RangeSelection(start - day, end + day))
        midnights = daily.times()
        before = [ts for ts in midnights if ts <= start]
        after = [ts for ts in midnights if ts > start]
        if before:  # forwards from the midnight before
            first, last = max(before), end
        elif after:  # none kept that early: back from the one after, which may follow `end`
            first, last = start, max(end, min(after))
        else:
            return []  # no register kept to add the blocks to
        period = await self.period(session, BLOCK_LOAD_PROFILE)
        blocks = await self.read(session, BLOCK_LOAD_PROFILE, RangeSelection(first, last))
        samples = registers_from_blocks(blocks, daily, period, self.meter_id)
        return [s for s in samples if start <= s.ts <= end]

    async def events(
        self, session: CosemSession, since: dict[Log, datetime | None]
    ) -> list[MeterEvent]:
        """Each log's entries from `since[log]` on (inclusive; None or absent: all it keeps)."""
        found = []
        for log, ln in EVENT_LOGS.items():
            if log in self.absent_logs:
                continue
            start = since.get(log)
            try:
                selection = RangeSelection(start, FAR_FUTURE) if start is not None else None
                table = await self.read(session, ln, selection)
            except MeterException as exc:
                if exc.code in _ABSENT:
                    self.absent_logs.add(log)  # a meter without this log (many have no control log)
                    continue
                raise
            found.extend(decode_events(table))
        return found

    async def name_plate(self, session: CosemSession) -> dict[str, str]:
        """The name plate details, as text (absent ones left out)."""
        found = {}
        for ln, name in NAME_PLATE.items():
            try:
                value = await session.get(DATA, ln, 2)
            except MeterException as exc:
                if exc.code in _ABSENT:
                    continue
                raise
            if isinstance(value, bytes | bytearray):
                found[name] = bytes(value).decode("ascii", "replace")
            elif isinstance(value, int | str):
                found[name] = str(value)
            else:
                raise FrameError(f"name plate {name} is {type(value).__name__}")
        return found


_ABSENT = {
    int(enums.DataAccessResult.OBJECT_UNDEFINED),
    int(enums.DataAccessResult.OBJECT_UNAVAILABLE),
    int(enums.DataAccessResult.OBJECT_CLASS_INCONSISTENT),
}
