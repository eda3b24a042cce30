"""Tariffs of a board, one per consumer category, and their effective-dated versions.

A version's validity is [effective_from, effective_to); versions of one tariff never overlap
(checked under a lock on the tariff). A version a finalised bill used is locked: it is never
changed again — a new version is added instead.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection, errors

from ..access import Principal
from ..billing.engine import TariffVersion, local_midnight
from ..billing.tariff import TariffSpec
from ..errors import Conflict, InvalidInput, NotFound
from ..formats import local_date
from . import audit, cycle_reads, notifications, tariff_overrides
from .scoped import BOARDS, CONSUMERS, TARIFFS, actor, get_row

COMING_DAYS = 31  # how far ahead a consumer is told of an override set for their category


def _override_shown(override: tariff_overrides.TariffOverride) -> dict[str, Any]:
    """An override as the consumer's tariff panel says it: its last day, not the day after."""
    return {
        "kind": override.kind,
        "value": override.value,
        "from": override.start,
        "until": override.end - timedelta(days=1),
        "reason": override.reason,
    }


async def create(
    conn: AsyncConnection, principal: Principal, *, board_id: int, category: str, name: str
) -> dict[str, Any]:
    async with conn.transaction():
        await get_row(conn, principal, BOARDS, board_id)
        try:
            async with conn.transaction():
                cursor = await conn.execute(
                    "INSERT INTO tariffs (board_id, category, name) VALUES (%s, %s, %s)"
                    " RETURNING id",
                    (board_id, category, name),
                )
        except errors.UniqueViolation as exc:
            raise Conflict(f"the board already has a tariff for category {category}") from exc
        row = await get_row(conn, principal, TARIFFS, (await cursor.fetchone())["id"])
        await audit.record(
            conn,
            actor=actor(principal),
            action="create",
            entity="tariff",
            entity_id=row["id"],
            after=row,
        )
    return row


def _version_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "tariff_id": row["tariff_id"],
        "effective_from": row["effective_from"],
        "effective_to": row["effective_to"],
        "spec": row["spec"],
        "locked": row["locked_at"] is not None,
    }


async def versions(conn: AsyncConnection, principal: Principal, tariff_id: int) -> list[dict]:
    await get_row(conn, principal, TARIFFS, tariff_id)
    cursor = await conn.execute(
        "SELECT * FROM tariff_versions WHERE tariff_id = %s ORDER BY effective_from", (tariff_id,)
    )
    return [_version_row(r) for r in await cursor.fetchall()]


async def _check_overlap(
    conn: AsyncConnection, tariff_id: int, start: date, end: date | None, skip: int | None
) -> None:
    cursor = await conn.execute(
        "SELECT id, effective_from, effective_to FROM tariff_versions WHERE tariff_id = %s"
        " AND id IS DISTINCT FROM %s"
        " AND daterange(effective_from, effective_to) && daterange(%s, %s)",
        (tariff_id, skip, start, end),
    )
    clash = await cursor.fetchone()
    if clash is not None:
        until = clash["effective_to"] or "open end"
        raise InvalidInput(
            f"the version overlaps version {clash['id']} ({clash['effective_from']} to {until})",
            errors=[("effective_from", start.isoformat())],
        )


async def add_version(
    conn: AsyncConnection,
    principal: Principal,
    tariff_id: int,
    *,
    effective_from: date,
    effective_to: date | None,
    spec: TariffSpec,
    base_url: str,
) -> dict[str, Any]:
    """A new version; the consumers of the tariff's category hear of it if it applies from
    today or later (a version for the past corrects history, it changes no one's rates)."""
    if effective_to is not None and effective_to <= effective_from:
        raise InvalidInput(
            "effective_to must be after effective_from",
            errors=[("effective_to", effective_to.isoformat())],
        )
    async with conn.transaction():
        await get_row(conn, principal, TARIFFS, tariff_id, for_update=True)
        await _check_overlap(conn, tariff_id, effective_from, effective_to, None)
        cursor = await conn.execute(
            "INSERT INTO tariff_versions (tariff_id, effective_from, effective_to, spec)"
            " VALUES (%s, %s, %s, %s) RETURNING *",
            (tariff_id, effective_from, effective_to, spec.model_dump_json()),
        )
        row = _version_row(await cursor.fetchone())
        await audit.record(
            conn,
            actor=actor(principal),
            action="create",
            entity="tariff_version",
            entity_id=row["id"],
            after=row,
        )
        await _tell_consumers(conn, tariff_id, row, base_url)
    return row


async def _tell_consumers(
    conn: AsyncConnection, tariff_id: int, version: dict[str, Any], base_url: str
) -> None:
    cursor = await conn.execute(
        "SELECT t.board_id, t.category, t.name, b.time_zone FROM tariffs t"
        " JOIN boards b ON b.id = t.board_id WHERE t.id = %s",
        (tariff_id,),
    )
    tariff = await cursor.fetchone()
    today = datetime.now(ZoneInfo(tariff["time_zone"])).date()
    until = version["effective_to"]
    if until is not None and until <= today:
        return
    cursor = await conn.execute(
        "SELECT u.id FROM users u JOIN consumers c ON c.id = u.consumer_id"
        " WHERE c.board_id = %s AND c.category = %s AND u.active",
        (tariff["board_id"], tariff["category"]),
    )
    users = [r["id"] for r in await cursor.fetchall()]
    start = version["effective_from"]
    when = "from today" if start <= today else f"from {local_date(start)}"
    await notifications.notify(
        conn,
        users,
        notifications.Notice(
            "tariff_changed",
            f"New rates for {tariff['name']} {when}",
            f"The tariff for your category ({tariff['category']}) changes {when}. Your bills"
            " use the rates in force on each day they cover; see the rates on your home page.",
            "/dashboard/home",
            f"tariff_version:{version['id']}",
        ),
        base_url=base_url,
    )


async def update_version(
    conn: AsyncConnection,
    principal: Principal,
    tariff_id: int,
    version_id: int,
    changes: dict[str, Any],
) -> dict[str, Any]:
    """Change a version no finalised bill has used yet; a locked one answers 409."""
    async with conn.transaction():
        await get_row(conn, principal, TARIFFS, tariff_id, for_update=True)
        cursor = await conn.execute(
            "SELECT * FROM tariff_versions WHERE id = %s AND tariff_id = %s FOR UPDATE",
            (version_id, tariff_id),
        )
        before = await cursor.fetchone()
        if before is None:
            raise NotFound(f"no version {version_id} of tariff {tariff_id}")
        if before["locked_at"] is not None:
            raise Conflict(
                f"version {version_id} was used by a finalised bill and is locked;"
                " add a new version from the date the change applies"
            )
        start = changes.get("effective_from", before["effective_from"])
        end = changes.get("effective_to", before["effective_to"])
        if end is not None and end <= start:
            raise InvalidInput(
                "effective_to must be after effective_from", errors=[("effective_to", str(end))]
            )
        await _check_overlap(conn, tariff_id, start, end, version_id)
        spec = changes.get("spec")
        cursor = await conn.execute(
            "UPDATE tariff_versions SET effective_from = %s, effective_to = %s,"
            " spec = coalesce(%s, spec) WHERE id = %s RETURNING *",
            (start, end, spec.model_dump_json() if spec else None, version_id),
        )
        after = _version_row(await cursor.fetchone())
        await audit.record(
            conn,
            actor=actor(principal),
            action="update",
            entity="tariff_version",
            entity_id=version_id,
            before=_version_row(before),
            after=after,
        )
    return after


async def in_force(
    conn: AsyncConnection, board_id: int, category: str, start: date, end: date
) -> list[TariffVersion]:
    """The versions of the board's tariff for `category` that overlap [start, end)."""
    cursor = await conn.execute(
        "SELECT v.* FROM tariff_versions v JOIN tariffs t ON t.id = v.tariff_id"
        " WHERE t.board_id = %s AND t.category = %s"
        " AND daterange(v.effective_from, v.effective_to) && daterange(%s, %s)"
        " ORDER BY v.effective_from",
        (board_id, category, start, end),
    )
    rows = await cursor.fetchall()
    if not rows:
        raise InvalidInput(
            f"the board has no {category} tariff in force from {start.day} {start:%b %Y}",
            errors=[("category", category)],
        )
    return [
        TariffVersion(
            r["id"],
            r["effective_from"],
            r["effective_to"],
            TariffSpec.model_validate(
                r["spec"] if isinstance(r["spec"], dict) else json.loads(r["spec"])
            ),
        )
        for r in rows
    ]


async def lock(conn: AsyncConnection, version_ids: list[int]) -> None:
    await conn.execute(
        "UPDATE tariff_versions SET locked_at = now() WHERE id = ANY(%s) AND locked_at IS NULL",
        (version_ids,),
    )


async def holidays(conn: AsyncConnection, principal: Principal, board_id: int) -> list[dict]:
    await get_row(conn, principal, BOARDS, board_id)
    cursor = await conn.execute(
        "SELECT day, name FROM holidays WHERE board_id = %s ORDER BY day", (board_id,)
    )
    return await cursor.fetchall()


async def set_holiday(
    conn: AsyncConnection, principal: Principal, board_id: int, day: date, name: str | None
) -> None:
    """Add (name given) or remove (None) a holiday: time-of-day tariffs treat it as a weekend."""
    async with conn.transaction():
        await get_row(conn, principal, BOARDS, board_id)
        if name is None:
            await conn.execute(
                "DELETE FROM holidays WHERE board_id = %s AND day = %s", (board_id, day)
            )
        else:
            await conn.execute(
                "INSERT INTO holidays (board_id, day, name) VALUES (%s, %s, %s)"
                " ON CONFLICT (board_id, day) DO UPDATE SET name = excluded.name",
                (board_id, day, name),
            )
        await audit.record(
            conn,
            actor=actor(principal),
            action="set_holiday" if name is not None else "remove_holiday",
            entity="board",
            entity_id=board_id,
            after={"day": day, "name": name},
        )


async def for_consumer(
    conn: AsyncConnection, principal: Principal, consumer_id: int, *, now: datetime | None = None
) -> dict[str, Any]:
    """The tariff a consumer is billed under this month, as they would read it: the energy
    charge (one rate, slabs or time-of-day periods with their local hours on a weekday), fixed
    charges, taxes, how much they have used so far this month (which slab they stand in, and
    what the next one costs), the tariff's versions, a temporary override in force today, and
    the next one set to begin within `COMING_DAYS` (`override_coming`)."""
    consumer = await get_row(conn, principal, CONSUMERS, consumer_id)
    cursor = await conn.execute(
        "SELECT time_zone FROM boards WHERE id = %s", (consumer["board_id"],)
    )
    tz = ZoneInfo((await cursor.fetchone())["time_zone"])
    today = (now or datetime.now(UTC)).astimezone(tz).date()
    # the billing period holding today, as the estimate and the forecast take it
    start, end, cycle_months = await cycle_reads.period_holding(conn, consumer["board_id"], today)
    months = cycle_months if cycle_months is not None else Decimal(1)
    cursor = await conn.execute(
        "SELECT t.name FROM tariffs t WHERE t.board_id = %s AND t.category = %s",
        (consumer["board_id"], consumer["category"]),
    )
    tariff = await cursor.fetchone()
    versions = await in_force(conn, consumer["board_id"], consumer["category"], start, end)
    version = versions[-1]
    # the same measure as the projected bill (the registers), so the two never disagree
    quantity = "9.8.0" if version.spec.energy_unit == "kVAh" else "1.8.0"
    moment = now or datetime.now(UTC)
    used = await cycle_reads.used_so_far(
        conn, consumer_id, quantity, local_midnight(start, tz), moment, tz
    )
    so_far = round(used.units, 3) if used is not None else Decimal(0)
    # the schedule this period's use so far falls in, its limits as the period's
    chosen = version.spec.choose_energy(so_far, months)
    energy, scale = chosen.charge, version.spec.limit_scale(months)
    slabs = []
    if energy.slabs:
        lower = Decimal(0)
        for slab in energy.slabs:
            up_to = None if slab.up_to is None else slab.up_to * scale
            slabs.append(
                {
                    "from_kwh": lower,
                    "up_to_kwh": up_to,
                    "rate": slab.rate,
                    "current": lower <= so_far and (up_to is None or so_far < up_to),
                }
            )
            lower = up_to or lower
    current = next((i for i, slab in enumerate(slabs) if slab["current"]), None)
    following = slabs[current + 1] if current is not None and current + 1 < len(slabs) else None
    cursor = await conn.execute(
        "SELECT v.id, v.effective_from, v.effective_to FROM tariff_versions v"
        " JOIN tariffs t ON t.id = v.tariff_id WHERE t.board_id = %s AND t.category = %s"
        " ORDER BY v.effective_from DESC LIMIT 24",
        (consumer["board_id"], consumer["category"]),
    )
    history = [
        {
            **row,
            "last_day": row["effective_to"] - timedelta(days=1) if row["effective_to"] else None,
            "current": row["id"] == version.id,
        }
        for row in await cursor.fetchall()
    ]
    overrides = await tariff_overrides.in_force(
        conn, consumer["board_id"], consumer["category"], today, today + timedelta(days=1), tz
    )
    # the next one set for the coming month: a consumer hears of it before it changes the bill
    coming = [
        o
        for o in await tariff_overrides.in_force(
            conn,
            consumer["board_id"],
            consumer["category"],
            today + timedelta(days=1),
            today + timedelta(days=COMING_DAYS),
            tz,
        )
        if o.start > today
    ]
    return {
        "consumer_id": consumer_id,
        "category": consumer["category"],
        "tariff": tariff["name"] if tariff else None,
        "version_id": version.id,
        "effective_from": version.effective_from,
        "effective_to": version.effective_to,
        "currency": version.spec.currency,
        "energy_unit": version.spec.energy_unit,
        "mode": energy.mode,
        "schedule": (
            {"above_kwh": chosen.above, "up_to_kwh": chosen.up_to} if chosen.scheduled else None
        ),
        "rate": energy.rate,
        "slabs": slabs,
        "periods": energy.rates or {},
        "weekday": energy.weekday,
        "weekend": energy.weekend,
        "periods_today": hours_by_period(energy.weekday, today) if energy.weekday else {},
        "next_slab": (
            {
                "from_kwh": following["from_kwh"],
                "rate": following["rate"],
                "units_to_go": following["from_kwh"] - so_far,
            }
            if following
            else None
        ),
        "history": history,
        "override": _override_shown(overrides[0]) if overrides else None,
        "override_coming": _override_shown(coming[0]) if coming else None,
        "fixed": version.spec.fixed.model_dump(mode="json"),
        "taxes": [t.model_dump(mode="json") for t in version.spec.taxes],
        "fuel_adjustment_per_unit": version.spec.fuel_adjustment_per_unit,
        "month": {"from": start, "to": end},
        "so_far_kwh": so_far,
        "sanctioned_load_kw": consumer["sanctioned_load_kw"],
    }


def hours_by_period(weekday: list[list[str]], day: date) -> dict[str, list[str]]:
    """The local hours of a weekday of `day`'s month each time-of-day period covers, as
    ranges ("18:00-22:00"), for the consumer to read."""
    hours: dict[str, list[str]] = {}
    row = weekday[day.month - 1]
    start = 0
    for hour in range(1, 25):
        if hour == 24 or row[hour] != row[start]:
            hours.setdefault(row[start], []).append(f"{start:02d}:00-{hour:02d}:00")
            start = hour
    return hours
