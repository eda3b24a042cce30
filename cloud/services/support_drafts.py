"""Replies drafted from the consumer's own records, for the categories data can answer.

A draft is two things: the facts, read from the database (`facts`, kept with the query as
JSON, so an agent and a test can check every figure), and the words written from exactly those
facts. A high bill is set against the previous bills (units, amount, units a day), with the
slab reached, any estimated reading and any tariff change; an outage gets the meter's last
reading, its gaps in the last day and the open alerts on it and its gateway; a meter fault gets
the meter's health and its alerts of the last month. Other categories get no draft: an agent
answers them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from psycopg import AsyncConnection

from ..formats import local_date, local_time, money, number, period
from .listings import ONLINE_WITHIN

DRAFTED = ("high_bill", "outage", "meter_fault")
GAP = timedelta(minutes=15)  # readings further apart than this leave a gap
PREVIOUS_BILLS = 3
ENERGY = "1.8.0"  # active energy imported (OBIS), the register every meter reports
_BILLED = ("issued", "paid", "overdue", "disputed")


@dataclass(frozen=True)
class Draft:
    body: str
    facts: dict[str, Any]


def _per_day(units: Decimal, days: int) -> Decimal:
    return (units / days).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


async def draft(
    conn: AsyncConnection,
    *,
    category: str,
    consumer_id: int,
    invoice_id: int | None = None,
    meter_id: int | None = None,
    now: datetime | None = None,
) -> Draft | None:
    """A reply for a query of `category` from this consumer (None for other categories, or
    when there is nothing on record to answer from)."""
    now = now or datetime.now(UTC)
    cursor = await conn.execute(
        "SELECT c.name, b.time_zone, b.currency FROM consumers c"
        " JOIN boards b ON b.id = c.board_id WHERE c.id = %s",
        (consumer_id,),
    )
    consumer = await cursor.fetchone()
    if consumer is None:
        return None
    if category == "high_bill":
        return await _high_bill(conn, consumer, consumer_id, invoice_id)
    if category == "outage":
        return await _outage(conn, consumer, consumer_id, meter_id, now)
    if category == "meter_fault":
        return await _meter_fault(conn, consumer, consumer_id, meter_id, now)
    return None


# --- a high bill ----------------------------------------------------------------------------


async def _bills(conn: AsyncConnection, consumer_id: int) -> list[dict[str, Any]]:
    """The consumer's bills as they stand (the latest version of each period), newest first."""
    cursor = await conn.execute(
        "SELECT DISTINCT ON (period_start, period_end) id, period_start, period_end, units,"
        " total, amount_due, estimated, status, details, currency FROM invoices"
        " WHERE consumer_id = %s AND status = ANY(%s)"
        " ORDER BY period_start DESC, period_end DESC, version DESC",
        (consumer_id, list(_BILLED)),
    )
    return await cursor.fetchall()


async def _top_slab(conn: AsyncConnection, invoice_id: int) -> dict[str, Any] | None:
    """The dearest energy line of a bill: the slab (or rate) its units reached."""
    cursor = await conn.execute(
        "SELECT description, rate, quantity FROM invoice_lines"
        " WHERE invoice_id = %s AND code = 'energy' ORDER BY rate DESC, position DESC LIMIT 1",
        (invoice_id,),
    )
    row = await cursor.fetchone()
    return None if row is None else {"description": row["description"], "rate": str(row["rate"])}


def _bill_facts(bill: dict[str, Any]) -> dict[str, Any]:
    days = (bill["period_end"] - bill["period_start"]).days
    units = Decimal(bill["units"])
    return {
        "invoice_id": bill["id"],
        "period_start": bill["period_start"].isoformat(),
        "period_end": bill["period_end"].isoformat(),
        "days": days,
        "units": str(units.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)),
        "total": str(bill["total"]),
        "units_per_day": str(_per_day(units, days)),
        "estimated": bill["estimated"],
        "tariff_versions": sorted(
            {s["tariff_version"] for s in (bill["details"] or {}).get("segments", [])}
        ),
    }


async def _high_bill(
    conn: AsyncConnection, consumer: dict, consumer_id: int, invoice_id: int | None
) -> Draft | None:
    bills = await _bills(conn, consumer_id)
    chosen = next((b for b in bills if b["id"] == invoice_id), None) if invoice_id else None
    if chosen is None and invoice_id:  # an older version was named: its period's bill as it is
        cursor = await conn.execute(
            "SELECT period_start FROM invoices WHERE id = %s AND consumer_id = %s",
            (invoice_id, consumer_id),
        )
        named = await cursor.fetchone()
        if named:
            chosen = next((b for b in bills if b["period_start"] == named["period_start"]), None)
    chosen = chosen or (bills[0] if bills else None)
    if chosen is None:
        return None
    earlier = [b for b in bills if b["period_end"] <= chosen["period_start"]][:PREVIOUS_BILLS]
    facts: dict[str, Any] = {"kind": "high_bill", "currency": chosen["currency"]}
    facts["bill"] = _bill_facts(chosen) | {"top_slab": await _top_slab(conn, chosen["id"])}
    facts["bill"]["notes"] = (chosen["details"] or {}).get("notes", [])
    facts["previous"] = [_bill_facts(b) for b in earlier]
    if earlier:
        units = sum((Decimal(b["units"]) for b in earlier), Decimal(0))
        days = sum((b["period_end"] - b["period_start"]).days for b in earlier)
        average = _per_day(units, days)
        facts["previous_units_per_day"] = str(average)
        now_per_day = Decimal(facts["bill"]["units_per_day"])
        facts["change_pct"] = (
            str(((now_per_day - average) / average * 100).quantize(Decimal(1), ROUND_HALF_UP))
            if average
            else None
        )
        facts["previous_top_slab"] = await _top_slab(conn, earlier[0]["id"])
        new_versions = set(facts["bill"]["tariff_versions"]) - set(
            facts["previous"][0]["tariff_versions"]
        )
        if new_versions:
            cursor = await conn.execute(
                "SELECT id, effective_from FROM tariff_versions WHERE id = ANY(%s)"
                " ORDER BY effective_from",
                (sorted(new_versions),),
            )
            facts["tariff_change"] = [
                {"version": r["id"], "effective_from": r["effective_from"].isoformat()}
                for r in await cursor.fetchall()
            ]
    return Draft(_high_bill_words(consumer, chosen, facts), facts)


def _high_bill_words(consumer: dict, bill: dict[str, Any], facts: dict[str, Any]) -> str:
    currency, this = facts["currency"], facts["bill"]
    lines = [
        f"Dear {consumer['name']},",
        "",
        f"Your bill for {period(bill['period_start'], bill['period_end'])} is"
        f" {money(this['total'], currency)} for {number(this['units'], 2)} kWh over"
        f" {this['days']} days, {number(this['units_per_day'], 2)} kWh a day.",
    ]
    if facts["previous"]:
        lines += ["", "Your previous bills:"]
        for before in facts["previous"]:
            start = datetime.fromisoformat(before["period_start"]).date()
            end = datetime.fromisoformat(before["period_end"]).date()
            lines.append(
                f"- {period(start, end)}: {number(before['units'], 2)} kWh,"
                f" {money(before['total'], currency)} ({number(before['units_per_day'], 2)} kWh"
                " a day)"
            )
        change = facts.get("change_pct")
        if change is not None:
            direction = "more" if Decimal(change) >= 0 else "less"
            lines += [
                "",
                f"You used {abs(Decimal(change))} % {direction} electricity a day than the average"
                f" of these bills ({number(facts['previous_units_per_day'], 2)} kWh a day).",
            ]
        top, before_top = this.get("top_slab"), facts.get("previous_top_slab")
        if top and before_top and Decimal(top["rate"]) > Decimal(before_top["rate"]):
            lines.append(
                f"Your use this time reached a dearer slab: {top['description']} at"
                f" {money(top['rate'], currency)} a kWh; last time the dearest was"
                f" {before_top['description']} at {money(before_top['rate'], currency)} a kWh."
            )
    else:
        lines += ["", "This is your first bill, so there is no earlier one to compare it with."]
    if this["estimated"]:
        lines.append(
            "Part of this bill was estimated because some readings were missing; it will be"
            " corrected automatically once the readings arrive."
        )
    for change in facts.get("tariff_change", []):
        day = datetime.fromisoformat(change["effective_from"]).date()
        lines.append(f"The tariff for your category changed on {local_date(day)}.")
    lines += [
        "",
        "If this does not match what you see on your meter, reply here and a member of our"
        " support team will look into it.",
    ]
    return "\n".join(lines)


# --- an outage, a meter fault ---------------------------------------------------------------


async def meters_of(conn: AsyncConnection, consumer_id: int) -> list[dict[str, Any]]:
    """The consumer's meters in service, with their health and gateway."""
    return await _meters(conn, consumer_id, None, datetime.now(UTC))


async def _meters(
    conn: AsyncConnection, consumer_id: int, meter_id: int | None, now: datetime
) -> list[dict[str, Any]]:
    cursor = await conn.execute(
        "SELECT m.id, m.external_id, m.last_reading_at, m.gateway_id, g.gateway_code,"
        " g.last_seen_at AS gateway_last_seen_at,"
        " CASE WHEN m.confirmed_at IS NULL THEN 'awaiting_confirmation'"
        "      WHEN m.last_reading_at IS NULL THEN 'never_seen'"
        "      WHEN m.last_reading_at >= %s THEN 'online' ELSE 'offline' END AS health"
        " FROM meters m LEFT JOIN gateways g ON g.id = m.gateway_id"
        " WHERE m.consumer_id = %s AND m.replaced_at IS NULL AND (%s::bigint IS NULL OR m.id = %s)"
        " ORDER BY m.id",
        (now - ONLINE_WITHIN, consumer_id, meter_id, meter_id),
    )
    return await cursor.fetchall()


async def _gaps(conn: AsyncConnection, meter_id: int, now: datetime) -> list[dict[str, Any]]:
    """Stretches of the last day longer than `GAP` without an energy reading (the stretch up
    to now included)."""
    since = now - timedelta(days=1)
    cursor = await conn.execute(
        "SELECT previous AS gap_from, ts AS gap_to FROM ("
        "  SELECT ts, lag(ts, 1, %s::timestamptz) OVER (ORDER BY ts) AS previous FROM ("
        "    SELECT ts FROM readings WHERE meter_id = %s AND quantity = %s"
        "      AND ts > %s AND ts <= %s"
        "    UNION ALL SELECT %s::timestamptz) edges"
        ") pairs WHERE ts - previous > %s ORDER BY previous",
        (since, meter_id, ENERGY, since, now, now, GAP),
    )
    return [
        {
            "from": row["gap_from"].isoformat(),
            "to": row["gap_to"].isoformat(),
            "minutes": int((row["gap_to"] - row["gap_from"]).total_seconds() // 60),
        }
        for row in await cursor.fetchall()
    ]


async def _alerts(
    conn: AsyncConnection, meter: dict[str, Any], *, open_only: bool, since: datetime
) -> list[dict[str, Any]]:
    cursor = await conn.execute(
        "SELECT id, kind, severity, state, message, opened_at FROM alerts"
        " WHERE (meter_id = %s OR (meter_id IS NULL AND gateway_id = %s))"
        " AND (state <> 'resolved' OR (NOT %s AND last_seen_at >= %s))"
        " ORDER BY opened_at DESC LIMIT 10",
        (meter["id"], meter["gateway_id"], open_only, since),
    )
    return [
        {
            "id": row["id"],
            "kind": row["kind"],
            "severity": row["severity"],
            "state": row["state"],
            "message": row["message"],
            "opened_at": row["opened_at"].isoformat(),
        }
        for row in await cursor.fetchall()
    ]


def _meter_facts(meter: dict[str, Any]) -> dict[str, Any]:
    return {
        "meter_id": meter["id"],
        "external_id": meter["external_id"],
        "health": meter["health"],
        "last_reading_at": meter["last_reading_at"].isoformat()
        if meter["last_reading_at"]
        else None,
        "gateway": meter["gateway_code"],
        "gateway_last_seen_at": meter["gateway_last_seen_at"].isoformat()
        if meter["gateway_last_seen_at"]
        else None,
    }


def _when(moment: str | None, zone: str) -> str:
    return local_time(datetime.fromisoformat(moment), zone) if moment else "never"


async def _outage(
    conn: AsyncConnection, consumer: dict, consumer_id: int, meter_id: int | None, now: datetime
) -> Draft | None:
    meters = await _meters(conn, consumer_id, meter_id, now)
    if not meters:
        return None
    zone = consumer["time_zone"]
    facts: dict[str, Any] = {"kind": "outage", "meters": []}
    lines = [f"Dear {consumer['name']},", ""]
    for meter in meters:
        gaps = await _gaps(conn, meter["id"], now)
        alerts = await _alerts(conn, meter, open_only=True, since=now - timedelta(days=30))
        facts["meters"].append(_meter_facts(meter) | {"gaps": gaps, "open_alerts": alerts})
        last = _when(facts["meters"][-1]["last_reading_at"], zone)
        lines.append(f"Your meter {meter['external_id']} last reported at {last}.")
        if gaps:
            times = "once" if len(gaps) == 1 else f"{len(gaps)} times"
            lines.append(f"In the last 24 hours its readings stopped {times}:")
            for gap in gaps:
                lines.append(
                    f"- from {_when(gap['from'], zone)} to {_when(gap['to'], zone)}"
                    f" ({gap['minutes']} min)"
                )
        else:
            lines.append("In the last 24 hours its readings arrived without a break.")
        for alert in alerts:
            lines.append(
                f"Open alert: {alert['kind'].replace('_', ' ')} ({alert['severity']}), since"
                f" {_when(alert['opened_at'], zone)}."
            )
        lines.append("")
    stopped = any(m["health"] != "online" for m in facts["meters"])
    lines.append(
        "Our records show your supply may be interrupted; the field team has these details."
        if stopped or any(m["open_alerts"] for m in facts["meters"])
        else "Our records show your meter is receiving supply now. If you still have no power,"
        " the fault may be inside the premises: please check your main switch and reply here."
    )
    return Draft("\n".join(lines), facts)


async def _meter_fault(
    conn: AsyncConnection, consumer: dict, consumer_id: int, meter_id: int | None, now: datetime
) -> Draft | None:
    meters = await _meters(conn, consumer_id, meter_id, now)
    if not meters:
        return None
    zone = consumer["time_zone"]
    facts: dict[str, Any] = {"kind": "meter_fault", "meters": []}
    lines = [f"Dear {consumer['name']},", ""]
    for meter in meters:
        alerts = await _alerts(conn, meter, open_only=False, since=now - timedelta(days=30))
        facts["meters"].append(_meter_facts(meter) | {"recent_alerts": alerts})
        health = meter["health"].replace("_", " ")
        last = _when(facts["meters"][-1]["last_reading_at"], zone)
        lines.append(f"Your meter {meter['external_id']} is {health}; it last reported at {last}.")
        if alerts:
            lines.append("Its checks in the last 30 days found:")
            for alert in alerts:
                lines.append(
                    f"- {alert['kind'].replace('_', ' ')} ({alert['severity']}, {alert['state']}),"
                    f" {_when(alert['opened_at'], zone)}"
                )
        else:
            lines.append("Its checks in the last 30 days found nothing wrong.")
        lines.append("")
    lines.append(
        "A member of our team will review this and arrange a visit if the meter needs one."
    )
    return Draft("\n".join(lines), facts)
