"""What each report kind contains, for a set of boards and a period [start, end) of local days.

- consumption: energy per meter per day (or month), from register deltas (each delta counted in
  the local day its interval ends in), with the consumer's account, name and category and the
  meter's gateway;
- billing_summary: invoices of periods starting in the range, by status and consumer category
  (count, billed, due, paid), and the payments received in the range (revenue);
- alerts: alerts opened in the range by kind, severity, state, gateway and local day;
- fleet_health: every gateway (last seen, backlog, clock, version, meters it serves, meters
  with data missing).

Each gives every column of its kind (`layouts.KINDS`); the report's layout picks and folds them.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from psycopg import AsyncConnection

from .formats import ReportData


async def consumption(
    conn: AsyncConnection,
    boards: list[int],
    start: date,
    end: date,
    time_zone: str,
    granularity: str,
) -> ReportData:
    unit = "day" if granularity == "daily" else "month"
    cursor = await conn.execute(
        """
        WITH bounds AS (
            SELECT (%(start)s::date::timestamp AT TIME ZONE %(tz)s) AS lo,
                   (%(end)s::date::timestamp AT TIME ZONE %(tz)s) AS hi
        ), reads AS (
            SELECT r.meter_id, r.ts,
                   r.value - lag(r.value) OVER (PARTITION BY r.meter_id ORDER BY r.ts) AS delta
            FROM readings r JOIN meters m ON m.id = r.meter_id, bounds
            WHERE m.board_id = ANY(%(boards)s) AND r.quantity = '1.8.0'
              AND r.quality IN ('ok', 'estimated')
              AND r.ts > bounds.lo - interval '2 days' AND r.ts <= bounds.hi
        )
        SELECT b.code AS board, c.account_no, c.name AS consumer, c.category,
               m.external_id AS meter, g.gateway_code AS gateway,
               date_trunc(%(unit)s, (reads.ts - interval '1 microsecond') AT TIME ZONE %(tz)s)::date
                   AS period,
               round(sum(greatest(reads.delta, 0))::numeric, 3) AS energy_kwh
        FROM reads JOIN meters m ON m.id = reads.meter_id JOIN boards b ON b.id = m.board_id
        LEFT JOIN consumers c ON c.id = m.consumer_id
        LEFT JOIN gateways g ON g.id = m.gateway_id, bounds
        WHERE reads.delta IS NOT NULL AND reads.ts > bounds.lo
        GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 7, 1, 5
        """,
        {"boards": boards, "start": start, "end": end, "tz": time_zone, "unit": unit},
    )
    rows = await cursor.fetchall()
    columns = [
        "board",
        "account_no",
        "consumer",
        "category",
        "meter",
        "gateway",
        "period",
        "energy_kwh",
    ]
    totals: dict[str, Decimal] = {}
    for row in rows:
        key = row["period"].isoformat()
        totals[key] = totals.get(key, Decimal(0)) + row["energy_kwh"]
    return ReportData(
        title=f"Consumption {start} to {end} ({granularity})",
        columns=columns,
        rows=[[row[c] for c in columns] for row in rows],
        summary={"meters": len({r["meter"] for r in rows}), "energy_kwh": sum(totals.values())},
        chart=(list(totals), [float(v) for v in totals.values()], f"kWh per {unit}"),
    )


async def billing_summary(
    conn: AsyncConnection, boards: list[int], start: date, end: date
) -> ReportData:
    cursor = await conn.execute(
        "SELECT i.status, c.category, count(*) AS invoices, sum(i.total) AS billed,"
        " sum(i.amount_due) AS due, sum(i.paid) AS paid"
        " FROM invoices i JOIN consumers c ON c.id = i.consumer_id WHERE i.board_id = ANY(%s)"
        " AND i.period_start >= %s AND i.period_start < %s GROUP BY 1, 2 ORDER BY 1, 2",
        (boards, start, end),
    )
    rows = await cursor.fetchall()
    revenue = await (
        await conn.execute(
            "SELECT coalesce(sum(p.amount), 0) AS revenue FROM payments p"
            " JOIN invoices i ON i.id = p.invoice_id WHERE i.board_id = ANY(%s)"
            " AND p.paid_at >= %s AND p.paid_at < %s",
            (boards, start, end),
        )
    ).fetchone()
    columns = ["status", "category", "invoices", "billed", "due", "paid"]
    due: dict[str, Decimal] = {}
    for row in rows:
        due[row["status"]] = due.get(row["status"], Decimal(0)) + row["due"]
    return ReportData(
        title=f"Billing summary {start} to {end}",
        columns=columns,
        rows=[[row[c] for c in columns] for row in rows],
        summary={
            "invoices": sum(r["invoices"] for r in rows),
            "billed": sum((r["billed"] for r in rows), Decimal(0)),
            "revenue": revenue["revenue"],
        },
        chart=(list(due), [float(v) for v in due.values()], "amount due"),
    )


async def alerts(
    conn: AsyncConnection, boards: list[int], start: date, end: date, time_zone: str = "UTC"
) -> ReportData:
    cursor = await conn.execute(
        "SELECT a.kind, a.severity, a.state, g.gateway_code AS gateway,"
        " (a.opened_at AT TIME ZONE %(tz)s)::date AS day, count(*) AS alerts"
        " FROM alerts a LEFT JOIN gateways g ON g.id = a.gateway_id"
        " WHERE a.board_id = ANY(%(boards)s)"
        " AND a.opened_at >= (%(start)s::date::timestamp AT TIME ZONE %(tz)s)"
        " AND a.opened_at < (%(end)s::date::timestamp AT TIME ZONE %(tz)s)"
        " GROUP BY 1, 2, 3, 4, 5 ORDER BY 6 DESC, 1, 5",
        {"boards": boards, "start": start, "end": end, "tz": time_zone},
    )
    rows = await cursor.fetchall()
    columns = ["kind", "severity", "state", "gateway", "day", "alerts"]
    by_kind: dict[str, int] = {}
    for row in rows:
        by_kind[row["kind"]] = by_kind.get(row["kind"], 0) + row["alerts"]
    return ReportData(
        title=f"Alerts opened {start} to {end}",
        columns=columns,
        rows=[[row[c] for c in columns] for row in rows],
        summary={"alerts": sum(by_kind.values())},
        chart=(list(by_kind), [float(v) for v in by_kind.values()], "alerts"),
    )


async def fleet_health(conn: AsyncConnection, boards: list[int]) -> ReportData:
    cursor = await conn.execute(
        """
        SELECT g.gateway_code AS gateway, g.status, g.last_seen_at, g.backlog_readings,
               g.oldest_unsent_at, g.clock_synced, g.software_version,
               (SELECT count(*) FROM meters m WHERE m.gateway_id = g.id
                  AND m.replaced_at IS NULL) AS meters,
               (SELECT count(*) FROM alerts a WHERE a.gateway_id = g.id
                  AND a.kind = 'meter_data_missing' AND a.state <> 'resolved') AS meters_failing
        FROM gateways g WHERE g.board_id = ANY(%s) ORDER BY g.gateway_code
        """,
        (boards,),
    )
    rows = await cursor.fetchall()
    columns = [
        "gateway",
        "status",
        "last_seen_at",
        "backlog_readings",
        "oldest_unsent_at",
        "clock_synced",
        "software_version",
        "meters",
        "meters_failing",
    ]
    return ReportData(
        title="Fleet health",
        columns=columns,
        rows=[[row[c] for c in columns] for row in rows],
        summary={
            "gateways": len(rows),
            "meters": sum(r["meters"] for r in rows),
            "meters_failing": sum(r["meters_failing"] for r in rows),
        },
        chart=(
            [r["gateway"] for r in rows],
            [float(r["backlog_readings"] or 0) for r in rows],
            "unsent readings",
        ),
    )
