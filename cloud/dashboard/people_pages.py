"""Pages about people: a consumer's page — which is the consumer portal's home when the viewer is
that consumer (this period so far, the bill it is heading for with its range, costed ways to
pay less, daily use against last month and last year, their tariff explained, bills with PDFs,
payments, open alerts) and the staff's view of a consumer — and the alerts page (filters, what
each alert is about in words, acknowledge and resolve, live)."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from ..access import Permission, allowed
from ..api.deps import CSRF_COOKIE
from ..api.fleet import ConsumerUpdate
from ..errors import CloudError, InvalidInput, NotFound
from ..services import (
    analytics,
    consumers,
    deliveries,
    energy_balance,
    estimates,
    insights,
    invoices,
    listings,
    recommendations,
    tariffs,
)
from ..services.scoped import CONSUMERS, METERS, get_row, list_rows
from .delivery_words import delivery_line
from .web import int_or_none, listing, not_allowed, not_found, render, script_json, viewer, words

router = APIRouter(prefix="/dashboard", include_in_schema=False)
SEVERITIES = ("critical", "high", "medium", "low", "info")
BALANCE_DAYS = 14  # days of a solar consumer's energy balance on its page
STATES = ("active", "acknowledged", "resolved")


@router.get("/home", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    principal = await viewer(request)
    if principal.role != "CONSUMER":
        return RedirectResponse("/dashboard", status_code=303)
    return await _consumer(request, principal, principal.consumer_id, section="home")


@router.get("/bills", response_class=HTMLResponse)
async def bills(request: Request) -> Response:
    principal = await viewer(request)
    if principal.role != "CONSUMER":
        return RedirectResponse("/dashboard/billing", status_code=303)
    return await _consumer(request, principal, principal.consumer_id, section="bills")


@router.get("/consumers/{consumer_id}", response_class=HTMLResponse)
async def consumer_page(request: Request, consumer_id: int) -> Response:
    principal = await viewer(request)
    if principal.role == "CONSUMER" and consumer_id == principal.consumer_id:
        return RedirectResponse("/dashboard/home", status_code=303)
    return await _consumer(request, principal, consumer_id, section="staff")


async def _consumer(
    request: Request,
    principal,
    consumer_id: int | None,
    *,
    section: str,
    context_error: str | None = None,
):
    t = words(request)
    if not allowed(principal.role, Permission.CONSUMER_READ):
        return not_allowed(request, principal, Permission.CONSUMER_READ)
    can_bills = allowed(principal.role, Permission.BILLING_READ)
    can_readings = allowed(principal.role, Permission.READING_READ)
    async with request.app.state.pool.connection() as conn:
        try:
            consumer = await get_row(conn, principal, CONSUMERS, consumer_id or 0)
        except NotFound:
            return not_found(request, principal, t("what.consumer", id=consumer_id))
        cursor = await conn.execute(
            "SELECT code, name, time_zone, currency FROM boards WHERE id = %s",
            (consumer["board_id"],),
        )
        board = await cursor.fetchone()
        cursor = await conn.execute(
            "SELECT email, active FROM users WHERE consumer_id = %s ORDER BY id LIMIT 1",
            (consumer["id"],),
        )
        online = await cursor.fetchone()
        meter_rows, _ = await list_rows(
            conn,
            principal,
            METERS,
            filters={"consumer_id": consumer["id"]},
            sort="id",
            descending=False,
            limit=50,
            offset=0,
        )
        estimate = tariff = usage = forecast = advice = None
        advice_off = False  # the household has not allowed its usage to be used for them
        notes: list[str] = []
        if can_bills and section != "bills":
            try:
                estimate = await estimates.estimate(conn, principal, consumer["id"])
                forecast, advice = await insights.cycle_and_advice(conn, principal, consumer["id"])
                if advice is None:
                    advice_off = True
                else:
                    advice = await _stored_advice(conn, principal, consumer["id"], advice)
            except InvalidInput as exc:
                notes.append(str(exc))
            try:
                tariff = await tariffs.for_consumer(conn, principal, consumer["id"])
            except InvalidInput as exc:
                if str(exc) not in notes:  # the estimate needs the same tariff: say it once
                    notes.append(str(exc))
        balance = generation_meter = None
        if can_readings and section != "bills":
            usage = await analytics.usage(conn, principal, consumer["id"])
            if consumer["generation_kind"]:
                balance = await energy_balance.daily(
                    conn, principal, consumer["id"], start=None, end=None
                )
                balance["days"] = _since_first_reading(balance["days"][::-1][:BALANCE_DAYS])
        if consumer["generation_meter_id"]:
            cursor = await conn.execute(
                "SELECT id, external_id FROM meters WHERE id = %s",
                (consumer["generation_meter_id"],),
            )
            generation_meter = await cursor.fetchone()
        bill_page = (
            await listings.invoices(
                conn,
                principal,
                consumer_id=consumer["id"],
                sort="period",
                descending=True,
                limit=24,
                offset=0,
            )
            if can_bills
            else None
        )
        payments = await invoices.payments_of(conn, principal, consumer["id"]) if can_bills else []
        open_alerts = (
            await listings.alerts(
                conn, principal, consumer_id=consumer["id"], open_only=True, limit=20
            )
            if allowed(principal.role, Permission.ALERT_READ)
            else None
        )
        sent = None
        if section == "staff" and principal.may(Permission.NOTIFICATION_MANAGE):
            sent = await _messages_sent(conn, principal, consumer["id"], board["time_zone"], t)
    return render(
        request,
        "consumer.html",
        principal,
        page="home" if section != "bills" else "",
        title=t("nav.bills") if section == "bills" else consumer["name"],
        section=section,
        consumer=consumer,
        board=board,
        online=online,
        contact_notice=request.query_params.get("contact", "")[:10],
        contact_error=context_error,
        meters=meter_rows,
        estimate=estimate,
        forecast=forecast,
        advice=advice,
        advice_off=advice_off,
        tariff=tariff,
        usage=usage,
        balance=balance,
        generation_meter=generation_meter,
        notes=notes,
        bills=bill_page.rows if bill_page else None,
        payments=payments,
        open_alerts=open_alerts.rows if open_alerts else None,
        sent=sent,
        data=script_json(
            {"consumer_id": consumer["id"], "time_zone": board["time_zone"], "usage": usage}
        ),
    )


async def _stored_advice(conn, principal, consumer_id: int, advice: dict) -> dict:
    """The period's recommendations as stored, with their answers: stored again first when the
    viewer may generate them (unchanged figures write nothing), else as last generated."""
    if principal.may(Permission.RECOMMENDATION_GENERATE):
        stored = await recommendations.store(conn, principal, consumer_id, advice)
        return {**stored, "items": _dismissed_last(stored["items"])}
    items, _ = await recommendations.list_for(
        conn,
        principal,
        consumer_id,
        status=None,
        period_start=advice["period_start"],
        limit=50,
        offset=0,
    )
    return {**advice, "items": _dismissed_last(items)}


def _dismissed_last(items: list[dict]) -> list[dict]:
    """What was turned down goes below what is still worth doing (a stable sort)."""
    return sorted(items, key=lambda item: item["status"] == "dismissed")


def _since_first_reading(days: list[dict]) -> list[dict]:
    """The days (latest first) without the oldest ones that no reading covers: a household
    connected last week shows its week, not a column of dashes (a gap in between keeps its
    dashes)."""
    figures = ("generation_kwh", "import_kwh", "export_kwh")
    while days and all(days[-1][name] is None for name in figures):
        days = days[:-1]
    return days


async def _messages_sent(conn, principal, consumer_id: int, zone: str, t) -> dict:
    """The latest messages to the consumer's accounts, each channel's outcome in words."""
    found = await deliveries.for_consumer(conn, principal, consumer_id, limit=20, offset=0)
    now = datetime.now(UTC)
    rows = [
        n | {"lines": [delivery_line(t, n, d, zone, now) for d in n["deliveries"]]}
        for n in found["items"]
    ]
    return {"rows": rows, "total": found["total"]}


@router.get("/alerts", response_class=HTMLResponse)
async def alerts_page(request: Request) -> Response:
    principal = await viewer(request)
    if not allowed(principal.role, Permission.ALERT_READ):
        return not_allowed(request, principal, Permission.ALERT_READ)
    state = listing(
        request,
        sorts=listings.ALERT_SORTS,
        default_sort="opened",
        default_descending=True,
        filters=("board_id", "severity", "state", "kind", "open"),
    )
    f = state.filters
    async with request.app.state.pool.connection() as conn:
        page = await listings.alerts(
            conn,
            principal,
            board_id=int_or_none(f["board_id"]),
            severity=f["severity"] if f["severity"] in SEVERITIES else None,
            state=f["state"] if f["state"] in STATES else None,
            kind=f["kind"][:64] or None,
            open_only=f["open"] == "1",
            sort=state.sort,
            descending=state.descending,
            limit=state.per_page,
            offset=state.offset,
        )
        kinds = await listings.alert_kinds(conn, principal)
    return render(
        request,
        "alerts.html",
        principal,
        page="alerts",
        title=words(request)("nav.alerts"),
        state=state,
        total=page.total,
        shown=len(page.rows),
        severities=SEVERITIES,
        states=STATES,
        kinds=kinds,
        alerts_json=script_json(
            {"alerts": page.rows, "can_manage": allowed(principal.role, Permission.ALERT_MANAGE)}
        ),
    )


@router.post("/consumers/{consumer_id}/contact", response_class=HTMLResponse)
async def edit_contact(
    request: Request,
    consumer_id: int,
    email: str = Form("", max_length=254),
    phone: str = Form("", max_length=25),
    csrf: str = Form("", max_length=100),
) -> Response:
    """The consumer record's e-mail and phone, as an admin keeps them (sign-up checks them)."""
    principal = await viewer(request)
    if not allowed(principal.role, Permission.CONSUMER_UPDATE):
        return not_allowed(request, principal, Permission.CONSUMER_UPDATE)
    expected = request.cookies.get(CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), csrf.encode()):
        return await _consumer(
            request,
            principal,
            consumer_id,
            section="staff",
            context_error=words(request)("form.expired"),
        )
    try:
        changes = ConsumerUpdate.model_validate(
            {"email": email.strip() or None, "phone": phone.strip() or None}
        )
        async with request.app.state.pool.connection() as conn:
            await consumers.update(
                conn, principal, consumer_id, changes.model_dump(exclude_unset=True)
            )
    except ValidationError as exc:
        field = str(exc.errors()[0]["loc"][0])
        message = words(request)(f"hint.{field}")
        return await _consumer(
            request, principal, consumer_id, section="staff", context_error=message
        )
    except CloudError as exc:
        return await _consumer(
            request, principal, consumer_id, section="staff", context_error=str(exc)
        )
    return RedirectResponse(f"/dashboard/consumers/{consumer_id}?contact=saved", status_code=303)
