"""Meters: registered, assigned to a consumer and a gateway, and replaced — all inside scope.

A meter belongs to one board. Its consumer and its gateway must be of the same board (checked
here, inside the caller's scope, so nothing outside it can be named). Replacing a meter closes
the old one (`replaced_at`; it stays the consumer's for the time before), opens the new one with
`replaces_id` pointing back, and moves the consumer and gateway over: billing follows the chain
to join the two registers.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection, errors

from ..access import Principal
from ..errors import Conflict, InvalidInput, NotFound
from . import audit
from .scoped import BOARDS, CONSUMERS, GATEWAYS, METERS, actor, delete_row, get_row, update_row

STATUSES = ("active", "inactive", "under_maintenance", "faulty")
# a meter in one of these during a period is not measured: its consumer's bill is estimated
NOT_MEASURED = ("under_maintenance", "faulty")
_FIELDS = ("external_id", "model", "protocol", "phases", "ct_ratio", "installed_at")


async def create(
    conn: AsyncConnection, principal: Principal, *, board_id: int, **fields: Any
) -> dict[str, Any]:
    async with conn.transaction():
        await get_row(conn, principal, BOARDS, board_id)  # the board must be in scope
        return await _insert(conn, principal, board_id, fields, replaces=None)


async def _insert(
    conn: AsyncConnection,
    principal: Principal,
    board_id: int,
    fields: dict[str, Any],
    *,
    replaces: dict[str, Any] | None,
) -> dict[str, Any]:
    values = {k: fields.get(k) for k in _FIELDS if fields.get(k) is not None}
    values["board_id"] = board_id
    values["confirmed_at"] = datetime.now(UTC)  # registered by an admin: nothing to confirm
    if replaces is not None:
        values |= {
            "replaces_id": replaces["id"],
            "consumer_id": replaces["consumer_id"],
            "gateway_id": replaces["gateway_id"],
        }
    columns = ", ".join(values)  # keys from the fixed _FIELDS list above
    placeholders = ", ".join(["%s"] * len(values))
    try:
        async with conn.transaction():
            cursor = await conn.execute(
                f"INSERT INTO meters ({columns}) VALUES ({placeholders}) RETURNING id",  # noqa: S608
                list(values.values()),
            )
    except errors.UniqueViolation as exc:
        raise Conflict(f"meter {values['external_id']} already exists on this board") from exc
    new_id = (await cursor.fetchone())["id"]
    row = await get_row(conn, principal, METERS, new_id)
    await audit.record(
        conn, actor=actor(principal), action="create", entity="meter", entity_id=new_id, after=row
    )
    return row


async def update(
    conn: AsyncConnection, principal: Principal, meter_id: int, changes: dict[str, Any]
) -> dict[str, Any]:
    return await update_row(conn, principal, METERS, meter_id, changes)


async def set_status(
    conn: AsyncConnection, principal: Principal, meter_id: int, *, status: str, reason: str
) -> dict[str, Any]:
    """Put the meter in `status` (one of `STATUSES`) for `reason`, from now: recorded in
    `meter_status_changes` (which billing reads for any period) and audited. The same status
    with another reason updates the reason; with the same reason it is a conflict."""
    if status not in STATUSES:
        raise InvalidInput(f"no meter status {status!r}", errors=[("status", status)])
    async with conn.transaction():
        meter = await get_row(conn, principal, METERS, meter_id, for_update=True)
        if meter["replaced_at"] is not None:
            raise Conflict(f"meter {meter_id} was replaced; its replacement has a status")
        if (meter["status"], meter["status_reason"]) == (status, reason):
            raise Conflict(
                f"meter {meter_id} is already {status.replace('_', ' ')} for that reason"
            )
        cursor = await conn.execute(
            "INSERT INTO meter_status_changes (meter_id, status, reason) VALUES (%s, %s, %s)"
            " RETURNING at",
            (meter_id, status, reason),
        )
        changes: dict[str, Any] = {"status": status, "status_reason": reason}
        if meter["status"] != status:  # a new reason for the same status keeps its start
            changes["status_since"] = (await cursor.fetchone())["at"]
        return await update_row(conn, principal, METERS, meter_id, changes, action="status")


async def statuses_during(
    conn: AsyncConnection, meter_ids: list[int], start: datetime, end: datetime
) -> dict[int, set[str]]:
    """Every status each meter had at some moment of [start, end): the one in force at `start`
    (active if it never changed) and each it was given before `end`."""
    cursor = await conn.execute(
        """
        SELECT m.id, coalesce((SELECT c.status FROM meter_status_changes c
                               WHERE c.meter_id = m.id AND c.at <= %(start)s
                               ORDER BY c.at DESC, c.id DESC LIMIT 1), 'active') AS status
        FROM meters m WHERE m.id = ANY(%(ids)s)
        UNION
        SELECT c.meter_id, c.status FROM meter_status_changes c
        WHERE c.meter_id = ANY(%(ids)s) AND c.at > %(start)s AND c.at < %(end)s
        """,
        {"ids": meter_ids, "start": start, "end": end},
    )
    found: dict[int, set[str]] = {}
    for row in await cursor.fetchall():
        found.setdefault(row["id"], set()).add(row["status"])
    return found


async def assign(
    conn: AsyncConnection, principal: Principal, meter_id: int, changes: dict[str, int | None]
) -> dict[str, Any]:
    """Set (or clear, with null) the meter's consumer and/or gateway, both of its board."""
    async with conn.transaction():
        meter = await get_row(conn, principal, METERS, meter_id, for_update=True)
        if meter["replaced_at"] is not None:
            raise Conflict(f"meter {meter_id} was replaced; assign its replacement instead")
        for field, table in (("consumer_id", CONSUMERS), ("gateway_id", GATEWAYS)):
            target = changes.get(field)
            if target is None:
                continue
            row = await get_row(conn, principal, table, target)  # 404 outside scope
            if row["board_id"] != meter["board_id"]:
                raise InvalidInput(
                    f"{table.entity} {target} is on another board than meter {meter_id}",
                    errors=[(field, "another board")],
                )
        if changes.get("consumer_id") is not None:
            cursor = await conn.execute(
                "SELECT account_no FROM consumers WHERE generation_meter_id = %s", (meter_id,)
            )
            generating = await cursor.fetchone()
            if generating is not None:
                raise InvalidInput(
                    f"meter {meter['external_id']} measures the generation of"
                    f" {generating['account_no']}; a generation meter is billed to no consumer"
                    " (take it off the generation source first)",
                    errors=[("consumer_id", "generation meter")],
                )
        if meter["confirmed_at"] is None:  # assigning a discovered meter confirms it
            changes = {**changes, "confirmed_at": datetime.now(UTC)}
            moved = changes.get("gateway_id", meter["gateway_id"]) != meter["gateway_id"]
            if moved and meter["gateway_id"] is not None:
                await _quarantine(conn, principal, meter, meter["gateway_id"])
        if "consumer_id" in changes and changes["consumer_id"] != meter["consumer_id"]:
            # the new consumer sees the meter's readings from now on, not the last occupant's
            changes = {**changes, "consumer_since": datetime.now(UTC)}
        return await update_row(conn, principal, METERS, meter_id, changes, action="assign")


async def _quarantine(
    conn: AsyncConnection, principal: Principal, meter: dict[str, Any], gateway_id: int
) -> None:
    """A gateway reported a meter the cloud did not know, and an admin then gave the meter to
    another gateway: what the first one wrote is not trusted (a gateway could claim a serial
    number before the meter is installed). Its readings are kept but marked suspect, which
    billing leaves out."""
    cursor = await conn.execute(
        "UPDATE readings SET quality = 'suspect' WHERE meter_id = %s AND gateway_id = %s"
        " AND quality <> 'suspect'",
        (meter["id"], gateway_id),
    )
    await audit.record(
        conn,
        actor=actor(principal),
        action="quarantine",
        entity="meter",
        entity_id=meter["id"],
        after={"gateway_id": gateway_id, "readings": cursor.rowcount},
    )


async def confirm(conn: AsyncConnection, principal: Principal, meter_id: int) -> dict[str, Any]:
    """Accept a meter a gateway discovered (one the cloud did not know) as the board's."""
    async with conn.transaction():
        meter = await get_row(conn, principal, METERS, meter_id, for_update=True)
        if meter["confirmed_at"] is not None:
            raise Conflict(f"meter {meter_id} was confirmed at {meter['confirmed_at']:%Y-%m-%d}")
        return await update_row(
            conn,
            principal,
            METERS,
            meter_id,
            {"confirmed_at": datetime.now(UTC)},
            action="confirm",
        )


async def replace(
    conn: AsyncConnection,
    principal: Principal,
    meter_id: int,
    *,
    replaced_at: datetime,
    **fields: Any,
) -> dict[str, Any]:
    """Close meter `meter_id` at `replaced_at` and open its successor; returns the new meter."""
    async with conn.transaction():
        old = await get_row(conn, principal, METERS, meter_id, for_update=True)
        if old["replaced_at"] is not None:
            raise Conflict(f"meter {meter_id} was already replaced at {old['replaced_at']}")
        if old["installed_at"] is not None and replaced_at <= old["installed_at"]:
            raise InvalidInput(
                "a meter cannot be replaced before it was installed",
                errors=[("replaced_at", str(replaced_at))],
            )
        # the old meter stays with its gateway: readings it took before the swap may still
        # be on their way (a gateway offline for weeks) and must be accepted for its last bill
        await update_row(
            conn, principal, METERS, meter_id, {"replaced_at": replaced_at}, action="replace"
        )
        if fields.get("installed_at") is None:
            fields["installed_at"] = replaced_at
        for inherited in ("model", "protocol", "phases", "ct_ratio"):
            if fields.get(inherited) is None:
                fields[inherited] = old[inherited]
        return await _insert(conn, principal, old["board_id"], fields, replaces=old)


async def history(conn: AsyncConnection, principal: Principal, meter_id: int) -> list[dict]:
    """The replacement chain through this meter, oldest first (links outside scope left out)."""
    await get_row(conn, principal, METERS, meter_id)
    cursor = await conn.execute(
        """
        WITH RECURSIVE back AS (
            SELECT id, replaces_id FROM meters WHERE id = %(id)s
            UNION SELECT m.id, m.replaces_id FROM meters m JOIN back ON m.id = back.replaces_id
        ), forward AS (
            SELECT id FROM meters WHERE id = %(id)s
            UNION SELECT m.id FROM meters m JOIN forward ON m.replaces_id = forward.id
        )
        SELECT id FROM back UNION SELECT id FROM forward
        """,
        {"id": meter_id},
    )
    ids = [row["id"] for row in await cursor.fetchall()]
    rows = {}
    for linked in ids:
        with contextlib.suppress(NotFound):
            rows[linked] = await get_row(conn, principal, METERS, linked)
    successor = {m["replaces_id"]: m for m in rows.values() if m["replaces_id"] in rows}
    chain = [next(m for m in rows.values() if m["replaces_id"] not in rows)]
    while chain[-1]["id"] in successor:
        chain.append(successor[chain[-1]["id"]])
    return chain


async def delete(conn: AsyncConnection, principal: Principal, meter_id: int) -> dict[str, Any]:
    """Delete a meter registered by mistake; one with readings is kept (replace it instead)."""
    async with conn.transaction():
        await get_row(conn, principal, METERS, meter_id, for_update=True)
        cursor = await conn.execute(
            "SELECT 1 FROM readings WHERE meter_id = %s LIMIT 1", (meter_id,)
        )
        if await cursor.fetchone() is not None:
            raise Conflict(f"meter {meter_id} has readings; replace it instead of deleting it")
        return await delete_row(conn, principal, METERS, meter_id)


async def events(conn: AsyncConnection, principal: Principal, meter_id: int) -> list[dict]:
    """What happened to the meter and the meters of its replacement chain, oldest first:
    registered, discovered, assigned (to whom), confirmed, replaced — from the audit log."""
    chain = await history(conn, principal, meter_id)
    cursor = await conn.execute(
        "SELECT a.at, a.action, a.entity_id::bigint AS meter_id, a.before, a.after"
        " FROM audit_log a WHERE a.entity = 'meter' AND a.entity_id = ANY(%s)"
        " ORDER BY a.at, a.id",
        ([str(m["id"]) for m in chain],),
    )
    rows = await cursor.fetchall()
    names = {m["id"]: m["external_id"] for m in chain}
    consumers = {
        (row["after"] or {}).get("consumer_id") for row in rows if row["action"] == "assign"
    } - {None}
    cursor = await conn.execute(
        "SELECT id, name, account_no FROM consumers WHERE id = ANY(%s)", (list(consumers),)
    )
    consumer_names = {c["id"]: f"{c['name']} ({c['account_no']})" for c in await cursor.fetchall()}
    out = []
    for row in rows:
        after = row["after"] or {}
        out.append(
            {
                "at": row["at"],
                "action": row["action"],
                "meter": names.get(row["meter_id"], str(row["meter_id"])),
                "consumer": consumer_names.get(after.get("consumer_id")),
                "gateway_id": after.get("gateway_id"),
            }
        )
    return out
