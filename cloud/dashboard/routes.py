"""Dashboard pages under `/dashboard`. Each page asks the same services the API uses, with the
viewer as the principal, so it shows exactly the viewer's scope; an object outside it is "not
found", as in the API.

The session is the API's own token pair, kept in HttpOnly, SameSite=Strict cookies; changes made
from a page go to the API with the CSRF token (double submit, see `api.deps`).
"""

from __future__ import annotations

import asyncio
import io
import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from shared import QUANTITIES

from ..access import Permission, Principal, allowed
from ..api.deps import ACCESS_COOKIE, CSRF_COOKIE, REFRESH_COOKIE, authenticate, jwt_secret
from ..errors import CloudError, NotFound, TooManyRequests, Unauthorized
from ..services import audit, auth, readings
from ..services.scoped import (
    ALERTS,
    BOARDS,
    CONSUMERS,
    GATEWAYS,
    INVOICES,
    METERS,
    REPORTS,
    USERS,
    get_row,
    list_rows,
)

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(prefix="/dashboard", include_in_schema=False)
static = StaticFiles(directory=HERE / "static")


class LoginNeeded(Exception):
    def __init__(self, next_url: str) -> None:
        self.next_url = next_url


async def _principal(request: Request) -> Principal:
    """The viewer, from the session cookie, if the session still stands (as for the API)."""
    token = request.cookies.get(ACCESS_COOKIE)
    if not token:
        raise LoginNeeded(request.url.path)
    try:
        return await authenticate(request, token)
    except Unauthorized:
        raise LoginNeeded(request.url.path) from None


def script_json(value: Any) -> str:
    """JSON for a <script type="application/json"> element: every <, > and & escaped (with the
    two line separators JavaScript treats as line ends), so no text a gateway or a user wrote can
    close the element or open a comment inside it."""
    text = json.dumps(value, default=str)
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text


def _render(request: Request, name: str, principal: Principal | None, **context: Any):
    def can(permission: str) -> bool:
        return principal is not None and allowed(principal.role, Permission(permission))

    return templates.TemplateResponse(
        request, name, {"principal": principal, "can": can, "title": "GridGate", **context}
    )


def _set_session(response: Response, pair: auth.TokenPair, secure: bool) -> None:
    common = {"httponly": True, "samesite": "strict", "secure": secure}
    response.set_cookie(ACCESS_COOKIE, pair.access_token, max_age=pair.expires_in, **common)
    response.set_cookie(REFRESH_COOKIE, pair.refresh_token, path="/dashboard", **common)
    response.set_cookie(CSRF_COOKIE, secrets.token_urlsafe(24), samesite="strict", secure=secure)


def _safe_next(next_url: str) -> str:
    return next_url if next_url.startswith("/dashboard") and "//" not in next_url else "/dashboard"


LOGIN_COOKIE = "gg_login"  # the login form's own CSRF token (there is no session yet)


def _login_form(request: Request, next_url: str, error: str | None, status: int = 200):
    """The login form, with a fresh token in a hidden field and in a SameSite=Strict cookie:
    a form posted from another site carries neither the cookie nor a matching field."""
    token = secrets.token_urlsafe(24)
    response = _render(
        request, "login.html", None, next=_safe_next(next_url), error=error, login_token=token
    )
    response.status_code = status
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        path="/dashboard/login",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def _same_origin(request: Request) -> bool:
    """A browser names the page a form came from (Origin); it must be this site when named."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return origin == f"{request.url.scheme}://{request.url.netloc}"


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/dashboard") -> Response:
    return _login_form(request, next, None)


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    email: str = Form(..., max_length=254),
    password: str = Form(..., max_length=256),
    next: str = Form("/dashboard", max_length=500),
    login_token: str = Form("", max_length=100),
) -> Response:
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if (
        not _same_origin(request)
        or not expected
        or not secrets.compare_digest(expected.encode(), login_token.encode())
    ):
        return _login_form(
            request,
            next,
            "This sign-in form has expired or was sent from another site. Sign in again here.",
            status=403,
        )
    client = request.client.host if request.client else "unknown"
    try:
        pair = await auth.login(
            request.app.state.pool,
            email=email,
            password=password,
            client_ip=client,
            settings=request.app.state.settings,
            secret=jwt_secret(request),
        )
    except (Unauthorized, TooManyRequests) as exc:
        return _login_form(request, next, str(exc))
    response = RedirectResponse(_safe_next(next), status_code=303)
    _set_session(response, pair, request.url.scheme == "https")
    response.delete_cookie(LOGIN_COOKIE, path="/dashboard/login")
    return response


@router.get("/session/refresh")
async def refresh(request: Request, next: str = "/dashboard") -> Response:
    token = request.cookies.get(REFRESH_COOKIE)
    target = f"/dashboard/login?next={quote(_safe_next(next))}"
    if not token:
        return RedirectResponse(target, status_code=303)
    try:
        async with request.app.state.pool.connection() as conn:
            pair = await auth.refresh(
                conn,
                refresh_token=token,
                settings=request.app.state.settings,
                secret=jwt_secret(request),
            )
    except Unauthorized:
        return RedirectResponse(target, status_code=303)
    response = RedirectResponse(_safe_next(next), status_code=303)
    _set_session(response, pair, request.url.scheme == "https")
    return response


@router.get("/logout")
async def logout(request: Request) -> Response:
    token = request.cookies.get(REFRESH_COOKIE)
    if token:
        async with request.app.state.pool.connection() as conn:
            await auth.logout(conn, refresh_token=token)
    response = RedirectResponse("/dashboard/login", status_code=303)
    for name in (ACCESS_COOKIE, CSRF_COOKIE):
        response.delete_cookie(name)
    response.delete_cookie(REFRESH_COOKIE, path="/dashboard")
    return response


@router.get("", response_class=HTMLResponse)
async def overview(request: Request) -> Response:
    principal = await _principal(request)
    boards: list[dict[str, Any]] = []
    if allowed(principal.role, Permission.BOARD_READ):
        async with request.app.state.pool.connection() as conn:
            boards = await readings.board_overview(conn, principal)
    totals = {
        key: sum(b[key] for b in boards)
        for key in ("meters", "online", "alerts", "gateways", "energy")
    }
    return _render(
        request, "overview.html", principal, title="Overview", boards=boards, totals=totals
    )


async def _table(
    request: Request,
    table,
    permission: Permission,
    title: str,
    columns: list[str],
    filters: dict[str, Any],
    links: dict[str, str] | None = None,
    sort: str = "id",
) -> Response:
    principal = await _principal(request)
    if not allowed(principal.role, permission):
        return _not_allowed(request, principal, permission)
    clean = {k: v for k, v in filters.items() if k in table.filters and v not in (None, "")}
    async with request.app.state.pool.connection() as conn:
        try:
            rows, total = await list_rows(
                conn,
                principal,
                table,
                filters=clean,
                sort=sort,
                descending=False,
                limit=200,
                offset=0,
            )
        except CloudError as exc:
            return _render(request, "error.html", principal, title=title, message=str(exc))
    return _render(
        request,
        "table.html",
        principal,
        title=title,
        columns=columns,
        rows=rows,
        total=total,
        links=links,
        filters=None,
        table_id=title.lower(),
    )


def _not_allowed(request: Request, principal: Principal, permission: Permission) -> Response:
    response = _render(
        request,
        "error.html",
        principal,
        title="Not allowed",
        message=f"Your role may not {permission.value}.",
    )
    response.status_code = 403
    return response


async def _rows(
    conn, principal: Principal, table, sort: str, *, descending: bool = True, **filters: Any
) -> list[dict]:
    """Up to 200 rows of `table` in the viewer's scope, by `sort` (descending by default)."""
    rows, _ = await list_rows(
        conn,
        principal,
        table,
        filters=filters,
        sort=sort,
        descending=descending,
        limit=200,
        offset=0,
    )
    return rows


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


@router.get("/gateways", response_class=HTMLResponse)
async def gateways(request: Request) -> Response:
    return await _table(
        request,
        GATEWAYS,
        Permission.GATEWAY_READ,
        "Gateways",
        [
            "gateway_code",
            "status",
            "last_seen_at",
            "backlog_readings",
            "clock_synced",
            "clock_offset_s",
            "software_version",
        ],
        {},
    )


@router.get("/meters", response_class=HTMLResponse)
async def meters(request: Request, board_id: str | None = None) -> Response:
    return await _table(
        request,
        METERS,
        Permission.METER_READ,
        "Meters",
        ["id", "external_id", "model", "consumer_id", "gateway_id", "installed_at", "replaced_at"],
        {"board_id": _int(board_id)},
        links={"external_id": "/dashboard/meters/{id}"},
    )


@router.get("/consumers", response_class=HTMLResponse)
async def consumers(request: Request) -> Response:
    return await _table(
        request,
        CONSUMERS,
        Permission.CONSUMER_READ,
        "Consumers",
        ["id", "account_no", "name", "category", "sanctioned_load_kw"],
        {},
        links={"name": "/dashboard/consumers/{id}"},
    )


@router.get("/users", response_class=HTMLResponse)
async def users(request: Request) -> Response:
    return await _table(
        request,
        USERS,
        Permission.USER_MANAGE,
        "Users",
        ["id", "email", "role", "board_id", "state_id", "consumer_id", "active"],
        {},
    )


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(request: Request) -> Response:
    principal = await _principal(request)
    if not allowed(principal.role, Permission.AUDIT_READ):
        return _not_allowed(request, principal, Permission.AUDIT_READ)
    async with request.app.state.pool.connection() as conn:
        rows, total = await audit.entries(conn, principal, limit=200, offset=0)
    return _render(
        request,
        "table.html",
        principal,
        title="Audit",
        rows=rows,
        total=total,
        columns=["id", "at", "actor", "action", "entity", "entity_id"],
        links=None,
        filters=None,
        table_id="audit",
    )


def _not_found(request: Request, principal: Principal, what: str) -> Response:
    response = _render(
        request,
        "error.html",
        principal,
        title="Not found",
        message=f"There is no {what} here for you.",
    )
    response.status_code = 404
    return response


@router.get("/meters/{meter_id}", response_class=HTMLResponse)
async def meter(
    request: Request,
    meter_id: int,
    quantity: str = "1.7.0",
    start: str | None = None,
    end: str | None = None,
) -> Response:
    principal = await _principal(request)
    start = request.query_params.get("from", start)
    end = request.query_params.get("to", end)
    async with request.app.state.pool.connection() as conn:
        try:
            row = await get_row(conn, principal, METERS, meter_id)
        except NotFound:
            return _not_found(request, principal, f"meter {meter_id}")
        last = await readings.latest_values(conn, principal, meter_id)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    chart = {
        "quantity": quantity if quantity in QUANTITIES else "1.7.0",
        "start": start or (now - timedelta(hours=24)).strftime("%Y-%m-%dT%H:%M"),
        "end": end or now.strftime("%Y-%m-%dT%H:%M"),
    }
    return _render(
        request,
        "meter.html",
        principal,
        title=f"Meter {row['external_id']}",
        meter=row,
        last=last,
        chart=chart,
        quantities=list(QUANTITIES.values()),
    )


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.get("/meters/{meter_id}/chart.svg")
async def meter_chart(request: Request, meter_id: int, quantity: str = "1.7.0") -> Response:
    """The meter's quantity over the range as an SVG line (or bars of energy per bucket)."""
    principal = await _principal(request)
    try:
        start = _instant(request.query_params.get("from", ""))
        end = _instant(request.query_params.get("to", ""))
    except ValueError:
        end = datetime.now(UTC)
        start = end - timedelta(hours=24)
    span = end - start
    interval = (
        "raw" if span <= timedelta(days=2) else "hour" if span <= timedelta(days=31) else "day"
    )
    if QUANTITIES.get(quantity) and QUANTITIES[quantity].is_cumulative and interval == "raw":
        interval = "15min"
    async with request.app.state.pool.connection() as conn:
        try:
            data = await readings.meter_readings(
                conn,
                principal,
                meter_id,
                quantity=quantity,
                start=start,
                end=end,
                interval=interval,
            )
        except NotFound:
            return Response("not found", status_code=404)
        except CloudError as exc:
            return Response(str(exc), status_code=422)
    svg = await asyncio.to_thread(_draw, data)
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


def _draw(data: dict[str, Any]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.2), dpi=100)
    axes = figure.add_subplot()
    points = data["points"]
    tz = ZoneInfo(data.get("time_zone") or "UTC")
    if data["interval"] == "raw":
        axes.plot(
            [p["ts"].astimezone(tz) for p in points], [p["value"] for p in points], color="#2b6cb0"
        )
    elif "energy" in (points[0] if points else {}):
        axes.bar(
            [p["bucket"].astimezone(tz) for p in points],
            [p["energy"] for p in points],
            width=0.01 if data["interval"] == "15min" else 0.03,
            color="#2b6cb0",
        )
    else:
        axes.plot(
            [p["bucket"].astimezone(tz) for p in points],
            [p["avg"] for p in points],
            color="#2b6cb0",
        )
    axes.set_ylabel(f"{QUANTITIES[data['quantity']].name} ({data['unit']})")
    axes.grid(alpha=0.3)
    if not points:
        axes.text(0.5, 0.5, "no readings in this range", ha="center", transform=axes.transAxes)
    figure.autofmt_xdate()
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="svg")
    return out.getvalue()


@router.get("/alerts", response_class=HTMLResponse)
async def alerts_page(request: Request) -> Response:
    principal = await _principal(request)
    if not allowed(principal.role, Permission.ALERT_READ):
        return _not_allowed(request, principal, Permission.ALERT_READ)
    async with request.app.state.pool.connection() as conn:
        rows = await _rows(conn, principal, ALERTS, "opened_at")
    # open alerts first, newest first within each group
    rows.sort(key=lambda a: (a["state"] == "resolved", -a["opened_at"].timestamp()))
    return _render(request, "alerts.html", principal, title="Alerts", alerts_json=script_json(rows))


@router.get("/consumers/{consumer_id}", response_class=HTMLResponse)
async def consumer(request: Request, consumer_id: int) -> Response:
    principal = await _principal(request)
    async with request.app.state.pool.connection() as conn:
        try:
            row = await get_row(conn, principal, CONSUMERS, consumer_id)
        except NotFound:
            return _not_found(request, principal, f"consumer {consumer_id}")
        meter_rows = await _rows(
            conn, principal, METERS, "id", descending=False, consumer_id=consumer_id
        )
        bills: list[dict[str, Any]] = []
        if allowed(principal.role, Permission.BILLING_READ):
            bills = await _rows(conn, principal, INVOICES, "period_start", consumer_id=consumer_id)
    return _render(
        request,
        "consumer.html",
        principal,
        title=row["name"],
        consumer=row,
        meters=meter_rows,
        invoices=bills,
    )


@router.get("/reports", response_class=HTMLResponse)
async def reports_page(request: Request) -> Response:
    principal = await _principal(request)
    if not allowed(principal.role, Permission.REPORT_READ):
        return _not_allowed(request, principal, Permission.REPORT_READ)
    async with request.app.state.pool.connection() as conn:
        rows = await _rows(conn, principal, REPORTS, "created_at")
        boards = await _rows(conn, principal, BOARDS, "code", descending=False)
    today = datetime.now(UTC).date()
    return _render(
        request,
        "reports.html",
        principal,
        title="Reports",
        reports=rows,
        boards=boards,
        start=today.replace(day=1).isoformat(),
        end=(today + timedelta(days=1)).isoformat(),
    )
