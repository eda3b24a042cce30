"""Retention: what each board keeps, for how long, and the job that removes the rest.

Per board, field by field: what the board set, else what its state set as the default for its
boards, else the service's defaults — raw readings 400 days, daily aggregates ten years,
resolved alerts two years, reports one year, the audit log seven years. Before raw readings go,
their daily aggregates are made (energy per day from register deltas; min/avg/max otherwise), so
charts and reports of old periods still work.

Register reads a bill was computed from are kept as long as the bill is (bills are kept): for
every invoice, the last read at or before each boundary of its period and the first at or after,
of every meter of the consumer. A month's readings partition is dropped whole when every board
with rows in it is past its cutoff and none of its rows is kept; otherwise rows are deleted.
The audit log, shared by all boards, keeps the longest of the boards' audit periods. Every run
reports what it removed and is itself audited.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import structlog
from psycopg import AsyncConnection, errors, sql

from ..access import Principal
from ..reports.storage import ReportStorage
from . import audit
from .scoped import BOARDS, STATES, actor, get_row

log = structlog.get_logger(__name__)
DEFAULTS = {
    "raw_readings_days": 400,
    "aggregates_days": 3650,
    "alerts_days": 730,
    "reports_days": 365,
    "audit_days": 2555,
}


_EFFECTIVE = sql.SQL(", ").join(
    sql.SQL(
        "coalesce(p.{0}, d.{0}, {1}) AS {0}, CASE WHEN p.{0} IS NOT NULL THEN 'board'"
        " WHEN d.{0} IS NOT NULL THEN 'state' ELSE 'default' END AS {2}"
    ).format(sql.Identifier(field), sql.Literal(days), sql.Identifier(f"{field}_from"))
    for field, days in DEFAULTS.items()
)
_BOARD_POLICIES = sql.SQL(
    "SELECT b.id AS board_id, b.time_zone, {} FROM boards b"
    " LEFT JOIN retention_policies p ON p.board_id = b.id"
    " LEFT JOIN state_retention_defaults d ON d.state_id = b.state_id"
).format(_EFFECTIVE)


async def policy(conn: AsyncConnection, principal: Principal, board_id: int) -> dict[str, Any]:
    """The board's policy in force, and for each field where it comes from (`<field>_from`:
    board, state or default)."""
    await get_row(conn, principal, BOARDS, board_id)
    cursor = await conn.execute(_BOARD_POLICIES + sql.SQL(" WHERE b.id = %s"), (board_id,))
    row = await cursor.fetchone()
    row.pop("time_zone")
    return row


async def set_policy(
    conn: AsyncConnection, principal: Principal, board_id: int, changes: dict[str, int | None]
) -> dict[str, Any]:
    """Set the board's own values (None: inherit its state's default again)."""
    async with conn.transaction():
        before = await policy(conn, principal, board_id)
        cursor = await conn.execute(
            "SELECT * FROM retention_policies WHERE board_id = %s FOR UPDATE", (board_id,)
        )
        own = await cursor.fetchone() or {}
        values = {k: changes.get(k, own.get(k)) for k in DEFAULTS}
        await conn.execute(
            "INSERT INTO retention_policies (board_id, raw_readings_days, aggregates_days,"
            " alerts_days, reports_days, audit_days) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (board_id) DO UPDATE SET raw_readings_days = excluded.raw_readings_days,"
            " aggregates_days = excluded.aggregates_days, alerts_days = excluded.alerts_days,"
            " reports_days = excluded.reports_days, audit_days = excluded.audit_days,"
            " updated_at = now()",
            (board_id, *values.values()),
        )
        after = await policy(conn, principal, board_id)
        await audit.record(
            conn,
            actor=actor(principal),
            action="update",
            entity="retention_policy",
            entity_id=board_id,
            before=before,
            after=after,
        )
    return after


async def state_defaults(
    conn: AsyncConnection, principal: Principal, state_id: int
) -> dict[str, Any]:
    """The defaults a state gives its boards (None where it left the service's default)."""
    await get_row(conn, principal, STATES, state_id)
    cursor = await conn.execute(
        "SELECT * FROM state_retention_defaults WHERE state_id = %s", (state_id,)
    )
    row = await cursor.fetchone() or {}
    return {
        "state_id": state_id,
        **{k: row.get(k) for k in DEFAULTS},
        "service_defaults": DEFAULTS,
    }


async def set_state_defaults(
    conn: AsyncConnection, principal: Principal, state_id: int, changes: dict[str, int | None]
) -> dict[str, Any]:
    async with conn.transaction():
        before = await state_defaults(conn, principal, state_id)
        values = {k: changes.get(k, before[k]) for k in DEFAULTS}
        await conn.execute(
            "INSERT INTO state_retention_defaults (state_id, raw_readings_days, aggregates_days,"
            " alerts_days, reports_days, audit_days) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (state_id) DO UPDATE SET raw_readings_days = excluded.raw_readings_days,"
            " aggregates_days = excluded.aggregates_days, alerts_days = excluded.alerts_days,"
            " reports_days = excluded.reports_days, audit_days = excluded.audit_days,"
            " updated_at = now()",
            (state_id, *values.values()),
        )
        after = await state_defaults(conn, principal, state_id)
        await audit.record(
            conn,
            actor=actor(principal),
            action="update",
            entity="state_retention",
            entity_id=state_id,
            before={k: before[k] for k in DEFAULTS},
            after={k: after[k] for k in DEFAULTS},
        )
    return after


async def _policies(conn: AsyncConnection) -> list[dict[str, Any]]:
    cursor = await conn.execute(_BOARD_POLICIES)
    return [
        {k: row[k] for k in ("board_id", "time_zone", *DEFAULTS)} for row in await cursor.fetchall()
    ]


_KEEP = """
CREATE TEMP TABLE kept_reads ON COMMIT DROP AS
WITH bounds AS (
    SELECT m.id AS meter_id,
           (i.period_start::timestamp AT TIME ZONE b.time_zone) AS at
    FROM invoices i JOIN boards b ON b.id = i.board_id
    JOIN meters m ON m.consumer_id = i.consumer_id
    UNION
    SELECT m.id, (i.period_end::timestamp AT TIME ZONE b.time_zone)
    FROM invoices i JOIN boards b ON b.id = i.board_id
    JOIN meters m ON m.consumer_id = i.consumer_id
)
SELECT r.meter_id, r.quantity, r.ts FROM bounds CROSS JOIN LATERAL (
    (SELECT meter_id, quantity, ts FROM readings WHERE meter_id = bounds.meter_id
       AND quantity IN ('1.8.0', '9.8.0') AND ts <= bounds.at ORDER BY ts DESC LIMIT 1)
    UNION ALL
    (SELECT meter_id, quantity, ts FROM readings WHERE meter_id = bounds.meter_id
       AND quantity IN ('1.8.0', '9.8.0') AND ts >= bounds.at ORDER BY ts LIMIT 1)
) r
"""


LOGIN_FAILURES_KEPT_DAYS = 2  # over the longest login window (a day)


async def run(
    conn: AsyncConnection, now: datetime, storage: ReportStorage, *, by: str = "retention"
) -> dict[str, int]:
    """One cleanup pass over every board; returns what it removed."""
    removed = {
        "aggregated_days": 0,
        "readings_deleted": 0,
        "partitions_dropped": 0,
        "aggregates_deleted": 0,
        "alerts_deleted": 0,
        "reports_deleted": 0,
        "audit_deleted": 0,
        "login_attempts_deleted": 0,
    }
    keys: list[str] = []
    async with conn.transaction():
        await conn.execute(_KEEP)
        await conn.execute("CREATE INDEX ON kept_reads (meter_id, quantity, ts)")
        policies = await _policies(conn)
        for p in policies:
            cutoff = now - timedelta(days=p["raw_readings_days"])
            removed["aggregated_days"] += await _aggregate(conn, p, cutoff)
        removed["partitions_dropped"] += await _drop_partitions(conn, now, policies)
        for p in policies:
            cutoff = now - timedelta(days=p["raw_readings_days"])
            cursor = await conn.execute(
                "DELETE FROM readings r USING meters m WHERE m.id = r.meter_id"
                " AND m.board_id = %s AND r.ts < %s AND NOT EXISTS (SELECT 1 FROM kept_reads k"
                " WHERE k.meter_id = r.meter_id AND k.quantity = r.quantity AND k.ts = r.ts)",
                (p["board_id"], cutoff),
            )
            removed["readings_deleted"] += cursor.rowcount
            cursor = await conn.execute(
                "DELETE FROM readings_daily d USING meters m WHERE m.id = d.meter_id"
                " AND m.board_id = %s AND d.day < %s",
                (p["board_id"], (now - timedelta(days=p["aggregates_days"])).date()),
            )
            removed["aggregates_deleted"] += cursor.rowcount
            cursor = await conn.execute(
                "DELETE FROM alerts WHERE board_id = %s AND state = 'resolved'"
                " AND resolved_at < %s",
                (p["board_id"], now - timedelta(days=p["alerts_days"])),
            )
            removed["alerts_deleted"] += cursor.rowcount
            cursor = await conn.execute(
                "DELETE FROM reports WHERE (board_id = %s OR state_id = (SELECT state_id FROM"
                " boards WHERE id = %s) AND board_id IS NULL) AND created_at < %s"
                " RETURNING storage_key",
                (p["board_id"], p["board_id"], now - timedelta(days=p["reports_days"])),
            )
            rows = await cursor.fetchall()
            removed["reports_deleted"] += len(rows)
            keys += [r["storage_key"] for r in rows if r["storage_key"]]
        longest_audit = max((p["audit_days"] for p in policies), default=DEFAULTS["audit_days"])
        cursor = await conn.execute(
            "DELETE FROM audit_log WHERE at < %s", (now - timedelta(days=longest_audit),)
        )
        removed["audit_deleted"] += cursor.rowcount
        # failed logins count for a window of at most a day; successes name an account's usual
        # addresses for at most a year (CloudSettings.login_*)
        cursor = await conn.execute(
            "DELETE FROM login_attempts WHERE (succeeded IS NOT TRUE AND at < %s)"
            " OR (succeeded AND at < %s)",
            (now - timedelta(days=LOGIN_FAILURES_KEPT_DAYS), now - timedelta(days=366)),
        )
        removed["login_attempts_deleted"] += cursor.rowcount
        await audit.record(
            conn, actor=by, action="retention", entity="retention", entity_id="all", after=removed
        )
    for key in keys:
        storage.delete(key)
    log.info("retention", **removed)
    return removed


async def _aggregate(conn: AsyncConnection, p: dict[str, Any], cutoff: datetime) -> int:
    """Daily aggregates for the board's days before `cutoff` that have none yet."""
    cursor = await conn.execute(
        """
        INSERT INTO readings_daily (meter_id, quantity, day, energy, min, avg, max, reads)
        SELECT meter_id, quantity, day,
               CASE WHEN quantity LIKE '%%.8.%%' THEN sum(greatest(delta, 0)) END,
               CASE WHEN quantity NOT LIKE '%%.8.%%' THEN min(value) END,
               CASE WHEN quantity NOT LIKE '%%.8.%%' THEN avg(value) END,
               CASE WHEN quantity NOT LIKE '%%.8.%%' THEN max(value) END,
               count(*)
        FROM (
            SELECT r.meter_id, r.quantity, r.value,
                   ((r.ts - interval '1 microsecond') AT TIME ZONE %(tz)s)::date AS day,
                   r.value - lag(r.value) OVER (PARTITION BY r.meter_id, r.quantity ORDER BY r.ts)
                       AS delta
            FROM readings r JOIN meters m ON m.id = r.meter_id
            WHERE m.board_id = %(board)s AND r.ts < %(cutoff)s
        ) x
        WHERE NOT EXISTS (SELECT 1 FROM readings_daily d WHERE d.meter_id = x.meter_id
                          AND d.quantity = x.quantity AND d.day = x.day)
        GROUP BY meter_id, quantity, day
        """,
        {"tz": p["time_zone"], "board": p["board_id"], "cutoff": cutoff},
    )
    return cursor.rowcount


async def _drop_partitions(
    conn: AsyncConnection, now: datetime, policies: list[dict[str, Any]]
) -> int:
    cutoffs = {p["board_id"]: now - timedelta(days=p["raw_readings_days"]) for p in policies}
    cursor = await conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class parent ON parent.oid = i.inhparent WHERE parent.relname = 'readings'"
        " ORDER BY c.relname"
    )
    dropped = 0
    for row in await cursor.fetchall():
        name = row["relname"]  # readings_YYYY_MM
        year, month = int(name[9:13]), int(name[14:16])
        month_end = date(year + month // 12, month % 12 + 1, 1)
        table = sql.Identifier(name)
        boards = await conn.execute(
            sql.SQL(
                "SELECT DISTINCT m.board_id FROM {} r JOIN meters m ON m.id = r.meter_id"
            ).format(table)
        )
        board_ids = [b["board_id"] for b in await boards.fetchall()]
        if not board_ids:
            continue
        past = all(
            datetime.combine(month_end, datetime.min.time(), now.tzinfo) <= cutoffs.get(b, now)
            for b in board_ids
        )
        if not past:
            continue
        kept = await conn.execute(
            sql.SQL(
                "SELECT 1 FROM {} r JOIN kept_reads k ON k.meter_id = r.meter_id"
                " AND k.quantity = r.quantity AND k.ts = r.ts LIMIT 1"
            ).format(table)
        )
        if await kept.fetchone() is not None:
            continue
        try:
            async with conn.transaction():  # a savepoint: a busy partition is left for next time
                # dropping locks the parent table; never make the service's queries wait long
                await conn.execute("SET LOCAL lock_timeout = '2s'")
                await conn.execute(sql.SQL("DROP TABLE {}").format(table))
        except errors.LockNotAvailable:
            log.info("partition busy; dropping it next time", partition=name)
            continue
        dropped += 1
    return dropped
