"""The audit log: every write records who, what, which entity, before and after — in the same
transaction as the write, so there is no write without its audit row."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

from ..access import Principal, scope_filter
from ..csv_cells import BOM, spreadsheet_safe
from ..errors import InvalidInput, NotFound


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


async def record_many(
    conn: AsyncConnection,
    *,
    actor: str,
    entity: str,
    entries: list[tuple[str, object, dict[str, Any] | None]],
) -> None:
    """`record` for many writes by one actor to one kind of entity, each entry (action,
    entity_id, after), in one pipeline: for a batch written in one statement."""
    async with conn.cursor() as cursor:
        await cursor.executemany(
            "INSERT INTO audit_log (actor, action, entity, entity_id, after)"
            " VALUES (%s, %s, %s, %s, %s)",
            [
                (
                    actor,
                    action,
                    entity,
                    str(entity_id),
                    json.dumps(after, default=str) if after is not None else None,
                )
                for action, entity_id, after in entries
            ],
        )


@dataclass(frozen=True)
class AuditFilter:
    """What to keep of the audit log: every field that is set must match. `actor` is exact
    (`user:12`), `actor_contains` a part of it; `start` and `end` bound `at` as [start, end)."""

    actor: str | None = None
    actor_contains: str | None = None
    entity: str | None = None
    entity_id: str | None = None
    action: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self) -> None:
        for name, moment in (("from", self.start), ("to", self.end)):
            if moment is not None and moment.tzinfo is None:
                raise InvalidInput(f"{name} needs a time zone (e.g. Z)", errors=[(name, "naive")])
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise InvalidInput(
                "the time range ends before it starts: 'to' must be after 'from'",
                errors=[("to", self.end.isoformat())],
            )

    def condition(self) -> tuple[sql.Composable, list[Any]]:
        parts: list[sql.Composable] = []
        params: list[Any] = []
        for column in ("actor", "entity", "entity_id", "action"):
            value = getattr(self, column)
            if value is not None:
                parts.append(sql.SQL("{} = %s").format(sql.Identifier("a", column)))
                params.append(value)
        if self.actor_contains:
            parts.append(sql.SQL("a.actor ILIKE %s ESCAPE '\\'"))
            params.append("%" + _like_escaped(self.actor_contains) + "%")
        if self.start is not None:
            parts.append(sql.SQL("a.at >= %s"))
            params.append(self.start)
        if self.end is not None:
            parts.append(sql.SQL("a.at < %s"))
            params.append(self.end)
        return sql.SQL(" AND ").join(parts or [sql.SQL("TRUE")]), params


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _where(principal: Principal, wanted: AuditFilter) -> tuple[sql.Composable, list[Any]]:
    scope, scope_params = scope_filter(principal, "audit_entry", "a")
    filters, filter_params = wanted.condition()
    return sql.SQL("({}) AND {}").format(scope, filters), [*scope_params, *filter_params]


async def entries(
    conn: AsyncConnection,
    principal: Principal,
    *,
    limit: int,
    offset: int,
    wanted: AuditFilter = AuditFilter(),
) -> tuple[list[dict[str, Any]], int]:
    """The audit log as the caller may see it (newest first): everything for the operator;
    otherwise what the users and gateways inside the caller's scope did."""
    where, params = _where(principal, wanted)
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


async def entry(conn: AsyncConnection, principal: Principal, entry_id: int) -> dict[str, Any]:
    """One entry with its before and after, and what changed between them (`changes`: each key
    whose value differs, with the old and the new value). 404 outside the caller's scope."""
    scope, params = scope_filter(principal, "audit_entry", "a")
    cursor = await conn.execute(
        sql.SQL(
            "SELECT a.id, a.at, a.actor, a.action, a.entity, a.entity_id, a.before, a.after"
            " FROM audit_log a WHERE a.id = %s AND {}"
        ).format(scope),
        [entry_id, *params],
    )
    row = await cursor.fetchone()
    if row is None:
        raise NotFound(f"no audit entry {entry_id}")
    return {**row, "changes": changes(row["before"], row["after"])}


def changes(before: Any, after: Any) -> list[dict[str, Any]]:
    """The keys whose value differs between two snapshots, sorted, each with `old` and `new`
    (None where the key is absent). Snapshots that are not objects compare whole, as key ''."""
    if not isinstance(before, dict | None) or not isinstance(after, dict | None):
        return [] if before == after else [{"key": "", "old": before, "new": after}]
    old, new = before or {}, after or {}
    return [
        {"key": key, "old": old.get(key), "new": new.get(key)}
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    ]


EXPORT_PAGE = 1000  # rows read at a time while a CSV streams
EXPORT_COLUMNS = ("id", "at_utc", "actor", "action", "entity", "entity_id", "before", "after")


async def export_rows(
    pool: AsyncConnectionPool, principal: Principal, wanted: AuditFilter
) -> AsyncIterator[list[dict[str, Any]]]:
    """The entries the filter keeps, newest first, a page at a time by keyset on the id (each
    page in its own short transaction, so a slow download holds no connection)."""
    where, params = _where(principal, wanted)
    below: int | None = None
    while True:
        async with pool.connection() as conn:
            cursor = await conn.execute(
                sql.SQL(
                    "SELECT a.id, a.at, a.actor, a.action, a.entity, a.entity_id, a.before,"
                    " a.after FROM audit_log a WHERE {} AND (%s::bigint IS NULL OR a.id < %s)"
                    " ORDER BY a.id DESC LIMIT %s"
                ).format(where),
                [*params, below, below, EXPORT_PAGE],
            )
            rows = await cursor.fetchall()
        if not rows:
            return
        yield rows
        if len(rows) < EXPORT_PAGE:
            return
        below = rows[-1]["id"]


async def export_csv(
    pool: AsyncConnectionPool, principal: Principal, wanted: AuditFilter
) -> AsyncIterator[bytes]:
    """The CSV, UTF-8 with a byte-order mark, streamed a page at a time; text cells that a
    spreadsheet would take for a formula start with an apostrophe."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    out.write(BOM)
    writer.writerow(EXPORT_COLUMNS)
    yield _drain(out)
    async for rows in export_rows(pool, principal, wanted):
        for row in rows:
            writer.writerow(
                [
                    row["id"],
                    row["at"].astimezone(UTC).isoformat().replace("+00:00", "Z"),
                    spreadsheet_safe(row["actor"]),
                    spreadsheet_safe(row["action"]),
                    spreadsheet_safe(row["entity"]),
                    spreadsheet_safe(row["entity_id"] or ""),
                    _json_cell(row["before"]),
                    _json_cell(row["after"]),
                ]
            )
        yield _drain(out)


def _json_cell(value: Any) -> str:
    if value is None:
        return ""
    return spreadsheet_safe(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str))


def _drain(out: io.StringIO) -> bytes:
    data = out.getvalue().encode("utf-8")
    out.seek(0)
    out.truncate()
    return data
