"""Scoped reads and writes of fleet tables: every list, fetch and change passes
`cloud.scope.scope_filter`, and every write is audited in its own transaction.

Tables, columns and sort keys come from fixed whitelists here; only values are parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, errors, sql

from ..access import Entity, Principal, scope_filter
from ..errors import Conflict, InvalidInput, NotFound
from . import audit


@dataclass(frozen=True)
class Table:
    name: str
    entity: Entity
    columns: tuple[str, ...]  # what is returned
    filters: tuple[str, ...]  # what may be filtered on (equality)
    sorts: tuple[str, ...]  # what may be sorted on


STATES = Table("states", "state", ("id", "code", "name", "created_at"), (), ("id", "code", "name"))
BOARDS = Table(
    "boards",
    "board",
    ("id", "state_id", "code", "name", "time_zone", "currency", "capacity_kw"),
    ("state_id",),
    ("id", "code", "name"),
)
CONSUMERS = Table(
    "consumers",
    "consumer",
    (
        "id",
        "board_id",
        "account_no",
        "name",
        "category",
        "sanctioned_load_kw",
        "email",
        "phone",
        "created_at",
        "generation_kind",
        "generation_kwp",
        "generation_since",
        "generation_meter_id",
    ),
    ("board_id", "category", "account_no"),
    ("id", "name", "account_no", "created_at"),
)
METERS = Table(
    "meters",
    "meter",
    (
        "id",
        "board_id",
        "external_id",
        "consumer_id",
        "gateway_id",
        "model",
        "protocol",
        "phases",
        "ct_ratio",
        "installed_at",
        "replaced_at",
        "replaces_id",
        "confirmed_at",
        "consumer_since",
        "created_at",
        "status",
        "status_reason",
        "status_since",
    ),
    ("board_id", "consumer_id", "gateway_id", "model", "confirmed", "status"),
    ("id", "external_id", "created_at"),
)
GATEWAYS = Table(
    "gateways",
    "gateway",
    (
        "id",
        "board_id",
        "gateway_code",
        "status",
        "enrolled_at",
        "last_seen_at",
        "acked_through_seq",
        "backlog_readings",
        "oldest_unsent_at",
        "clock_synced",
        "clock_offset_s",
        "software_version",
        "bus_stats",
    ),
    ("board_id", "status"),
    ("id", "gateway_code", "last_seen_at"),
)


TARIFFS = Table(
    "tariffs",
    "tariff",
    ("id", "board_id", "category", "name", "created_at"),
    ("board_id", "category"),
    ("id", "category", "name"),
)
INVOICES = Table(
    "invoices",
    "invoice",
    (
        "id",
        "board_id",
        "consumer_id",
        "period_start",
        "period_end",
        "version",
        "previous_id",
        "status",
        "currency",
        "units",
        "total",
        "amount_due",
        "paid",
        "estimated",
        "due_date",
        "details",
        "issued_at",
        "viewed_at",
        "created_at",
    ),
    ("board_id", "consumer_id", "status", "period_start", "estimated"),
    ("id", "period_start", "due_date", "created_at", "total"),
)
ALERTS = Table(
    "alerts",
    "alert",
    (
        "id",
        "board_id",
        "gateway_id",
        "meter_id",
        "subject",
        "kind",
        "severity",
        "source",
        "state",
        "message",
        "details",
        "opened_at",
        "last_seen_at",
        "occurrences",
        "acknowledged_by",
        "acknowledged_at",
        "acknowledge_note",
        "resolved_by",
        "resolved_at",
        "resolve_note",
    ),
    ("board_id", "gateway_id", "meter_id", "kind", "severity", "source", "state"),
    ("id", "opened_at", "last_seen_at", "severity"),
)
REPORTS = Table(
    "reports",
    "report",
    (
        "id",
        "board_id",
        "state_id",
        "kind",
        "format",
        "granularity",
        "period_start",
        "period_end",
        "status",
        "size_bytes",
        "rows",
        "error",
        "created_by",
        "created_at",
        "finished_at",
        "format_id",
        "schedule_id",
    ),
    ("board_id", "state_id", "kind", "format", "status", "format_id", "schedule_id"),
    ("id", "created_at", "period_start"),
)
REPORT_FORMATS = Table(
    "report_formats",
    "report_format",
    (
        "id",
        "board_id",
        "name",
        "kind",
        "file_type",
        "columns",
        "group_by",
        "sort_by",
        "sort_desc",
        "created_by",
        "created_at",
        "updated_at",
    ),
    ("board_id", "kind"),
    ("id", "name", "created_at"),
)
REPORT_SCHEDULES = Table(
    "report_schedules",
    "report_schedule",
    (
        "id",
        "board_id",
        "name",
        "format_id",
        "kind",
        "file_type",
        "cadence",
        "weekday",
        "at_time",
        "user_ids",
        "emails",
        "enabled",
        "effective_from",
        "created_by",
        "created_at",
        "updated_at",
    ),
    ("board_id", "format_id"),
    ("id", "name", "created_at"),
)
BILLING_RUNS = Table(
    "billing_runs",
    "billing_run",
    (
        "id",
        "board_id",
        "period_start",
        "period_end",
        "status",
        "consumers",
        "measured",
        "created",
        "revised",
        "unchanged",
        "estimated",
        "failed",
        "unmeasured",
        "errors",
        "actor",
        "scheduled",
        "created_at",
        "finished_at",
    ),
    ("board_id", "status", "period_start"),
    ("id", "created_at", "period_start"),
)
USERS = Table(
    "users",
    "user",
    (
        "id",
        "email",
        "name",
        "role",
        "state_id",
        "board_id",
        "consumer_id",
        "active",
        "created_at",
        "password_set_at",
    ),
    ("role", "state_id", "board_id", "consumer_id", "active"),
    ("id", "email", "name", "created_at"),
)


# filters that ask whether a column is set, not what it holds
PRESENCE_FILTERS = {"confirmed": "confirmed_at"}


def _columns(table: Table) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier("t", c) for c in table.columns)


async def list_rows(
    conn: AsyncConnection,
    principal: Principal,
    table: Table,
    *,
    filters: dict[str, Any],
    sort: str,
    descending: bool,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """One page of rows in scope, and how many there are in all."""
    condition, params = scope_filter(principal, table.entity, "t")
    clauses = [condition]
    for column, value in filters.items():
        if column not in table.filters:
            raise ValueError(f"{column} is not a filter of {table.name}")
        if value is None:
            continue
        if column in PRESENCE_FILTERS:  # confirmed=true: confirmed_at IS NOT NULL
            clauses.append(
                sql.SQL("{} IS {} NULL").format(
                    sql.Identifier("t", PRESENCE_FILTERS[column]),
                    sql.SQL("NOT" if value else ""),
                )
            )
        else:
            clauses.append(sql.SQL("{} = %s").format(sql.Identifier("t", column)))
            params.append(value)
    if sort not in table.sorts:
        raise ValueError(f"{sort} is not a sort key of {table.name}")
    where = sql.SQL(" AND ").join(clauses)
    query = sql.SQL(
        "SELECT {cols}, count(*) OVER () AS _rows_in_all FROM {table} t WHERE {where}"
        " ORDER BY {sort} {direction}, t.id LIMIT %s OFFSET %s"
    ).format(
        cols=_columns(table),
        table=sql.Identifier(table.name),
        where=where,
        sort=sql.Identifier("t", sort),
        direction=sql.SQL("DESC" if descending else "ASC"),
    )
    cursor = await conn.execute(query, [*params, limit, offset])
    rows = await cursor.fetchall()
    total = rows[0]["_rows_in_all"] if rows else 0
    if not rows and offset:
        count = await conn.execute(
            sql.SQL("SELECT count(*) AS n FROM {table} t WHERE {where}").format(
                table=sql.Identifier(table.name), where=where
            ),
            params,
        )
        total = (await count.fetchone())["n"]
    return [{k: v for k, v in row.items() if k != "_rows_in_all"} for row in rows], total


async def get_row(
    conn: AsyncConnection,
    principal: Principal,
    table: Table,
    row_id: int,
    *,
    for_update: bool = False,
) -> dict[str, Any]:
    """One row by id if it is in scope; NotFound otherwise (existence is not disclosed)."""
    condition, params = scope_filter(principal, table.entity, "t")
    query = sql.SQL("SELECT {cols} FROM {table} t WHERE t.id = %s AND {where}{lock}").format(
        cols=_columns(table),
        table=sql.Identifier(table.name),
        where=condition,
        lock=sql.SQL(" FOR UPDATE" if for_update else ""),
    )
    cursor = await conn.execute(query, [row_id, *params])
    row = await cursor.fetchone()
    if row is None:
        raise NotFound(f"no {table.entity} {row_id}")
    return row


def actor(principal: Principal) -> str:
    return f"user:{principal.user_id}"


async def update_row(
    conn: AsyncConnection,
    principal: Principal,
    table: Table,
    row_id: int,
    changes: dict[str, Any],
    *,
    action: str = "update",
) -> dict[str, Any]:
    """Change whitelisted columns of a row in scope; audited with before and after."""
    async with conn.transaction():
        before = await get_row(conn, principal, table, row_id, for_update=True)
        unknown = set(changes) - set(table.columns)
        if unknown:
            raise ValueError(f"{sorted(unknown)} are not columns of {table.name}")
        if changes:
            assignments = sql.SQL(", ").join(
                sql.SQL("{} = %s").format(sql.Identifier(column)) for column in changes
            )
            try:
                await conn.execute(
                    sql.SQL("UPDATE {} SET {} WHERE id = %s").format(
                        sql.Identifier(table.name), assignments
                    ),
                    [*changes.values(), row_id],
                )
            except errors.UniqueViolation as exc:
                raise Conflict(f"another {table.entity} already has these values") from exc
            except errors.CheckViolation as exc:
                fields = ", ".join(changes)
                raise InvalidInput(
                    f"the change of {fields} breaks a rule of {table.name}"
                    f" ({exc.diag.constraint_name}): a role needs its scope (state, board or"
                    " consumer) and values must be in range"
                    if table.name == "users"
                    else f"the change of {fields} breaks a rule of {table.name}"
                    f" ({exc.diag.constraint_name})",
                    errors=[(field, "breaks a rule") for field in changes],
                ) from exc
        after = await get_row(conn, principal, table, row_id)
        await audit.record(
            conn,
            actor=actor(principal),
            action=action,
            entity=table.entity,
            entity_id=row_id,
            before=before,
            after=after,
        )
    return after


async def delete_row(
    conn: AsyncConnection, principal: Principal, table: Table, row_id: int
) -> dict[str, Any]:
    """Delete a row in scope; refused (409) while other rows still refer to it."""
    async with conn.transaction():
        before = await get_row(conn, principal, table, row_id, for_update=True)
        try:
            async with conn.transaction():
                await conn.execute(
                    sql.SQL("DELETE FROM {} WHERE id = %s").format(sql.Identifier(table.name)),
                    [row_id],
                )
        except errors.ForeignKeyViolation as exc:
            raise Conflict(
                f"{table.entity} {row_id} is still referred to by its"
                f" {(exc.diag.table_name or 'rows').replace('_', ' ')};"
                " remove or reassign those first"
            ) from exc
        await audit.record(
            conn,
            actor=actor(principal),
            action="delete",
            entity=table.entity,
            entity_id=row_id,
            before=before,
        )
    return before
