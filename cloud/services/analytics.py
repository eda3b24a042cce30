"""What the console shows, read from the aggregates (`cloud.services.aggregates`), the fleet's own
columns and the billing tables — never by scanning a board's raw readings.

- `overview`: one board at a glance: load now and over the last day, energy today against
  yesterday and the same weekday last week (each up to the same time of day), meters online,
  offline and never seen, gateways by health, open alerts by severity with a week's trend, and
  the last billed month's status.
- `load`: a board's load (kW) and energy per 15 minutes, hour or day, beside its capacity.
- `consumption`: energy per board, category or consumer over a period, with the period before
  and the same period a year earlier.
- `profile`: a board's mean load by hour of the day, weekdays and weekends apart.
- `usage`: one consumer's energy per day, with the month before and the same month a year ago.

Every function takes the caller and checks its scope on the rows it names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection, sql

from ..access import Permission, Principal, scope_filter
from ..billing.engine import local_midnight, month_of
from ..errors import InvalidInput
from .scoped import BOARDS, CONSUMERS, get_row

ONLINE_WITHIN = timedelta(minutes=30)  # a meter that sent a reading this recently is online
GATEWAY_SILENT = timedelta(minutes=15)
BACKLOG_WORRY = 10_000  # readings waiting on a gateway worth an operator's look
Interval = Literal["15min", "hour", "day"]
MAX_SPAN = {"15min": timedelta(days=35), "hour": timedelta(days=190), "day": timedelta(days=1100)}
_HOURS = {"15min": 0.25, "hour": 1.0}


def _previous_month(day: date) -> tuple[date, date]:
    end = day.replace(day=1)
    return (end - timedelta(days=1)).replace(day=1), end


async def _energy_between(
    conn: AsyncConnection, board_id: int, start: datetime, end: datetime
) -> float:
    cursor = await conn.execute(
        "SELECT coalesce(sum(energy_kwh), 0) AS kwh FROM board_energy_15min"
        " WHERE board_id = %s AND bucket >= %s AND bucket < %s",
        (board_id, start, end),
    )
    return float((await cursor.fetchone())["kwh"])


async def overview(
    conn: AsyncConnection, principal: Principal, board_id: int, *, now: datetime | None = None
) -> dict[str, Any]:
    board = await get_row(conn, principal, BOARDS, board_id)
    now = now or datetime.now(UTC)
    tz = ZoneInfo(board["time_zone"])
    today = now.astimezone(tz).date()
    midnight = local_midnight(today, tz)
    so_far = now - midnight

    async def day_so_far(days_back: int) -> tuple[float, float]:
        day = today - timedelta(days=days_back)
        start = local_midnight(day, tz)
        whole_end = local_midnight(day + timedelta(days=1), tz)
        return (
            await _energy_between(conn, board_id, start, start + so_far),
            await _energy_between(conn, board_id, start, whole_end),
        )

    today_kwh, _ = await day_so_far(0)
    yesterday_so_far, yesterday_kwh = await day_so_far(1)
    last_week_so_far, last_week_kwh = await day_so_far(7)
    cursor = await conn.execute(
        "SELECT bucket, sum(energy_kwh) * 4 AS kw FROM board_energy_15min"
        " WHERE board_id = %s AND bucket >= %s AND bucket < %s GROUP BY bucket"
        " ORDER BY bucket DESC LIMIT 1",
        (board_id, now - timedelta(hours=2), now - timedelta(minutes=15)),
    )
    latest = await cursor.fetchone()
    cursor = await conn.execute(
        "SELECT max(kw) AS peak FROM (SELECT sum(energy_kwh) * 4 AS kw FROM board_energy_15min"
        " WHERE board_id = %s AND bucket >= %s GROUP BY bucket) x",
        (board_id, now - timedelta(days=1)),
    )
    peak = (await cursor.fetchone())["peak"]
    cursor = await conn.execute(
        "SELECT count(*) FILTER (WHERE last_reading_at >= %(online)s) AS online,"
        " count(*) FILTER (WHERE last_reading_at < %(online)s) AS offline,"
        " count(*) FILTER (WHERE last_reading_at IS NULL) AS never_seen,"
        " count(*) FILTER (WHERE confirmed_at IS NULL) AS awaiting_confirmation,"
        " count(*) AS total"
        " FROM meters WHERE board_id = %(board)s AND replaced_at IS NULL",
        {"board": board_id, "online": now - ONLINE_WITHIN},
    )
    meters = await cursor.fetchone()
    cursor = await conn.execute(
        "SELECT count(*) FILTER (WHERE status = 'active') AS active,"
        " count(*) FILTER (WHERE status = 'active' AND last_seen_at >= %(silent)s) AS online,"
        " count(*) FILTER (WHERE status = 'active'"
        "   AND (last_seen_at IS NULL OR last_seen_at < %(silent)s)) AS silent,"
        " count(*) FILTER (WHERE status = 'active' AND backlog_readings >= %(backlog)s)"
        "   AS backlog,"
        " count(*) FILTER (WHERE status = 'active' AND clock_synced IS FALSE) AS clock_unsynced,"
        " count(*) FILTER (WHERE status = 'revoked') AS revoked"
        " FROM gateways WHERE board_id = %(board)s",
        {"board": board_id, "silent": now - GATEWAY_SILENT, "backlog": BACKLOG_WORRY},
    )
    gateways = await cursor.fetchone()
    result: dict[str, Any] = {
        "board": {
            k: board[k] for k in ("id", "code", "name", "time_zone", "currency", "capacity_kw")
        },
        "as_of": now,
        "load": {
            "now_kw": latest["kw"] if latest else None,
            # the end of the quarter hour that load was drawn in
            "now_until": latest["bucket"] + timedelta(minutes=15) if latest else None,
            "peak_24h_kw": peak,
            "capacity_kw": board["capacity_kw"],
        },
        "energy": {
            "today_kwh": today_kwh,
            "yesterday_same_time_kwh": yesterday_so_far,
            "yesterday_kwh": yesterday_kwh,
            "last_week_same_time_kwh": last_week_so_far,
            "last_week_kwh": last_week_kwh,
        },
        "meters": meters,
        "gateways": gateways,
    }
    if principal.may(Permission.ALERT_READ):
        result["alerts"] = await _alerts(conn, board_id, tz, today)
    if principal.may(Permission.BILLING_READ):
        result["billing"] = await _billing(conn, board_id, today)
    return result


async def _alerts(conn: AsyncConnection, board_id: int, tz: ZoneInfo, today: date) -> dict:
    cursor = await conn.execute(
        "SELECT severity, count(*) AS n FROM alerts WHERE board_id = %s AND state <> 'resolved'"
        " GROUP BY severity",
        (board_id,),
    )
    open_by_severity = {s: 0 for s in ("critical", "high", "medium", "low", "info")} | {
        row["severity"]: row["n"] for row in await cursor.fetchall()
    }
    first = today - timedelta(days=6)
    cursor = await conn.execute(
        "SELECT (opened_at AT TIME ZONE %(tz)s)::date AS day, count(*) AS n FROM alerts"
        " WHERE board_id = %(board)s AND opened_at >= %(start)s GROUP BY 1",
        {"tz": str(tz), "board": board_id, "start": local_midnight(first, tz)},
    )
    opened = {row["day"]: row["n"] for row in await cursor.fetchall()}
    return {
        "open": open_by_severity,
        "opened_per_day": [
            {"day": first + timedelta(days=i), "opened": opened.get(first + timedelta(days=i), 0)}
            for i in range(7)
        ],
    }


async def _billing(conn: AsyncConnection, board_id: int, today: date) -> dict:
    """The last month's bills (the cycle billed now): the latest version of each consumer's."""
    start, end = _previous_month(today)
    cursor = await conn.execute(
        """
        WITH latest AS (
            SELECT DISTINCT ON (consumer_id) * FROM invoices
            WHERE board_id = %(board)s AND period_start = %(start)s AND period_end = %(end)s
            ORDER BY consumer_id, version DESC
        )
        SELECT count(*) AS billed,
               count(*) FILTER (WHERE status = 'draft') AS draft,
               count(*) FILTER (WHERE status IN ('issued', 'overdue', 'disputed', 'paid'))
                   AS issued,
               count(*) FILTER (WHERE status = 'paid') AS paid,
               count(*) FILTER (WHERE status = 'overdue') AS overdue,
               count(*) FILTER (WHERE status = 'disputed') AS disputed,
               count(*) FILTER (WHERE estimated) AS estimated,
               coalesce(sum(total), 0) AS billed_amount,
               coalesce(sum(paid), 0) AS paid_amount,
               coalesce(sum(amount_due - paid) FILTER (WHERE status = 'overdue'), 0)
                   AS overdue_amount
        FROM latest
        """,
        {"board": board_id, "start": start, "end": end},
    )
    row = await cursor.fetchone()
    cursor = await conn.execute(
        "SELECT count(*) AS n FROM consumers WHERE board_id = %s", (board_id,)
    )
    return {
        "period_start": start,
        "period_end": end,
        "consumers": (await cursor.fetchone())["n"],
        **row,
    }


def _check_span(start: datetime, end: datetime, interval: str) -> None:
    if end <= start:
        raise InvalidInput("the range ends before it starts", errors=[("to", str(end))])
    if end - start > MAX_SPAN[interval]:
        raise InvalidInput(
            f"{interval} load spans at most {MAX_SPAN[interval].days} days",
            errors=[("to", str(end))],
        )


async def load(
    conn: AsyncConnection,
    principal: Principal,
    board_id: int,
    *,
    start: datetime,
    end: datetime,
    interval: Interval,
) -> dict[str, Any]:
    """The board's energy and mean load per bucket (hours and days in its zone)."""
    _check_span(start, end, interval)
    board = await get_row(conn, principal, BOARDS, board_id)
    bucket = {
        "15min": sql.SQL("bucket"),
        "hour": sql.SQL("date_trunc('hour', bucket AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s"),
        "day": sql.SQL("date_trunc('day', bucket AT TIME ZONE %(tz)s) AT TIME ZONE %(tz)s"),
    }[interval]
    cursor = await conn.execute(
        sql.SQL(
            "SELECT {bucket} AS bucket, sum(energy_kwh) AS energy_kwh FROM board_energy_15min"
            " WHERE board_id = %(board)s AND bucket >= %(start)s AND bucket < %(end)s"
            " GROUP BY 1 ORDER BY 1"
        ).format(bucket=bucket),
        {"board": board_id, "start": start, "end": end, "tz": board["time_zone"]},
    )
    tz = ZoneInfo(board["time_zone"])
    points = []
    for row in await cursor.fetchall():
        hours = _HOURS.get(interval)
        if hours is None:  # a local day: 23, 24 or 25 hours
            day = row["bucket"].astimezone(tz).date()
            length = local_midnight(day + timedelta(days=1), tz) - local_midnight(day, tz)
            hours = length.total_seconds() / 3600
        points.append(
            {
                "bucket": row["bucket"],
                "energy_kwh": row["energy_kwh"],
                "kw": row["energy_kwh"] / hours,
            }
        )
    return {
        "board_id": board_id,
        "interval": interval,
        "time_zone": board["time_zone"],
        "capacity_kw": board["capacity_kw"],
        "points": points,
    }


NEGLIGIBLE_KWH = 1e-6  # below this a period had no consumption (float dust of a month less days)
GroupBy = Literal["board", "category", "consumer"]


def _compare_ranges(start: date, end: date) -> dict[str, tuple[date, date]]:
    span = end - start
    try:
        last_year = (start.replace(year=start.year - 1), end.replace(year=end.year - 1))
    except ValueError:  # 29 February
        last_year = (start - timedelta(days=365), end - timedelta(days=365))
    return {"current": (start, end), "previous": (start - span, start), "last_year": last_year}


def _range_sums(ranges: dict[str, tuple[date, date]], alias: str) -> sql.Composable:
    """One sum per compared span, over `alias`'s days."""
    return sql.SQL(", ").join(
        sql.SQL(
            "coalesce(sum({a}.energy_kwh) FILTER (WHERE {a}.day >= %s AND {a}.day < %s), 0)"
            " AS {name}"
        ).format(a=sql.Identifier(alias), name=sql.Identifier(name))
        for name in ranges
    )


def _in_ranges(ranges: dict[str, tuple[date, date]], alias: str) -> sql.Composable:
    return sql.SQL("({})").format(
        sql.SQL(" OR ").join(
            sql.SQL("({a}.day >= %s AND {a}.day < %s)").format(a=sql.Identifier(alias))
            for _ in ranges
        )
    )


async def _consumption_by_group(
    conn: AsyncConnection,
    principal: Principal,
    board_id: int | None,
    group_by: GroupBy,
    ranges: dict[str, tuple[date, date]],
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """Per board or category: a few rows a day per board (`board_energy_daily`), the energy of
    the meters that have a consumer."""
    condition, params = scope_filter(principal, "board_energy", "e")
    key, label = {
        "board": (sql.SQL("b.id::text"), sql.SQL("b.code || ' — ' || b.name")),
        "category": (sql.SQL("e.category"), sql.SQL("e.category")),
    }[group_by]
    spans = [value for pair in ranges.values() for value in pair]
    query = sql.SQL(
        "SELECT {key} AS key, {label} AS label, {sums}, count(*) OVER () AS _total"
        " FROM board_energy_daily e JOIN boards b ON b.id = e.board_id"
        " WHERE {scope} AND e.category <> '' AND (%s::bigint IS NULL OR e.board_id = %s)"
        " AND {in_ranges}"
        " GROUP BY 1, 2 ORDER BY current DESC, key LIMIT %s OFFSET %s"
    ).format(
        key=key,
        label=label,
        sums=_range_sums(ranges, "e"),
        scope=condition,
        in_ranges=_in_ranges(ranges, "e"),
    )
    cursor = await conn.execute(query, [*spans, *params, board_id, board_id, *spans, limit, offset])
    rows = await cursor.fetchall()
    return rows, rows[0]["_total"] if rows else 0


@dataclass(frozen=True)
class Pieces:
    """A span of days as what sums to it: whole months (`consumer_energy_monthly`), plus days
    added, minus days taken back from a month counted whole."""

    months: list[date]
    plus: list[tuple[date, date]]
    minus: list[tuple[date, date]]


def pieces(start: date, end: date) -> Pieces:
    """[start, end) in the fewest rows a consumer: a month covered in part is its days, or the
    whole month less the days it leaves out, whichever are fewer (a month to date is its month
    less the days still to come, which have no rows)."""
    months, plus, minus = [], [], []
    month = start.replace(day=1)
    while month < end:
        first, after = month_of(month)
        inside = (max(start, first), min(end, after))
        if inside == (first, after):
            months.append(first)
        elif (inside[1] - inside[0]).days <= (after - first).days // 2:
            plus.append(inside)
        else:
            months.append(first)
            minus += [(a, b) for a, b in ((first, inside[0]), (inside[1], after)) if a < b]
        month = after
    return Pieces(months, plus, minus)


def _consumer_sums(
    ranges: dict[str, tuple[date, date]], where: sql.Composable, where_params: list[object]
) -> tuple[sql.Composable, list[object]]:
    """A query of (consumer_id, one energy column per range) for the consumers `where` keeps
    (written over alias x), from the monthly and daily rows."""
    parts, params = [], []
    for name, (start, end) in ranges.items():
        split = pieces(start, end)
        if split.months:
            parts.append(
                sql.SQL(
                    "SELECT x.consumer_id, %s::text AS span, x.energy_kwh AS e"
                    " FROM consumer_energy_monthly x WHERE {} AND x.month = ANY(%s)"
                ).format(where)
            )
            params += [name, *where_params, split.months]
        for sign, days in ((1, split.plus), (-1, split.minus)):
            if days:
                parts.append(
                    sql.SQL(
                        "SELECT x.consumer_id, %s::text AS span, %s::float8 * x.energy_kwh AS e"
                        " FROM consumer_energy_daily x WHERE {} AND ({})"
                    ).format(
                        where,
                        sql.SQL(" OR ").join(sql.SQL("(x.day >= %s AND x.day < %s)") for _ in days),
                    )
                )
                params += [name, sign, *where_params, *(d for pair in days for d in pair)]
    columns = sql.SQL(", ").join(
        sql.SQL("coalesce(sum(e) FILTER (WHERE span = %s::text), 0) AS {}").format(
            sql.Identifier(name)
        )
        for name in ranges
    )
    query = sql.SQL("SELECT consumer_id, {} FROM ({}) AS pieces GROUP BY consumer_id").format(
        columns, sql.SQL(" UNION ALL ").join(parts)
    )
    return query, [*ranges, *params]


async def _consumption_by_consumer(
    conn: AsyncConnection,
    principal: Principal,
    board_id: int | None,
    ranges: dict[str, tuple[date, date]],
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """Per consumer with energy in the current span, largest first: consumers are ranked by the
    current span alone, and only the page's consumers have their earlier spans summed."""
    scope, scope_params = scope_filter(principal, "consumer_energy", "x")
    where = sql.SQL("{} AND (%s::bigint IS NULL OR x.board_id = %s)").format(scope)
    current, params = _consumer_sums(
        {"current": ranges["current"]}, where, [*scope_params, board_id, board_id]
    )
    cursor = await conn.execute(
        sql.SQL(
            "SELECT consumer_id, current, count(*) OVER () AS _total FROM ({}) AS s"
            " WHERE current > %s ORDER BY current DESC, consumer_id LIMIT %s OFFSET %s"
        ).format(current),
        [*params, NEGLIGIBLE_KWH, limit, offset],
    )
    ranked = await cursor.fetchall()
    if not ranked:
        return [], 0
    ids = [row["consumer_id"] for row in ranked]
    earlier = {name: pair for name, pair in ranges.items() if name != "current"}
    sums, params = _consumer_sums(
        earlier, sql.SQL("{} AND x.consumer_id = ANY(%s)").format(scope), [*scope_params, ids]
    )
    cursor = await conn.execute(sums, params)
    before = {row["consumer_id"]: row for row in await cursor.fetchall()}
    named, named_params = scope_filter(principal, "consumer", "c")
    cursor = await conn.execute(
        sql.SQL(
            "SELECT c.id, c.name || ' (' || c.account_no || ')' AS label FROM consumers c"
            " WHERE {} AND c.id = ANY(%s)"
        ).format(named),
        [*named_params, ids],
    )
    labels = {row["id"]: row["label"] for row in await cursor.fetchall()}
    rows = [
        {
            "key": str(row["consumer_id"]),
            "label": labels[row["consumer_id"]],
            "current": _kwh(row["current"]),
            **{name: _kwh(before.get(row["consumer_id"], {}).get(name, 0)) for name in earlier},
        }
        for row in ranked
    ]
    return rows, ranked[0]["_total"]


def _kwh(value: float) -> float:
    """A sum of pieces (a month less some days) to the Wh, without float dust."""
    return round(value, 6) + 0.0


async def consumption(
    conn: AsyncConnection,
    principal: Principal,
    *,
    board_id: int | None,
    group_by: GroupBy,
    start: date,
    end: date,
    limit: int,
    offset: int,
) -> dict[str, Any]:
    """Energy per board, category or consumer over [start, end) in local days, largest first,
    with the same span just before and a year before."""
    if end <= start or (end - start).days > 400:
        raise InvalidInput(
            "the period must end after it starts and span at most 400 days",
            errors=[("to", end.isoformat())],
        )
    if board_id is not None:
        await get_row(conn, principal, BOARDS, board_id)
    ranges = _compare_ranges(start, end)
    if group_by == "consumer":
        rows, total = await _consumption_by_consumer(
            conn, principal, board_id, ranges, limit, offset
        )
    else:
        rows, total = await _consumption_by_group(
            conn, principal, board_id, group_by, ranges, limit, offset
        )
    items = [
        {
            "key": row["key"],
            "label": row["label"],
            "energy_kwh": row["current"],
            "previous_kwh": row["previous"],
            "last_year_kwh": row["last_year"],
        }
        for row in rows
    ]
    return {
        "group_by": group_by,
        "periods": {name: {"from": pair[0], "to": pair[1]} for name, pair in ranges.items()},
        "items": items,
        "total": total,
        "limit": limit,
        "offset": offset,
    }


async def profile(
    conn: AsyncConnection, principal: Principal, board_id: int, *, start: date, end: date
) -> dict[str, Any]:
    """Mean load (kW) by local hour of the day, weekdays and weekends apart."""
    if end <= start or (end - start).days > 400:
        raise InvalidInput(
            "the period must end after it starts and span at most 400 days",
            errors=[("to", end.isoformat())],
        )
    board = await get_row(conn, principal, BOARDS, board_id)
    tz = ZoneInfo(board["time_zone"])
    cursor = await conn.execute(
        """
        SELECT extract(hour FROM q.bucket AT TIME ZONE %(tz)s)::int AS hour,
               extract(isodow FROM q.bucket AT TIME ZONE %(tz)s) >= 6 AS weekend,
               avg(q.kw) AS kw
        FROM (SELECT bucket, sum(energy_kwh) * 4 AS kw FROM board_energy_15min
              WHERE board_id = %(board)s AND bucket >= %(start)s AND bucket < %(end)s
              GROUP BY bucket) q
        GROUP BY 1, 2 ORDER BY 1, 2
        """,
        {
            "tz": board["time_zone"],
            "board": board_id,
            "start": local_midnight(start, tz),
            "end": local_midnight(end, tz),
        },
    )
    rows = await cursor.fetchall()
    by = {(row["hour"], row["weekend"]): row["kw"] for row in rows}
    return {
        "board_id": board_id,
        "time_zone": board["time_zone"],
        "hours": [
            {"hour": h, "weekday_kw": by.get((h, False)), "weekend_kw": by.get((h, True))}
            for h in range(24)
        ],
    }


async def boards(
    conn: AsyncConnection, principal: Principal, *, now: datetime | None = None
) -> list[dict[str, Any]]:
    """Every board in scope side by side: energy today and yesterday, the latest load against
    capacity, meters online, open alerts."""
    now = now or datetime.now(UTC)
    condition, params = scope_filter(principal, "board", "b")
    cursor = await conn.execute(
        sql.SQL(
            """
            SELECT b.id, b.code, b.name, b.time_zone, b.capacity_kw,
              (SELECT count(*) FROM meters m WHERE m.board_id = b.id AND m.replaced_at IS NULL)
                  AS meters,
              (SELECT count(*) FROM meters m WHERE m.board_id = b.id AND m.replaced_at IS NULL
                  AND m.last_reading_at >= %s) AS online,
              (SELECT count(*) FROM alerts a WHERE a.board_id = b.id AND a.state <> 'resolved')
                  AS alerts_open
            FROM boards b WHERE {} ORDER BY b.code
            """
        ).format(condition),
        [now - ONLINE_WITHIN, *params],
    )
    rows = await cursor.fetchall()
    for row in rows:
        tz = ZoneInfo(row["time_zone"])
        today = now.astimezone(tz).date()
        midnight = local_midnight(today, tz)
        row["today_kwh"] = await _energy_between(conn, row["id"], midnight, now)
        row["yesterday_kwh"] = await _energy_between(
            conn, row["id"], local_midnight(today - timedelta(days=1), tz), midnight
        )
        cursor = await conn.execute(
            "SELECT sum(energy_kwh) * 4 AS kw FROM board_energy_15min WHERE board_id = %s"
            " AND bucket >= %s AND bucket < %s GROUP BY bucket ORDER BY bucket DESC LIMIT 1",
            (row["id"], now - timedelta(hours=2), now - timedelta(minutes=15)),
        )
        latest = await cursor.fetchone()
        row["load_kw"] = latest["kw"] if latest else None
    return rows


async def usage(
    conn: AsyncConnection,
    principal: Principal,
    consumer_id: int,
    *,
    month: date | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """One consumer's energy per local day over a month (this one by default), with the month
    before and the same month a year earlier, day by day."""
    consumer = await get_row(conn, principal, CONSUMERS, consumer_id)
    cursor = await conn.execute(
        "SELECT time_zone FROM boards WHERE id = %s", (consumer["board_id"],)
    )
    tz = ZoneInfo((await cursor.fetchone())["time_zone"])
    now = now or datetime.now(UTC)
    start, end = month_of(month or now.astimezone(tz).date())
    before = month_of(start - timedelta(days=1))
    year_ago = month_of(start.replace(year=start.year - 1))
    cursor = await conn.execute(
        "SELECT day, energy_kwh, peak_kw FROM consumer_energy_daily WHERE consumer_id = %s"
        " AND ((day >= %s AND day < %s) OR (day >= %s AND day < %s) OR (day >= %s AND day < %s))"
        " ORDER BY day",
        (consumer_id, start, end, before[0], before[1], year_ago[0], year_ago[1]),
    )
    by_day = {row["day"]: row for row in await cursor.fetchall()}

    def series(first: date, last: date) -> list[dict[str, Any]]:
        days = (last - first).days
        return [
            {
                "day": first + timedelta(days=i),
                "energy_kwh": by_day[first + timedelta(days=i)]["energy_kwh"]
                if first + timedelta(days=i) in by_day
                else None,
            }
            for i in range(days)
        ]

    current = series(start, end)
    return {
        "consumer_id": consumer_id,
        "time_zone": str(tz),
        "month": {"from": start, "to": end},
        "days": current,
        "so_far_kwh": sum(d["energy_kwh"] or 0 for d in current),
        "previous_month": {
            "from": before[0],
            "to": before[1],
            "days": series(*before),
        },
        "same_month_last_year": {
            "from": year_ago[0],
            "to": year_ago[1],
            "days": series(*year_ago),
        },
    }
