"""The gateway's store: one SQLite file (WAL), append-only logs of readings and events.

Readings and events share one `seq` space (the contract's). Each log has its sync cursor: the
highest seq of that log the cloud has acknowledged (events travel ahead of readings, so the two
advance separately). Nothing is copied into an outbox: a batch is a slice of the logs above
the cursors.

A write is one transaction with `synchronous=FULL`: when `append` returns, the rows survive a
power cut. A fresh store starts its seq at the wall clock in microseconds, so a store that had
to be reset (corrupt file, new SD card) never reuses a seq the cloud has already seen.

`append` also takes the small state that the rows came with (the checks' open alerts and
baselines): state and rows commit together, so a restart finds exactly the state of the last
events it wrote, never an older one that would raise an alert again or clear one twice.

Disk budget (docs/architecture.md): when the file passes the high-water mark the store first deletes
acknowledged rows, oldest first; if that is not enough it downsamples the oldest unacknowledged
instantaneous values (per interval: the minimum and maximum samples kept as read, one more row
carrying the mean, flagged `estimated`) and keeps only the first read of each interval of a
cumulative register — the reads at interval boundaries, so energy per interval stays exact.
Each reduction is itself logged as an event. New rows are always accepted.

One mean row per (meter, quantity, interval), however many passes: an interval is reduced
once, when it is closed — when the store holds a reading STRAGGLE_US past its end (the newest
time read, over all meters, so a silent meter does not hold anything back). A pass reads the
unsent rows above its watermark (`reduced_through_<interval>`, a seq) chunk by chunk, gathers
each interval's rows however many chunks they span, reduces those that have closed, and sets
the watermark below the first row of the intervals still open (re-read next time; never held by
a silent meter or a reading whose time is unknown) and `reduced_until_<interval>` to the time up
to which every interval counts as reduced. A reading that arrives for an interval after it was
reduced (a backfill, a reading re-stamped once the clock synchronised) is kept as read beside
its mean: never a second mean, never changing the first. `estimates` says what a mean row
stands for: how many samples besides the minimum and maximum kept as read in its interval, and
their sum; so a reduction at a coarser interval (which takes in the finer means) is again the
mean of every sample. Rows the cloud has acknowledged are never rewritten. The table is created
when missing: a store of an earlier version opens as it is, and the schema version stays (the
earlier version can still open this one after a rollback).
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import structlog

from shared import QUANTITIES, EventStatus, Quality, Severity

if TYPE_CHECKING:
    from shared import EncodedReadings

log = structlog.get_logger(__name__)

SCHEMA_VERSION = 1
_SCHEMA = [
    """CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE readings (
        seq INTEGER PRIMARY KEY,
        meter_id TEXT NOT NULL,
        quantity TEXT NOT NULL,
        ts_us INTEGER NOT NULL,          -- UTC, microseconds since the epoch
        value REAL NOT NULL,
        quality TEXT NOT NULL,
        mono_us INTEGER                  -- monotonic clock when taken unsynchronised
    )""",
    """CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        ts_us INTEGER NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        severity TEXT NOT NULL,
        meter_id TEXT,
        quantity TEXT,
        message TEXT NOT NULL DEFAULT '',
        details TEXT NOT NULL DEFAULT '{}'
    )""",
    """CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
]
# what an estimated row stands for (module docstring); created if missing, so older stores open
_ESTIMATES_TABLE = """CREATE TABLE IF NOT EXISTS estimates (
    seq INTEGER PRIMARY KEY,             -- an estimated (mean) reading
    samples INTEGER NOT NULL,            -- the samples it stands for besides its interval's
    total REAL NOT NULL                  -- minimum and maximum kept as read, and their sum
)"""
# an interval is reduced once the store holds a reading this much past its end: reads of one
# instant reach the store a little apart (bus by bus, flush by flush)
STRAGGLE_US = 300 * 1_000_000
_OPEN_ROWS_MAX = 4 * 50_000  # rows of intervals still open a pass holds in memory at most
HIGH_WATER = 0.90  # act above this share of the budget ...
LOW_WATER = 0.75  # ... until usage is back under this one
_CHUNK = 50_000
CACHE_KIB = 512  # SQLite's page cache (its default: 2,000 KiB, a daemon's RSS)


def to_us(ts: datetime) -> int:
    delta = ts - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


class ReadingRow(NamedTuple):
    """A reading as the log stores it (the columns of `readings` after `seq`): the daemon's
    intake builds one per sample and `append_rows` hands them to SQLite as they are."""

    meter_id: str
    quantity: str
    ts_us: int  # UTC, microseconds since the epoch
    value: float
    quality: Quality = Quality.OK
    mono_us: int | None = None  # the monotonic clock, when taken with the clock unsynchronised


@dataclass(frozen=True, slots=True)
class NewReading:
    """A reading with its time as a datetime (`append`); `row()` is what the log stores."""

    meter_id: str
    quantity: str
    ts: datetime
    value: float
    quality: Quality = Quality.OK
    mono_us: int | None = None

    def row(self) -> ReadingRow:
        return ReadingRow(
            self.meter_id, self.quantity, to_us(self.ts), self.value, self.quality, self.mono_us
        )


@dataclass(frozen=True, slots=True)
class NewEvent:
    ts: datetime
    kind: str
    status: EventStatus
    severity: Severity
    meter_id: str | None = None
    quantity: str | None = None
    message: str = ""
    details: dict[str, Any] = field(default_factory=dict)


class StoredReading(NamedTuple):
    """A reading as the log holds it; the tuple `shared.encode_readings` writes a batch from."""

    seq: int
    meter_id: str
    quantity: str
    ts_us: int
    value: float
    quality: str


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    ts_us: int
    kind: str
    status: str
    severity: str
    meter_id: str | None
    quantity: str | None
    message: str
    details: dict[str, Any]


class StoreCorrupt(Exception):
    pass


class Store:
    """Open (creating, migrating or replacing a corrupt file) the store at `path`."""

    def __init__(self, path: Path, *, budget_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.budget_bytes = budget_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.reset_reason: str | None = None
        try:
            self._conn = self._open()
        except (sqlite3.DatabaseError, StoreCorrupt) as exc:
            self.reset_reason = str(exc) or type(exc).__name__
            aside = self._move_aside()
            log.error("store corrupt; moved aside, starting a new one", moved_to=str(aside))
            self._conn = self._open()
            self.reset_reason = f"{self.reset_reason}; the old file is at {aside}"
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
        self._last_seq = int(row[0])

    # ------------------------------------------------------------------ opening
    def _open(self) -> sqlite3.Connection:
        fresh = not self.path.exists()
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            if fresh:
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            # the WAL counts against the disk budget: checkpoint it every ~1 MB
            conn.execute("PRAGMA wal_autocheckpoint = 256")
            conn.execute("PRAGMA journal_size_limit = 1048576")
            # the log is appended at its end and read in order: a small cache holds what is hot
            conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            if not fresh:
                result = conn.execute("PRAGMA quick_check").fetchone()[0]
                if result != "ok":
                    raise StoreCorrupt(f"integrity check failed: {result}")
            self._migrate(conn)
            conn.execute(_ESTIMATES_TABLE)
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreCorrupt(f"store schema {version} is newer than this software")
        if version == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        for statement in _SCHEMA:
            conn.execute(statement)
        start = int(time.time() * 1_000_000)
        conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)",
            [
                ("last_seq", str(start)),
                ("acked_readings_seq", str(start)),
                ("acked_events_seq", str(start)),
                ("created_at", datetime.now(UTC).isoformat()),
            ],
        )
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")

    def _move_aside(self) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            source = Path(str(self.path) + suffix)
            if source.exists():
                os.replace(source, Path(str(aside) + suffix))
        return aside

    def close(self) -> None:
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._conn.close()

    # ------------------------------------------------------------------ writing
    @property
    def last_seq(self) -> int:
        return self._last_seq

    def append(
        self,
        readings: Sequence[NewReading] = (),
        events: Sequence[NewEvent] = (),
        state: Mapping[str, Any] | None = None,
    ) -> tuple[int, int]:
        """`append_rows` for readings timed by datetimes."""
        return self.append_rows([r.row() for r in readings], events, state)

    def append_rows(
        self,
        rows: Sequence[ReadingRow] = (),
        events: Sequence[NewEvent] = (),
        state: Mapping[str, Any] | None = None,
    ) -> tuple[int, int]:
        """Write rows durably in one transaction, with `state` (key -> value, as `put_state`)
        in the same one: the state the rows were produced with. Returns the first and last seq
        given: readings first, then events, one after the other. SQLite numbers the readings
        after the first (a rowid without AUTOINCREMENT is the table's largest plus one, and the
        first is given the largest seq of both logs plus one), so a row goes in as it came."""
        first = self._last_seq + 1
        if not rows and not events and not state:
            return first, self._last_seq
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            seq = self._last_seq
            if rows:
                conn.execute("INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?, ?)", (first, *rows[0]))
                conn.executemany(
                    "INSERT INTO readings (meter_id, quantity, ts_us, value, quality, mono_us)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    islice(rows, 1, None),
                )
                seq = conn.execute("SELECT max(seq) FROM readings").fetchone()[0]
            event_rows = []
            for e in events:
                seq += 1
                event_rows.append(
                    (
                        seq,
                        to_us(e.ts),
                        e.kind,
                        e.status.value,
                        e.severity.value,
                        e.meter_id,
                        e.quantity,
                        e.message[:500],
                        json.dumps(e.details, default=str),
                    )
                )
            conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", event_rows)
            if seq != self._last_seq:
                conn.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (str(seq),))
            if state:
                self._upsert_state(state)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        self._last_seq = seq
        return first, seq

    # ------------------------------------------------------------------ state
    def get_state(self, key: str) -> Any:
        row = self._conn.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_state(self, items: dict[str, Any]) -> None:
        """Small durable state (meter statistics, configuration, commands) by key. State that
        goes with rows (the checks' baselines and open alerts) goes in with them: `append`."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._upsert_state(items)
            self._conn.execute("COMMIT")
        except BaseException:
            _rollback(self._conn)
            raise

    def _upsert_state(self, items: Mapping[str, Any]) -> None:
        self._conn.executemany(
            "INSERT INTO state (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [(k, json.dumps(v, default=str)) for k, v in items.items()],
        )

    def delete_state(self, keys: list[str]) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany("DELETE FROM state WHERE key = ?", [(k,) for k in keys])
            self._conn.execute("COMMIT")
        except BaseException:
            _rollback(self._conn)
            raise

    def state_items(self, prefix: str) -> dict[str, Any]:
        rows = self._conn.execute(
            "SELECT key, value FROM state WHERE key >= ? AND key < ?", (prefix, prefix + "\uffff")
        ).fetchall()
        return {k: json.loads(v) for k, v in rows}

    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, items: dict[str, object]) -> None:
        self._conn.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [(k, str(v)) for k, v in items.items()],
        )

    # ------------------------------------------------------------------ sync
    @property
    def cursors(self) -> tuple[int, int]:
        """(readings, events): the highest seq of each log the cloud acknowledged."""
        return int(self._meta("acked_readings_seq") or 0), int(self._meta("acked_events_seq") or 0)

    def pending_events(self, limit: int) -> list[StoredEvent]:
        _, cursor = self.cursors
        rows = self._conn.execute(
            "SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (cursor, limit)
        ).fetchall()
        return [StoredEvent(*row[:8], json.loads(row[8])) for row in rows]

    def pending_readings(self, limit: int) -> Iterator[StoredReading]:
        """Readings above the cursor, in seq order, stopping before the first one whose time is
        still unknown (taken with the clock unsynchronised and not corrected yet). Read one by
        one: iterate in the store's thread."""
        cursor, _ = self.cursors
        rows = self._conn.execute(
            "SELECT seq, meter_id, quantity, ts_us, value, quality FROM readings"
            " WHERE seq > ? ORDER BY seq LIMIT ?",
            (cursor, limit),
        )
        try:
            for row in rows:
                if row[5] == Quality.CLOCK_UNSYNCED.value:
                    return
                yield StoredReading(*row)
        finally:
            rows.close()  # its read transaction ends here, however far it was read

    def pending_batch_readings(self, limit: int) -> EncodedReadings:
        """The pending readings (`pending_readings`) written for a batch, row by row."""
        from shared import encode_readings  # the batch codec: a gateway that syncs loads it

        # closed however the writing ends: a row it refuses must not hold the read transaction
        with contextlib.closing(self.pending_readings(limit)) as rows:
            return encode_readings(rows)

    def acknowledge(self, readings_through: int | None, events_through: int | None) -> None:
        """Advance the cursors (never backwards) once the cloud has acknowledged a batch."""
        readings_cursor, events_cursor = self.cursors
        items: dict[str, object] = {"last_sync_at": datetime.now(UTC).isoformat()}
        if readings_through is not None and readings_through > readings_cursor:
            items["acked_readings_seq"] = readings_through
        if events_through is not None and events_through > events_cursor:
            items["acked_events_seq"] = events_through
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._set_meta(items)
            self._conn.execute("COMMIT")
        except BaseException:
            _rollback(self._conn)
            raise

    def note_sync_error(self, message: str) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        self._set_meta({"last_sync_error": message[:500], "last_sync_error_at": _now_iso()})
        self._conn.execute("COMMIT")

    def backlog(self) -> tuple[int, int, datetime | None]:
        """(unsent readings, unsent events, time of the oldest unsent reading)."""
        readings_cursor, events_cursor = self.cursors
        readings, oldest = self._conn.execute(
            "SELECT count(*), min(ts_us) FROM readings WHERE seq > ?", (readings_cursor,)
        ).fetchone()
        events = self._conn.execute(
            "SELECT count(*) FROM events WHERE seq > ?", (events_cursor,)
        ).fetchone()[0]
        return readings, events, from_us(oldest) if oldest is not None else None

    def sync_info(self) -> dict[str, str | None]:
        return {k: self._meta(k) for k in ("last_sync_at", "last_sync_error", "last_sync_error_at")}

    # ------------------------------------------------------------------ clock
    def correct_unsynced(self, wall_now_us: int, mono_now_us: int) -> int:
        """Re-stamp readings taken while the clock was unknown, from their monotonic reading:
        ts = now - (mono_now - mono). Only rows of this boot carry a usable mono value."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            cursor = self._conn.execute(
                "UPDATE readings SET ts_us = ? - (? - mono_us), quality = ?"
                " WHERE quality = ? AND mono_us IS NOT NULL AND mono_us <= ?",
                (
                    wall_now_us,
                    mono_now_us,
                    Quality.OK.value,
                    Quality.CLOCK_UNSYNCED.value,
                    mono_now_us,
                ),
            )
            corrected = cursor.rowcount
            # rows of an earlier boot cannot be placed in time: mark them suspect, keep them
            self._conn.execute(
                "UPDATE readings SET quality = ? WHERE quality = ?",
                (Quality.SUSPECT.value, Quality.CLOCK_UNSYNCED.value),
            )
            self._conn.execute("COMMIT")
        except BaseException:
            _rollback(self._conn)
            raise
        return corrected

    def forget_monotonic(self) -> None:
        """At start: monotonic values of an earlier boot mean nothing any more."""
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.execute(
            "UPDATE readings SET mono_us = NULL WHERE mono_us IS NOT NULL AND quality = ?",
            (Quality.CLOCK_UNSYNCED.value,),
        )
        self._conn.execute("COMMIT")

    # ------------------------------------------------------------------ disk budget
    def size_bytes(self) -> int:
        page_size = self._conn.execute("PRAGMA page_size").fetchone()[0]
        pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
        wal = Path(str(self.path) + "-wal")
        return page_size * pages + (wal.stat().st_size if wal.exists() else 0)

    def enforce_budget(self, interval_s: int = 900) -> list[NewEvent]:
        """Bring the file under the low-water mark if it passed the high-water mark. Returns the
        events describing what was done (the caller appends them)."""
        if self.budget_bytes is None or self.size_bytes() <= self.budget_bytes * HIGH_WATER:
            return []
        target = self.budget_bytes * LOW_WATER
        events = []
        self._forget_acknowledged_reductions()
        pruned = self._prune_acknowledged(target)
        if pruned:
            events.append(
                NewEvent(
                    ts=datetime.now(UTC),
                    kind="disk_budget_pruned",
                    status=EventStatus.NOTICE,
                    severity=Severity.INFO,
                    message=f"{pruned} acknowledged rows deleted to stay within the disk budget",
                    details={"rows": pruned, "budget_bytes": self.budget_bytes},
                )
            )
        level = 0
        while self._used_bytes() > target and level < 6:
            reduced, span = self._downsample(interval_s * 4**level, interval_s, target)
            if reduced:
                events.append(
                    NewEvent(
                        ts=datetime.now(UTC),
                        kind="disk_budget_downsampled",
                        status=EventStatus.NOTICE,
                        severity=Severity.MEDIUM,
                        message=(
                            f"{reduced} unsent readings reduced to min/mean/max per"
                            f" {interval_s * 4**level // 60} min to stay within the disk budget"
                        ),
                        details={
                            "rows_removed": reduced,
                            "interval_s": interval_s * 4**level,
                            "from": span[0],
                            "to": span[1],
                        },
                    )
                )
            else:
                level += 1
        self._reclaim()
        return events

    def _used_bytes(self) -> int:
        page_size = self._conn.execute("PRAGMA page_size").fetchone()[0]
        pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
        free = self._conn.execute("PRAGMA freelist_count").fetchone()[0]
        return page_size * (pages - free)

    def _reclaim(self) -> None:
        self._conn.execute("PRAGMA incremental_vacuum")
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _prune_acknowledged(self, target: float) -> int:
        readings_cursor, events_cursor = self.cursors
        removed = 0
        while self._used_bytes() > target:
            self._conn.execute("BEGIN IMMEDIATE")
            cursor = self._conn.execute(
                "DELETE FROM readings WHERE seq IN (SELECT seq FROM readings WHERE seq <= ?"
                " ORDER BY seq LIMIT ?)",
                (readings_cursor, _CHUNK),
            )
            deleted = cursor.rowcount
            deleted += self._conn.execute(
                "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE seq <= ?"
                " ORDER BY seq LIMIT ?)",
                (events_cursor, _CHUNK // 10),
            ).rowcount
            self._conn.execute("COMMIT")
            removed += deleted
            if not deleted:
                break
        return removed

    def _downsample(
        self, interval_s: int, register_interval_s: int, target: float
    ) -> tuple[int, tuple[str, str]]:
        """Reduce the closed intervals of the unsent readings above this interval's watermark,
        chunk by chunk, until under target (module docstring). Cumulative registers keep their
        first read of each `register_interval_s` whatever the interval (15 minutes: a boundary of
        every local day, since time zones differ from UTC by whole quarter hours). Returns (rows
        removed, time span)."""
        through_key, until_key = f"reduced_through_{interval_s}", f"reduced_until_{interval_s}"
        start = max(int(self._meta(through_key) or 0), self.cursors[0])
        closed_until = int(self._meta(until_key) or 0)  # intervals ending (+straggle) before
        # a meter clock years ahead must not close every interval at once: the frontier takes
        # no time more than a week past the gateway's clock
        plausible = int(time.time() * 1_000_000) + 7 * 86_400_000_000
        frontier = closed_until
        open_: dict[_Bucket, list[tuple]] = {}  # in seq order, each
        size_us: dict[str, int] = {}  # quantity -> the length of its intervals
        unsynced = Quality.CLOCK_UNSYNCED.value
        removed = 0
        first_ts = last_ts = None
        while self._used_bytes() > target:
            rows = self._conn.execute(
                "SELECT seq, meter_id, quantity, ts_us, value, quality FROM readings"
                " WHERE seq > ? ORDER BY seq LIMIT ?",
                (start, _CHUNK),
            ).fetchall()
            if not rows:
                break
            end_seq = rows[-1][0]
            for row in rows:
                if row[5] == unsynced:
                    continue  # its time is not known yet: kept as read
                size = size_us.get(row[2])
                if size is None:
                    cumulative = QUANTITIES[row[2]].is_cumulative
                    size = (register_interval_s if cumulative else interval_s) * 1_000_000
                    size_us[row[2]] = size
                end_us = row[3] // size * size + size
                # closed before this row came (by the readings before it, whatever the chunks)
                late = end_us + STRAGGLE_US <= max(closed_until, frontier)
                if row[3] <= plausible and row[3] > frontier:
                    frontier = row[3]
                if not late:
                    open_.setdefault(_Bucket(row[1], row[2], end_us), []).append(row)
            cutoff = max(frontier, _cutoff_for_memory(open_))
            closing = [b for b in open_ if b.end_us + STRAGGLE_US <= cutoff]
            closed_until = max(closed_until, cutoff)
            deletes, updates, estimates = self._reduce_closed([(b, open_.pop(b)) for b in closing])
            held = min((members[0][0] for members in open_.values()), default=None)
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "DELETE FROM readings WHERE seq = ?", [(seq,) for seq in deletes]
                )
                self._conn.executemany(
                    "DELETE FROM estimates WHERE seq = ?", [(seq,) for seq in deletes]
                )
                self._conn.executemany(
                    "UPDATE readings SET value = ?, quality = ? WHERE seq = ?", updates
                )
                self._conn.executemany(
                    "INSERT INTO estimates (seq, samples, total) VALUES (?, ?, ?)"
                    " ON CONFLICT (seq) DO UPDATE SET samples = excluded.samples,"
                    " total = excluded.total",
                    estimates,
                )
                self._set_meta(
                    {
                        through_key: held - 1 if held is not None else end_seq,
                        until_key: closed_until,
                    }
                )
                self._conn.execute("COMMIT")
            except BaseException:
                _rollback(self._conn)
                raise
            removed += len(deletes)
            touched = [r[3] for r in rows]
            first_ts = first_ts or from_us(min(touched)).isoformat()
            last_ts = from_us(max(touched)).isoformat()
            start = end_seq
            if len(rows) < _CHUNK:
                break
        return removed, (first_ts or "", last_ts or "")

    def _reduce_closed(
        self, groups: list[tuple[_Bucket, list[tuple]]]
    ) -> tuple[list[int], list[tuple[float, str, int]], list[tuple[int, int, float]]]:
        """(rows to delete, mean rows to write, what each mean stands for) for closed intervals."""
        known = self._estimates(
            r[0] for _, members in groups for r in members if r[5] == Quality.ESTIMATED.value
        )
        deletes: list[int] = []
        updates: list[tuple[float, str, int]] = []
        estimates: list[tuple[int, int, float]] = []
        for bucket, members in groups:
            if QUANTITIES[bucket.quantity].is_cumulative:
                first = min(members, key=lambda r: (r[3], r[0]))
                deletes += [r[0] for r in members if r is not first]
                continue
            reduced = _reduce(members, known)
            if reduced is None:
                continue
            keep, mean_row, mean, samples, total = reduced
            deletes += [r[0] for r in members if r[0] not in keep]
            updates.append((mean, Quality.ESTIMATED.value, mean_row))
            estimates.append((mean_row, samples, total))
        return deletes, updates, estimates

    def _estimates(self, seqs: Iterable[int]) -> dict[int, tuple[int, float]]:
        """What each estimated row stands for: (samples, their sum)."""
        rows = self._conn.execute(
            "SELECT seq, samples, total FROM estimates"
            " WHERE seq IN (SELECT value FROM json_each(?))",
            (json.dumps(list(seqs)),),
        ).fetchall()
        return {seq: (samples, total) for seq, samples, total in rows}

    def _forget_acknowledged_reductions(self) -> None:
        """What earlier reductions kept of rows the cloud has now: never merged again."""
        cursor = self.cursors[0]
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute("DELETE FROM estimates WHERE seq <= ?", (cursor,))
            self._conn.execute("COMMIT")
        except BaseException:
            _rollback(self._conn)
            raise

    # ------------------------------------------------------------------ reading back
    def latest_times(self) -> dict[str, dict[str, int]]:
        """meter -> quantity -> the newest reading time: a repeated or late sample (a retained
        MQTT message seen again, say) must not enter the log twice."""
        latest: dict[str, dict[str, int]] = {}
        for meter, quantity, ts in self._conn.execute(
            "SELECT meter_id, quantity, max(ts_us) FROM readings GROUP BY meter_id, quantity"
        ):
            latest.setdefault(meter, {})[quantity] = ts
        return latest

    def reading_times(self, meter_id: str, start_us: int, end_us: int) -> set[tuple[str, int]]:
        """(quantity, ts_us) of a meter's readings still held between two instants (inclusive):
        a backfill asked for by hand skips what is already here. Rows pruned after the cloud
        acknowledged them are not seen; sent again, the cloud keeps its one copy. There is no
        index on time (the log is appended and read by seq), so this scans: for a rare command
        that costs less than an index on every write."""
        rows = self._conn.execute(
            "SELECT quantity, ts_us FROM readings WHERE meter_id = ? AND ts_us BETWEEN ? AND ?",
            (meter_id, start_us, end_us),
        ).fetchall()
        return {(quantity, ts) for quantity, ts in rows}

    def readings_since(self, seq: int = 0, limit: int = 1_000_000) -> list[StoredReading]:
        rows = self._conn.execute(
            "SELECT seq, meter_id, quantity, ts_us, value, quality FROM readings"
            " WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        ).fetchall()
        return [StoredReading(*row) for row in rows]

    def all_readings(self) -> Iterable[StoredReading]:
        for row in self._conn.execute(
            "SELECT seq, meter_id, quantity, ts_us, value, quality FROM readings ORDER BY seq"
        ):
            yield StoredReading(*row)

    def recent_events(self, limit: int = 50) -> list[StoredEvent]:
        rows = self._conn.execute(
            "SELECT * FROM events ORDER BY seq DESC LIMIT ?", (limit,)
        ).fetchall()
        return [StoredEvent(*row[:8], json.loads(row[8])) for row in rows]


class _Bucket(NamedTuple):
    """One interval of one series, by its end."""

    meter_id: str
    quantity: str
    end_us: int


def _cutoff_for_memory(open_: dict[_Bucket, list[tuple]]) -> int:
    """A time to close intervals up to so that the rows of those left open fit in memory (0 when
    they do): the oldest open intervals close early, and what reaches them later is kept as
    read."""
    held = sum(len(members) for members in open_.values())
    if held <= _OPEN_ROWS_MAX:
        return 0
    for bucket in sorted(open_, key=lambda b: b.end_us):
        held -= len(open_[bucket])
        if held <= _OPEN_ROWS_MAX // 2:
            return bucket.end_us + STRAGGLE_US
    return 0


def _reduce(
    members: list[tuple], known: dict[int, tuple[int, float]]
) -> tuple[list[int], int, float, int, float] | None:
    """An interval's rows reduced: (seqs kept, the mean row's seq, the mean, and the samples
    the mean row stands for besides the minimum and maximum, with their sum), or None if there
    is nothing to reduce. The minimum and maximum are samples as read (never an earlier mean);
    the mean row is the earliest of the others; a row read is one sample, an earlier mean
    stands for what `estimates` says (one sample of its value if it says nothing)."""
    real = [r for r in members if r[5] != Quality.ESTIMATED.value]
    if len(real) < 2 or len(members) <= 3:
        return None
    low = min(real, key=lambda r: (r[4], r[0]))
    high = max((r for r in real if r is not low), key=lambda r: (r[4], -r[0]))
    rest = [r for r in members if r is not low and r is not high]
    samples = total = 0.0
    for r in rest:
        n, s = known.get(r[0], (1, r[4])) if r[5] == Quality.ESTIMATED.value else (1, r[4])
        samples += n
        total += s
    mean = (total + low[4] + high[4]) / (samples + 2)
    mean_row = min(rest, key=lambda r: (r[3], r[0]))
    return [low[0], high[0], mean_row[0]], mean_row[0], mean, int(samples), total


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open: SQLite ends one itself on some errors (a full
    disk), and a failing ROLLBACK must not hide the error that matters."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()
