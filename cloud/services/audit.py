"""The audit log: every write records who, what, which entity, before and after — in the same
transaction as the write, so there is no write without its audit row."""

from __future__ import annotations

import json
from typing import Any

from psycopg import AsyncConnection


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
