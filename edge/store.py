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

One mean row per (meter, quantity, interval), however many passes: a pass reads the rows
above its watermark (`reduced_through_<interval>`, a seq) a chunk at a time, and merges each
interval it meets with what earlier passes kept of it (`reduced_buckets`: the rows kept per
interval, looked up by key, so a chunk boundary or a later pass inside an interval changes the
one mean row instead of adding a second). `sample_counts` says how many samples a kept row's
value stands for in the mean: the mean row all of them, the minimum and maximum beside it none
(they are counted in the mean), any other row one; so a mean merged again, or reduced again at
a coarser interval, is still the mean of every sample the interval had. A pass at a finer
interval inside one already reduced at a coarser one merges into the coarser. Rows the cloud
has acknowledged are never rewritten (a merge takes only unsent rows), and the two tables
forget acknowledged rows. They are created when missing, so a store of an earlier version opens
as it is (and that version can still open this one: the schema version does not change).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import structlog

from shared import QUANTITIES, EventStatus, Quality, Severity

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
# what the disk budget keeps of its reductions (see the module's docstring); created if missing
_REDUCTION_TABLES = [
    """CREATE TABLE IF NOT EXISTS reduced_buckets (
        meter_id TEXT NOT NULL,
        quantity TEXT NOT NULL,
        interval_s INTEGER NOT NULL,
        bucket INTEGER NOT NULL,         -- ts_us // (interval_s * 1e6)
        seqs TEXT NOT NULL,              -- JSON list: the rows a reduction kept of the interval
        last_seq INTEGER NOT NULL,       -- the highest of them: forgotten once acknowledged
        PRIMARY KEY (meter_id, quantity, interval_s, bucket)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS sample_counts (
        seq INTEGER PRIMARY KEY,         -- a reading kept by a reduction
        samples INTEGER NOT NULL         -- samples its value stands for in its interval's mean
    )""",
]
HIGH_WATER = 0.90  # act above this share of the budget ...
LOW_WATER = 0.75  # ... until usage is back under this one
_CHUNK = 50_000


def to_us(ts: datetime) -> int:
    delta = ts - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


@dataclass(frozen=True, slots=True)
class NewReading:
    meter_id: str
    quantity: str
    ts: datetime
    value: float
    quality: Quality = Quality.OK
    mono_us: int | None = None


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


@dataclass(frozen=True, slots=True)
class StoredReading:
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
            if not fresh:
                result = conn.execute("PRAGMA quick_check").fetchone()[0]
                if result != "ok":
                    raise StoreCorrupt(f"integrity check failed: {result}")
            self._migrate(conn)
            for statement in _REDUCTION_TABLES:
                conn.execute(statement)
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
        """Write rows durably in one transaction, with `state` (key -> value, as `put_state`)
        in the same one: the state the rows were produced with. Returns the first and last seq
        given."""
        first = self._last_seq + 1
        seq = self._last_seq
        reading_rows = []
        for r in readings:
            seq += 1
            reading_rows.append(
                (seq, r.meter_id, r.quantity, to_us(r.ts), r.value, r.quality.value, r.mono_us)
            )
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
        if seq == self._last_seq and not state:
            return first, seq
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?, ?)", reading_rows)
            conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", event_rows)
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

    def pending_readings(self, limit: int) -> list[StoredReading]:
        """Readings above the cursor, in seq order, stopping before the first one whose time is
        still unknown (taken with the clock unsynchronised and not corrected yet)."""
        cursor, _ = self.cursors
        rows = self._conn.execute(
            "SELECT seq, meter_id, quantity, ts_us, value, quality FROM readings"
            " WHERE seq > ? ORDER BY seq LIMIT ?",
            (cursor, limit),
        ).fetchall()
        out = []
        for row in rows:
            if row[5] == Quality.CLOCK_UNSYNCED.value:
                break
            out.append(StoredReading(*row))
        return out

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
        """Reduce the unsent readings above this interval's watermark, chunk by chunk, until
        under target, each interval merged with what earlier passes kept of it (module
        docstring). Cumulative registers keep their first read of each `register_interval_s`
        whatever the interval (15 minutes: a boundary of every local day, since time zones
        differ from UTC by whole quarter hours). Returns (rows removed, time span)."""
        key = f"reduced_through_{interval_s}"
        cursor = self.cursors[0]
        start = max(int(self._meta(key) or 0), cursor)
        coarser = sorted(
            (
                i
                for (i,) in self._conn.execute("SELECT DISTINCT interval_s FROM reduced_buckets")
                if i > interval_s and i % interval_s == 0
            ),
            reverse=True,
        )
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
            groups: dict[_Bucket, dict[int, tuple]] = {}
            entries: dict[_Bucket, list[int] | None] = {}
            for row in rows:
                if row[5] == Quality.CLOCK_UNSYNCED.value:
                    continue  # its time is not known yet: kept as read
                if QUANTITIES[row[2]].is_cumulative:
                    bucket = self._bucket(row, register_interval_s, (), entries)
                else:
                    bucket = self._bucket(row, interval_s, coarser, entries)
                groups.setdefault(bucket, {})[row[0]] = row
            # the rows earlier passes kept of these intervals (unsent ones: the cloud's stay)
            earlier = {
                seq: bucket
                for bucket in groups
                for seq in entries[bucket] or ()
                if seq > cursor and seq not in groups[bucket]
            }
            for row in self._rows_by_seq(earlier):
                groups[earlier[row[0]]][row[0]] = row
            counts = self._sample_counts(seq for members in groups.values() for seq in members)
            deletes: list[int] = []
            updates: list[tuple[float, str, int]] = []
            weights: list[tuple[int, int]] = []
            kept: list[tuple[str, str, int, int, str, int]] = []
            for bucket, members in groups.items():
                if QUANTITIES[bucket.quantity].is_cumulative:
                    first = min(members.values(), key=lambda r: (r[3], r[0]))
                    keep = [first[0]]
                    deletes += [seq for seq in members if seq != first[0]]
                elif (reduced := _reduce(list(members.values()), counts)) is None:
                    keep = sorted(members)
                else:
                    keep, mean_row, mean, samples = reduced
                    deletes += [seq for seq in members if seq not in keep]
                    updates.append((mean, Quality.ESTIMATED.value, mean_row))
                    weights += [(seq, samples if seq == mean_row else 0) for seq in keep]
                if sorted(keep) != sorted(entries[bucket] or ()):
                    kept.append(
                        (*bucket, json.dumps(sorted(keep)), max(keep))  # type: ignore[arg-type]
                    )
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "DELETE FROM readings WHERE seq = ?", [(seq,) for seq in deletes]
                )
                self._conn.executemany(
                    "DELETE FROM sample_counts WHERE seq = ?", [(seq,) for seq in deletes]
                )
                self._conn.executemany(
                    "UPDATE readings SET value = ?, quality = ? WHERE seq = ?", updates
                )
                self._conn.executemany(
                    "INSERT INTO sample_counts (seq, samples) VALUES (?, ?)"
                    " ON CONFLICT (seq) DO UPDATE SET samples = excluded.samples",
                    weights,
                )
                self._conn.executemany(
                    "INSERT INTO reduced_buckets VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (meter_id, quantity, interval_s, bucket)"
                    " DO UPDATE SET seqs = excluded.seqs, last_seq = excluded.last_seq",
                    kept,
                )
                self._set_meta({key: end_seq})
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

    def _bucket(
        self,
        row: tuple,
        interval_s: int,
        coarser: Sequence[int],
        entries: dict[_Bucket, list[int] | None],
    ) -> _Bucket:
        """The interval a row is reduced in: its own at `interval_s`, unless a coarser pass
        already reduced the one around it (then the row merges into that one's mean). `entries`
        caches what earlier passes kept of each interval looked up."""
        meter_id, quantity, ts_us = row[1], row[2], row[3]
        for size in (*coarser, interval_s):
            bucket = _Bucket(meter_id, quantity, size, ts_us // (size * 1_000_000))
            if bucket not in entries:
                found = self._conn.execute(
                    "SELECT seqs FROM reduced_buckets WHERE meter_id = ? AND quantity = ?"
                    " AND interval_s = ? AND bucket = ?",
                    bucket,
                ).fetchone()
                entries[bucket] = json.loads(found[0]) if found else None
            if entries[bucket] is not None or size == interval_s:
                return bucket
        raise AssertionError("unreachable: the row's own interval comes last")

    def _rows_by_seq(self, seqs: Iterable[int]) -> list[tuple]:
        return self._conn.execute(
            "SELECT seq, meter_id, quantity, ts_us, value, quality FROM readings"
            " WHERE seq IN (SELECT value FROM json_each(?))",
            (json.dumps(list(seqs)),),
        ).fetchall()

    def _sample_counts(self, seqs: Iterable[int]) -> dict[int, int]:
        """How many samples each row stands for, of those a reduction kept (others: one)."""
        return dict(
            self._conn.execute(
                "SELECT seq, samples FROM sample_counts"
                " WHERE seq IN (SELECT value FROM json_each(?))",
                (json.dumps(list(seqs)),),
            ).fetchall()
        )

    def _forget_acknowledged_reductions(self) -> None:
        """What earlier reductions kept of rows the cloud has now: never merged again."""
        cursor = self.cursors[0]
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute("DELETE FROM sample_counts WHERE seq <= ?", (cursor,))
            self._conn.execute("DELETE FROM reduced_buckets WHERE last_seq <= ?", (cursor,))
            self._conn.execute("COMMIT")
        except BaseException:
            _rollback(self._conn)
            raise

    # ------------------------------------------------------------------ reading back
    def latest_times(self) -> dict[tuple[str, str], int]:
        """The newest reading time of every (meter, quantity): a repeated or late sample (a
        retained MQTT message seen again, say) must not enter the log twice."""
        rows = self._conn.execute(
            "SELECT meter_id, quantity, max(ts_us) FROM readings GROUP BY meter_id, quantity"
        ).fetchall()
        return {(m, q): ts for m, q, ts in rows}

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
    """One interval of one series, as `reduced_buckets` keys it."""

    meter_id: str
    quantity: str
    interval_s: int
    bucket: int


def _reduce(
    members: list[tuple], counts: dict[int, int]
) -> tuple[list[int], int, float, int] | None:
    """An interval's rows reduced: (seqs kept, the mean row's seq, the mean, how many samples it
    stands for), or None if they cannot be. The minimum and maximum are samples as read (never an
    earlier mean); the mean row is the earliest of the others, its value the mean of every
    sample, each row weighted by the samples it stands for."""
    real = [r for r in members if r[5] != Quality.ESTIMATED.value]
    if len(real) < 2 or len(members) <= 3:
        return None
    low = min(real, key=lambda r: (r[4], r[0]))
    high = max((r for r in real if r is not low), key=lambda r: (r[4], -r[0]))
    rest = [r for r in members if r is not low and r is not high]
    samples = sum(counts.get(r[0], 1) for r in members)
    total = sum(r[4] * counts.get(r[0], 1) for r in members)
    mean_row = min(rest, key=lambda r: (r[3], r[0]))
    return [low[0], high[0], mean_row[0]], mean_row[0], total / samples, samples


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is still open: SQLite ends one itself on some errors (a full
    disk), and a failing ROLLBACK must not hide the error that matters."""
    if conn.in_transaction:
        conn.execute("ROLLBACK")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()
