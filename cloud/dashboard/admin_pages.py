"""The administrators' pages: reports (ask for one, download it) and users (who has which role
where). The audit log has its own module, `audit_pages`."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from psycopg import sql
from pydantic import ValidationError

from ..access import Permission, allowed, may_grant, scope_filter
from ..api.account import account_context
from ..api.deps import CSRF_COOKIE
from ..api.users import UserCreate
from ..errors import CloudError, NotFound
from ..services import users
from ..services.auth import ROLES
from ..services.scoped import BOARDS, REPORT_FORMATS, REPORTS, USERS, get_row, list_rows
from .web import (
    csv_download,
    int_or_none,
    listing,
    not_allowed,
    render,
    viewer,
    wants_csv,
    words,
)

router = APIRouter(prefix="/dashboard", include_in_schema=False)


async def viewer_zone(conn, principal) -> str:
    """The zone to show times in: the viewer's boards' if they share one (a board's people, a
    state's, a whole country's), UTC where the boards in view differ."""
    condition, params = scope_filter(principal, "board", "b")
    cursor = await conn.execute(
        sql.SQL("SELECT DISTINCT time_zone FROM boards b WHERE {} LIMIT 2").format(condition),
        params,
    )
    zones = [row["time_zone"] for row in await cursor.fetchall()]
    return zones[0] if len(zones) == 1 else "UTC"


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
        formats, _ = await list_rows(
            conn,
            principal,
            REPORT_FORMATS,
            filters={},
            sort="name",
            descending=False,
            limit=500,
            offset=0,
        )
        zone = await viewer_zone(conn, principal)
    today = datetime.now(UTC).astimezone(ZoneInfo(zone)).date()
    return render(
        request,
        "reports.html",
        principal,
        page="reports",
        title=words(request)("nav.reports"),
        reports=rows,
        boards=boards,
        formats=formats,
        format_names={f["id"]: f["name"] for f in formats},
        zone=zone,
        start=today.replace(day=1).isoformat(),
        last_day=today.isoformat(),  # the form names the last day; its script adds one
    )


USER_SORTS = {"email": "email", "role": "role", "created": "created_at"}


@router.get("/users", response_class=HTMLResponse)
async def users_page(request: Request) -> Response:
    principal = await viewer(request)
    if not allowed(principal.role, Permission.USER_READ):
        return not_allowed(request, principal, Permission.USER_READ)
    return await _users_listing(request, principal)


async def _users_listing(request: Request, principal, **extra) -> Response:
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
        "SELECT u.id, u.email, u.name, u.role, u.active, u.created_at, u.password_set_at,"
        " s.name AS state_name,"
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
        zone = await viewer_zone(conn, principal)
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
    return await _users_view(
        request, principal, state=state, page_rows=rows, total=total, zone=zone, **extra
    )


INVITED_ROLES = ("BOARD_ADMIN", "SUPPORT_AGENT", "TECHNICIAN", "AUDITOR")  # staff of a board


DONE = ("invited", "reset_sent", "now_active", "now_inactive")


async def _users_view(request: Request, principal, **context) -> Response:
    """The users page: the list, and the form that invites a member of staff to a board; after
    an action on a user (`?done=<what>&who=<id>`), what was done, in words."""
    done = None
    async with request.app.state.pool.connection() as conn:
        boards, _ = await list_rows(
            conn, principal, BOARDS, filters={}, sort="name", descending=False, limit=200, offset=0
        )
        what, who = request.query_params.get("done"), int_or_none(request.query_params.get("who"))
        if what in DONE and who is not None:
            try:
                user = await get_row(conn, principal, USERS, who)
                done = words(request)(f"users.{what}", email=user["email"])
            except NotFound:
                done = None
    return render(
        request,
        "users.html",
        principal,
        title=words(request)("nav.users"),
        boards=boards,
        invite_roles=[r for r in INVITED_ROLES if may_grant(principal.role, r)],
        grantable=[r for r in ROLES if may_grant(principal.role, r)],
        done=done,
        **context,
    )


@router.post("/users/invite", response_class=HTMLResponse)
async def invite_user(
    request: Request,
    email: str = Form(..., max_length=254),
    name: str = Form("", max_length=200),
    role: str = Form(..., max_length=20),
    board_id: int = Form(..., ge=1, le=2**62),
    csrf: str = Form("", max_length=100),
) -> Response:
    """Invite a member of staff from the users page (the API's `POST /users`, as a form)."""
    principal = await viewer(request)
    if not allowed(principal.role, Permission.USER_MANAGE):
        return not_allowed(request, principal, Permission.USER_MANAGE)
    t = words(request)
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), csrf.encode()):
        return await _users_listing(request, principal, problem=words(request)("form.expired"))
    draft = {"email": email.strip(), "name": name.strip() or None, "role": role}
    try:
        body = UserCreate.model_validate({**draft, "board_id": board_id})
        async with request.app.state.pool.connection() as conn:
            created = await users.create(
                conn, principal, account_context(request), **body.model_dump()
            )
    except ValidationError as exc:
        field = str(exc.errors()[0]["loc"][0])
        return await _invite_failed(request, principal, t(f"hint.{field}"), draft)
    except CloudError as exc:
        return await _invite_failed(request, principal, str(exc), draft)
    return RedirectResponse(f"/dashboard/users?done=invited&who={created['id']}", status_code=303)


async def _invite_failed(request: Request, principal, error: str, draft: dict) -> Response:
    return await _users_listing(request, principal, invite_error=error, draft=draft)


async def _user_action(request: Request, csrf: str, act) -> Response:
    """Run a change to a user from the users page; back to the page, saying what happened."""
    principal = await viewer(request)
    if not allowed(principal.role, Permission.USER_MANAGE):
        return not_allowed(request, principal, Permission.USER_MANAGE)
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), csrf.encode()):
        return await _users_listing(request, principal, problem=words(request)("form.expired"))
    try:
        async with request.app.state.pool.connection() as conn:
            done = await act(conn, principal)
    except CloudError as exc:
        return await _users_listing(request, principal, problem=str(exc))
    return RedirectResponse(f"/dashboard/users?done={done}", status_code=303)


@router.post("/users/{user_id}/invitation")
async def resend_invitation(
    request: Request, user_id: int, csrf: str = Form("", max_length=100)
) -> Response:
    async def act(conn, principal) -> str:
        await users.resend_invitation(conn, principal, account_context(request), user_id)
        return f"invited&who={user_id}"

    return await _user_action(request, csrf, act)


@router.post("/users/{user_id}/password-reset")
async def send_password_reset(
    request: Request, user_id: int, csrf: str = Form("", max_length=100)
) -> Response:
    async def act(conn, principal) -> str:
        await users.send_password_reset(conn, principal, account_context(request), user_id)
        return f"reset_sent&who={user_id}"

    return await _user_action(request, csrf, act)


@router.post("/users/{user_id}/active")
async def set_active(
    request: Request,
    user_id: int,
    active: bool = Form(...),
    csrf: str = Form("", max_length=100),
) -> Response:
    async def act(conn, principal) -> str:
        if not active:
            user = await users.deactivate(conn, principal, user_id)
        else:
            user = await users.update(conn, principal, user_id, {"active": True})
        return f"{'now_active' if user['active'] else 'now_inactive'}&who={user_id}"

    return await _user_action(request, csrf, act)
