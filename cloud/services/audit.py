"""The audit log: every write records who, what, which entity, before and after — in the same
transaction as the write, so there is no write without its audit row."""

from __future__ import annotations

import json
from typing import Any

from psycopg import AsyncConnection, sql

from ..access import Principal, scope_filter


async def record(
    conn: AsyncConnection,
    *,
    actor: str,
    action: str,
    entity: str,
    entity_id: object,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO audit_log (actor, action, entity, entity_id, before, after)"
        " VALUES (%s, %s, %s, %s, %s, %s)",
        (
            actor,
            action,
            entity,
            str(entity_id),
            json.dumps(before, default=str) if before is not None else None,
            json.dumps(after, default=str) if after is not None else None,
        ),
    )


async def entries(
    conn: AsyncConnection, principal: Principal, *, limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """The audit log as the caller may see it: everything for the operator; otherwise what
    the users and gateways inside the caller's scope did."""
    users, user_params = scope_filter(principal, "user", "u")
    gateways, gateway_params = scope_filter(principal, "gateway", "g")
    where = sql.SQL(
        "a.actor IN (SELECT 'user:' || u.id FROM users u WHERE {})"
        " OR a.actor IN (SELECT 'gateway:' || g.gateway_code FROM gateways g WHERE {})"
    ).format(users, gateways)
    params: list[Any] = [*user_params, *gateway_params]
    if principal.role == "SUPER_ADMIN":
        where, params = sql.SQL("TRUE"), []
    cursor = await conn.execute(
        sql.SQL(
            "SELECT a.id, a.at, a.actor, a.action, a.entity, a.entity_id,"
            " count(*) OVER () AS total FROM audit_log a WHERE {} ORDER BY a.id DESC"
            " LIMIT %s OFFSET %s"
        ).format(where),
        [*params, limit, offset],
    )
    rows = await cursor.fetchall()
    total = rows[0]["total"] if rows else 0
    return [{k: v for k, v in r.items() if k != "total"} for r in rows], total
