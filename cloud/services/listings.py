"""Lists as people read them: names instead of ids (a meter's consumer and gateway, an alert's
meter and consumer, an invoice's consumer), searchable, filtered, sorted and paged, inside the
caller's scope. The console's tables and their CSV downloads read these.

Sort keys and filters come from fixed whitelists; a search is a case-insensitive substring of the
names a person would type (a meter's id or model, a consumer's name or account number).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection, sql

from ..access import Principal, scope_filter

ONLINE_WITHIN = timedelta(minutes=30)
GATEWAY_SILENT = timedelta(minutes=15)
MAX_PAGE = 10_000  # the largest page: a CSV download


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    total: int


def _like(search: str | None) -> str | None:
    if not search:
        return None
    return "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _order(sort: str, allowed: dict[str, str], descending: bool) -> sql.Composable:
    column = allowed.get(sort, next(iter(allowed.values())))
    direction = "DESC NULLS LAST" if descending else "ASC NULLS FIRST"
    return sql.SQL("ORDER BY {} {}, id").format(sql.Identifier(column), sql.SQL(direction))


class _Query:
    """A SELECT whose rows get filtered, ordered and paged; parameters are positional, in the
    order their placeholders appear."""

    def __init__(self, select: sql.Composable, params: list[Any]) -> None:
        self.select, self.params = select, list(params)
        self.clauses: list[sql.Composable] = [sql.SQL("TRUE")]
        self.values: list[Any] = []

    def where(self, clause: str, *values: Any) -> None:
        self.clauses.append(sql.SQL(clause))
        self.values += values

    def equal(self, column: str, value: Any) -> None:
        if value is not None and value != "":
            self.clauses.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            self.values.append(value)

    def search(self, text: str | None, *columns: str) -> None:
        pattern = _like(text)
        if pattern is not None:
            self.clauses.append(
                sql.SQL("({})").format(
                    sql.SQL(" OR ").join(
                        sql.SQL("{} ILIKE %s").format(sql.Identifier(c)) for c in columns
                    )
                )
            )
            self.values += [pattern] * len(columns)

    async def page(
        self, conn: AsyncConnection, order: sql.Composable, limit: int, offset: int
    ) -> Page:
        query = sql.SQL(
            "SELECT *, count(*) OVER () AS _total FROM ({select}) x WHERE {where} {order}"
            " LIMIT %s OFFSET %s"
        ).format(select=self.select, where=sql.SQL(" AND ").join(self.clauses), order=order)
        cursor = await conn.execute(
            query, [*self.params, *self.values, min(limit, MAX_PAGE), offset]
        )
        rows = await cursor.fetchall()
        total = rows[0]["_total"] if rows else 0
        if not rows and offset:
            return Page([], await self._count(conn))
        return Page([{k: v for k, v in r.items() if k != "_total"} for r in rows], total)

    async def _count(self, conn: AsyncConnection) -> int:
        cursor = await conn.execute(
            sql.SQL("SELECT count(*) AS n FROM ({}) x WHERE {}").format(
                self.select, sql.SQL(" AND ").join(self.clauses)
            ),
            [*self.params, *self.values],
        )
        return (await cursor.fetchone())["n"]


METER_SORTS = {
    "meter": "external_id",
    "consumer": "consumer_name",
    "gateway": "gateway_code",
    "last_reading": "last_reading_at",
    "model": "model",
}
HEALTHS = ("online", "offline", "never_seen", "awaiting_confirmation", "replaced")


async def meters(
    conn: AsyncConnection,
    principal: Principal,
    *,
    board_id: int | None = None,
    health: str | None = None,
    status: str | None = None,
    search: str | None = None,
    sort: str = "meter",
    descending: bool = False,
    limit: int = 50,
    offset: int = 0,
    now: datetime | None = None,
) -> Page:
    scope, scope_params = scope_filter(principal, "meter", "m")
    query = _Query(
        sql.SQL(
            """
            SELECT m.id, m.board_id, m.external_id, m.model, m.protocol, m.phases, m.ct_ratio,
                   m.installed_at, m.replaced_at, m.confirmed_at, m.last_reading_at,
                   m.status, m.status_reason, m.consumer_id, m.gateway_id,
                   c.name AS consumer_name, c.account_no,
                   pv.id AS panels_of_id, pv.name AS panels_of_name,
                   pv.account_no AS panels_of_account,
                   g.gateway_code, b.code AS board_code, b.time_zone,
                   CASE WHEN m.replaced_at IS NOT NULL THEN 'replaced'
                        WHEN m.confirmed_at IS NULL THEN 'awaiting_confirmation'
                        WHEN m.last_reading_at IS NULL THEN 'never_seen'
                        WHEN m.last_reading_at >= %s THEN 'online'
                        ELSE 'offline' END AS health
            FROM meters m JOIN boards b ON b.id = m.board_id
            LEFT JOIN consumers c ON c.id = m.consumer_id
            -- a generation meter: the household whose panels it measures
            LEFT JOIN LATERAL (
                SELECT p.id, p.name, p.account_no FROM consumers p
                WHERE p.generation_meter_id = m.id ORDER BY p.id LIMIT 1
            ) pv ON true
            LEFT JOIN gateways g ON g.id = m.gateway_id
            WHERE {}
            """
        ).format(scope),
        [(now or datetime.now(UTC)) - ONLINE_WITHIN, *scope_params],
    )
    query.equal("board_id", board_id)
    query.equal("health", health)
    query.equal("status", status)
    if health != "replaced":
        query.where("health <> 'replaced'")
    query.search(search, "external_id", "model", "consumer_name", "account_no")
    return await query.page(conn, _order(sort, METER_SORTS, descending), limit, offset)


GATEWAY_SORTS = {
    "gateway": "gateway_code",
    "last_seen": "last_seen_at",
    "backlog": "backlog_readings",
}


async def gateways(
    conn: AsyncConnection,
    principal: Principal,
    *,
    board_id: int | None = None,
    gateway_id: int | None = None,
    search: str | None = None,
    sort: str = "gateway",
    descending: bool = False,
    limit: int = 50,
    offset: int = 0,
    now: datetime | None = None,
) -> Page:
    scope, scope_params = scope_filter(principal, "gateway", "g")
    query = _Query(
        sql.SQL(
            """
            SELECT g.id, g.board_id, g.gateway_code, g.status, g.enrolled_at, g.last_seen_at,
                   g.backlog_readings, g.oldest_unsent_at, g.clock_synced, g.clock_offset_s,
                   g.software_version, g.bus_stats, g.meter_health, g.disk_used_bytes,
                   g.disk_budget_bytes, g.config_version, b.code AS board_code, b.time_zone,
                   (SELECT count(*) FROM meters m WHERE m.gateway_id = g.id
                      AND m.replaced_at IS NULL) AS meters,
                   CASE WHEN g.status = 'revoked' THEN 'revoked'
                        WHEN g.last_seen_at IS NULL OR g.last_seen_at < %s THEN 'silent'
                        WHEN g.clock_synced IS FALSE THEN 'clock_unsynced'
                        WHEN g.backlog_readings >= 10000 THEN 'backlog'
                        ELSE 'online' END AS health
            FROM gateways g JOIN boards b ON b.id = g.board_id
            WHERE {}
            """
        ).format(scope),
        [(now or datetime.now(UTC)) - GATEWAY_SILENT, *scope_params],
    )
    query.equal("board_id", board_id)
    query.equal("id", gateway_id)
    query.search(search, "gateway_code", "software_version")
    return await query.page(conn, _order(sort, GATEWAY_SORTS, descending), limit, offset)


CONSUMER_SORTS = {"name": "name", "account": "account_no", "category": "category"}


async def consumers(
    conn: AsyncConnection,
    principal: Principal,
    *,
    board_id: int | None = None,
    category: str | None = None,
    search: str | None = None,
    sort: str = "name",
    descending: bool = False,
    limit: int = 50,
    offset: int = 0,
) -> Page:
    scope, scope_params = scope_filter(principal, "consumer", "c")
    query = _Query(
        sql.SQL(
            """
            SELECT c.id, c.board_id, c.account_no, c.name, c.category, c.sanctioned_load_kw,
                   b.code AS board_code,
                   (SELECT string_agg(m.external_id, ', ' ORDER BY m.external_id) FROM meters m
                      WHERE m.consumer_id = c.id AND m.replaced_at IS NULL) AS meters
            FROM consumers c JOIN boards b ON b.id = c.board_id
            WHERE {}
            """
        ).format(scope),
        scope_params,
    )
    query.equal("board_id", board_id)
    query.equal("category", category)
    query.search(search, "name", "account_no", "meters")
    return await query.page(conn, _order(sort, CONSUMER_SORTS, descending), limit, offset)


INVOICE_SORTS = {
    "period": "period_start",
    "consumer": "consumer_name",
    "total": "total",
    "due": "due_date",
    "status": "status",
}


async def invoices(
    conn: AsyncConnection,
    principal: Principal,
    *,
    board_id: int | None = None,
    consumer_id: int | None = None,
    status: str | None = None,
    period_start: Any = None,
    search: str | None = None,
    latest_only: bool = True,
    sort: str = "period",
    descending: bool = True,
    limit: int = 50,
    offset: int = 0,
) -> Page:
    """Invoices with their consumer's name; by default only each bill's latest version."""
    scope, scope_params = scope_filter(principal, "invoice", "i")
    query = _Query(
        sql.SQL(
            """
            SELECT i.id, i.board_id, i.consumer_id, i.period_start, i.period_end, i.version,
                   i.status, i.currency, i.units, i.total, i.amount_due, i.paid,
                   i.amount_due - i.paid AS outstanding, i.estimated, i.due_date, i.issued_at,
                   c.name AS consumer_name, c.account_no, b.code AS board_code,
                   i.version = max(i.version) OVER (PARTITION BY i.consumer_id, i.period_start,
                                                    i.period_end) AS latest
            FROM invoices i JOIN consumers c ON c.id = i.consumer_id
            JOIN boards b ON b.id = i.board_id
            WHERE {}
            """
        ).format(scope),
        scope_params,
    )
    query.equal("board_id", board_id)
    query.equal("consumer_id", consumer_id)
    query.equal("status", status)
    query.equal("period_start", period_start)
    if latest_only:
        query.where("latest")
    query.search(search, "consumer_name", "account_no")
    return await query.page(conn, _order(sort, INVOICE_SORTS, descending), limit, offset)


ALERT_SORTS = {"opened": "opened_at", "severity": "severity_rank", "last_seen": "last_seen_at"}


async def alerts(
    conn: AsyncConnection,
    principal: Principal,
    *,
    board_id: int | None = None,
    state: str | None = None,
    severity: str | None = None,
    kind: str | None = None,
    open_only: bool = False,
    alert_id: int | None = None,
    consumer_id: int | None = None,
    sort: str = "opened",
    descending: bool = True,
    limit: int = 50,
    offset: int = 0,
) -> Page:
    """Alerts with what they are about in words: the meter and its consumer, or the gateway."""
    scope, scope_params = scope_filter(principal, "alert", "a")
    query = _Query(
        sql.SQL(
            """
            SELECT a.id, a.board_id, a.kind, a.severity, a.source, a.state, a.message,
                   a.opened_at, a.last_seen_at, a.occurrences, a.acknowledged_at,
                   a.acknowledge_note, a.resolved_at, a.resolve_note, a.meter_id, a.gateway_id,
                   m.external_id AS meter, m.consumer_id, c.name AS consumer_name,
                   g.gateway_code,
                   b.code AS board_code, b.time_zone,
                   array_position(ARRAY['critical', 'high', 'medium', 'low', 'info'], a.severity)
                       AS severity_rank
            FROM alerts a JOIN boards b ON b.id = a.board_id
            LEFT JOIN meters m ON m.id = a.meter_id
            LEFT JOIN consumers c ON c.id = m.consumer_id
            LEFT JOIN gateways g ON g.id = a.gateway_id
            WHERE {}
            """
        ).format(scope),
        scope_params,
    )
    query.equal("board_id", board_id)
    query.equal("state", state)
    query.equal("severity", severity)
    query.equal("kind", kind)
    query.equal("id", alert_id)
    query.equal("consumer_id", consumer_id)
    if open_only:
        query.where("state <> 'resolved'")
    order = _order(sort, ALERT_SORTS, descending if sort != "severity" else not descending)
    return await query.page(conn, order, limit, offset)


async def alert_kinds(conn: AsyncConnection, principal: Principal) -> list[str]:
    """The kinds of alert there are in the caller's scope (for a filter's choices)."""
    scope, params = scope_filter(principal, "alert", "a")
    cursor = await conn.execute(
        sql.SQL("SELECT DISTINCT a.kind FROM alerts a WHERE {} ORDER BY 1 LIMIT 100").format(scope),
        params,
    )
    return [row["kind"] for row in await cursor.fetchall()]


SUPPORT_SORTS = {
    "opened": "created_at",
    "updated": "updated_at",
    "due": "sla_due_at",
    "priority": "priority_rank",
}


async def support_queries(
    conn: AsyncConnection,
    principal: Principal,
    *,
    board_id: int | None = None,
    consumer_id: int | None = None,
    status: str | None = None,
    open_only: bool = False,
    category: str | None = None,
    uncategorised: bool = False,
    priority: str | None = None,
    assignee_id: int | None = None,
    unassigned: bool = False,
    older_than_h: int | None = None,
    breached: bool = False,
    drafted: bool = False,
    search: str | None = None,
    sort: str = "opened",
    descending: bool = True,
    limit: int = 50,
    offset: int = 0,
    now: datetime | None = None,
) -> Page:
    """Support queries with who and what they are about, how long they have waited and how
    many messages their thread holds (`drafted`: those whose draft waits for an agent)."""
    scope, scope_params = scope_filter(principal, "support_query", "q")
    query = _Query(
        sql.SQL(
            """
            SELECT q.id, q.board_id, q.consumer_id, q.subject, q.category, q.priority, q.status,
                   q.assignee_id, q.invoice_id, q.meter_id, q.sla_due_at, q.sla_breached_at,
                   q.auto_answered_at, q.escalated_at, q.created_at, q.updated_at,
                   q.draft IS NOT NULL AND q.first_response_at IS NULL
                       AND q.auto_answered_at IS NULL AS draft_waiting,
                   c.name AS consumer_name, c.account_no, b.code AS board_code, b.time_zone,
                   coalesce(a.name, a.email) AS assignee_name,
                   (SELECT count(*) FROM support_messages m WHERE m.query_id = q.id) AS messages,
                   array_position(ARRAY['urgent', 'high', 'normal', 'low'], q.priority)
                       AS priority_rank
            FROM support_queries q JOIN consumers c ON c.id = q.consumer_id
            JOIN boards b ON b.id = q.board_id
            LEFT JOIN users a ON a.id = q.assignee_id
            WHERE {}
            """
        ).format(scope),
        scope_params,
    )
    query.equal("board_id", board_id)
    query.equal("consumer_id", consumer_id)
    query.equal("status", status)
    query.equal("category", category)
    query.equal("priority", priority)
    query.equal("assignee_id", assignee_id)
    if open_only:
        query.where("status NOT IN ('resolved', 'closed')")
    if uncategorised:
        query.where("category IS NULL")
    if unassigned:
        query.where("assignee_id IS NULL")
    if older_than_h is not None:
        query.where("created_at < %s", (now or datetime.now(UTC)) - timedelta(hours=older_than_h))
    if breached:
        query.where("sla_breached_at IS NOT NULL AND sla_due_at IS NOT NULL")
    if drafted:
        query.where("draft_waiting")
    query.search(search, "subject", "consumer_name", "account_no")
    descending = descending if sort != "priority" else not descending
    order = _order(sort, SUPPORT_SORTS, descending)
    if sort == "due":  # what is due soonest first; what waits on nobody at the end
        order = sql.SQL("ORDER BY sla_due_at {} NULLS LAST, id").format(
            sql.SQL("DESC" if descending else "ASC")
        )
    return await query.page(conn, order, limit, offset)
