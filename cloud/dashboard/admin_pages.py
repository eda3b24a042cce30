"""The administrators' pages: reports (ask for one, download it), users (who has which role
where) and the audit log (who did what, named)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from psycopg import sql

from ..access import Permission, allowed, scope_filter
from ..services import audit
from ..services.scoped import BOARDS, REPORTS, list_rows
from .web import csv_download, listing, not_allowed, render, viewer, wants_csv, words

router = APIRouter(prefix="/dashboard", include_in_schema=False)


async def _zone(conn, principal) -> str:
    """The viewer's board's zone, for times; UTC for those who see several boards."""
    if principal.board_id is None:
        return "UTC"
    cursor = await conn.execute("SELECT time_zone FROM boards WHERE id = %s", (principal.board_id,))
    row = await cursor.fetchone()
    return row["time_zone"] if row else "UTC"


@router.get("/reports", response_class=HTMLResponse)
async def reports_page(request: Request) -> Response:
    principal = await viewer(request)
    if not allowed(principal.role, Permission.REPORT_READ):
        return not_allowed(request, principal, Permission.REPORT_READ)
    async with request.app.state.pool.connection() as conn:
        rows, _ = await list_rows(
            conn,
            principal,
            REPORTS,
            filters={},
            sort="created_at",
            descending=True,
            limit=100,
            offset=0,
        )
        boards, _ = await list_rows(
            conn,
            principal,
            BOARDS,
            filters={},
            sort="code",
            descending=False,
            limit=200,
            offset=0,
        )
        zone = await _zone(conn, principal)
    today = datetime.now(UTC).date()
    return render(
        request,
        "reports.html",
        principal,
        page="reports",
        title=words(request)("nav.reports"),
        reports=rows,
        boards=boards,
        zone=zone,
        start=today.replace(day=1).isoformat(),
        end=(today + timedelta(days=1)).isoformat(),
    )


USER_SORTS = {"email": "email", "role": "role", "created": "created_at"}


@router.get("/users", response_class=HTMLResponse)
async def users_page(request: Request) -> Response:
    principal = await viewer(request)
    if not allowed(principal.role, Permission.USER_MANAGE):
        return not_allowed(request, principal, Permission.USER_MANAGE)
    state = listing(request, sorts=USER_SORTS, default_sort="email", filters=("role",))
    scope, params = scope_filter(principal, "user", "u")
    clauses, values = [scope], list(params)
    if state.filters["role"]:
        clauses.append(sql.SQL("u.role = %s"))
        values.append(state.filters["role"])
    if state.search:
        clauses.append(sql.SQL("u.email ILIKE %s"))
        values.append(f"%{state.search.replace('%', '')}%")
    direction = sql.SQL("DESC" if state.descending else "ASC")
    query = sql.SQL(
        "SELECT u.id, u.email, u.role, u.active, u.created_at, s.name AS state_name,"
        " b.code AS board_code, c.name AS consumer_name, c.account_no,"
        " count(*) OVER () AS _total FROM users u LEFT JOIN states s ON s.id = u.state_id"
        " LEFT JOIN boards b ON b.id = u.board_id LEFT JOIN consumers c ON c.id = u.consumer_id"
        " WHERE {} ORDER BY {} {}, u.id LIMIT %s OFFSET %s"
    ).format(
        sql.SQL(" AND ").join(clauses),
        sql.Identifier("u", USER_SORTS[state.sort]),
        direction,
    )
    limit = 10_000 if wants_csv(request) else state.per_page
    async with request.app.state.pool.connection() as conn:
        cursor = await conn.execute(
            query, [*values, limit, 0 if wants_csv(request) else state.offset]
        )
        rows = await cursor.fetchall()
        zone = await _zone(conn, principal)
    total = rows[0]["_total"] if rows else 0
    if wants_csv(request):
        return csv_download(
            "users",
            {
                "email": "email",
                "role": "role",
                "state": "state_name",
                "board": "board_code",
                "consumer": "consumer_name",
                "active": "active",
                "created_utc": "created_at",
            },
            rows,
        )
    return render(
        request,
        "users.html",
        principal,
        title=words(request)("nav.users"),
        state=state,
        page_rows=rows,
        total=total,
        zone=zone,
    )


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(request: Request) -> Response:
    principal = await viewer(request)
    if not allowed(principal.role, Permission.AUDIT_READ):
        return not_allowed(request, principal, Permission.AUDIT_READ)
    state = listing(request, sorts={"id": "id"}, default_sort="id", default_descending=True)
    async with request.app.state.pool.connection() as conn:
        rows, total = await audit.entries(
            conn, principal, limit=state.per_page, offset=state.offset
        )
        users = {r["actor"].split(":", 1)[1] for r in rows if r["actor"].startswith("user:")}
        cursor = await conn.execute(
            "SELECT id::text, email FROM users WHERE id::text = ANY(%s)", (list(users),)
        )
        emails = {row["id"]: row["email"] for row in await cursor.fetchall()}
        zone = await _zone(conn, principal)
    for row in rows:
        kind, _, who = row["actor"].partition(":")
        row["who"] = emails.get(who, row["actor"]) if kind == "user" else row["actor"]
    return render(
        request,
        "audit.html",
        principal,
        title=words(request)("nav.audit"),
        state=state,
        page_rows=rows,
        total=total,
        zone=zone,
    )
