"""Billing operations in the console: the board's billing cycle and its scheduled runs, start a
run and follow it, review and issue bills (one or
many), record payments, open and resolve disputes, see what is overdue and how old. The pages
read through the services; every change goes through the API from the browser, so it carries
the same permissions, audit and idempotency as any client's."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ..access import Permission, allowed
from ..errors import NotFound
from ..services import analytics, billing_cycles, invoices, listings
from ..services.scoped import BILLING_RUNS, list_rows
from .web import (
    csv_download,
    int_or_none,
    listing,
    not_allowed,
    not_found,
    render,
    script_json,
    viewer,
    wants_csv,
    words,
)

router = APIRouter(prefix="/dashboard", include_in_schema=False)
STATUSES = ("draft", "issued", "paid", "overdue", "disputed", "cancelled")
BILL_CSV = {
    "account_no": "account_no",
    "consumer": "consumer_name",
    "period_start": "period_start",
    "period_end": "period_end",
    "version": "version",
    "status": "status",
    "units_kwh": "units",
    "total": "total",
    "amount_due": "amount_due",
    "paid": "paid",
    "due_date": "due_date",
    "estimated": "estimated",
}


def _months(today: date, count: int = 12) -> list[date]:
    first = today.replace(day=1)
    out = []
    for _ in range(count):
        first = (first - timedelta(days=1)).replace(day=1)
        out.append(first)
    return out


@router.get("/billing", response_class=HTMLResponse)
async def billing_page(request: Request) -> Response:
    principal = await viewer(request)
    if not allowed(principal.role, Permission.BILLING_READ) or principal.role == "CONSUMER":
        return not_allowed(request, principal, Permission.BILLING_READ)
    t = words(request)
    state = listing(
        request,
        sorts=listings.INVOICE_SORTS,
        default_sort="consumer",
        filters=("board_id", "status", "period"),
    )
    async with request.app.state.pool.connection() as conn:
        boards = await analytics.boards(conn, principal)
        board_id = int_or_none(state.filters["board_id"]) or principal.board_id
        board = next((b for b in boards if b["id"] == board_id), boards[0] if boards else None)
        if board is None:
            return render(request, "billing.html", principal, title=t("nav.billing"), board=None)
        tz = ZoneInfo(board["time_zone"])
        today = datetime.now(UTC).astimezone(tz).date()
        months = _months(today)
        try:
            period = date.fromisoformat(state.filters["period"] + "-01")
        except ValueError:
            period = months[0]
        status = state.filters["status"] if state.filters["status"] in STATUSES else None
        page = await listings.invoices(
            conn,
            principal,
            board_id=board["id"],
            status=status,
            period_start=period,
            search=state.search,
            sort=state.sort,
            descending=state.descending,
            limit=listings.MAX_PAGE if wants_csv(request) else state.per_page,
            offset=0 if wants_csv(request) else state.offset,
        )
        if wants_csv(request):
            return csv_download(f"bills-{board['code']}-{period:%Y-%m}", BILL_CSV, page.rows)
        runs, _ = await list_rows(
            conn,
            principal,
            BILLING_RUNS,
            filters={"board_id": board["id"]},
            sort="created_at",
            descending=True,
            limit=10,
            offset=0,
        )
        aging = await invoices.aging(conn, principal, board["id"], today=today)
        cycle = await billing_cycles.get_cycle(conn, principal, board["id"])
        # a run is offered for the months the board has readings in (last month at least)
        cursor = await conn.execute(
            "SELECT min(day) AS first FROM board_energy_daily WHERE board_id = %s", (board["id"],)
        )
        first = (await cursor.fetchone())["first"]
        billable = [m for m in months if first is None or m >= first.replace(day=1)] or months[:1]
    return render(
        request,
        "billing.html",
        principal,
        page="billing",
        title=t("nav.billing"),
        boards=boards,
        board=board,
        months=months,
        billable=billable,
        period=period,
        status_filter=status,
        statuses=STATUSES,
        state=state,
        page_rows=page.rows,
        total=page.total,
        runs=runs,
        cycle=cycle,
        aging=aging,
        data=script_json({"board_id": board["id"], "time_zone": board["time_zone"]}),
    )


@router.get("/invoices/{invoice_id}", response_class=HTMLResponse)
async def invoice_page(request: Request, invoice_id: int) -> Response:
    principal = await viewer(request)
    t = words(request)
    if not allowed(principal.role, Permission.BILLING_READ):
        return not_allowed(request, principal, Permission.BILLING_READ)
    async with request.app.state.pool.connection() as conn:
        try:
            invoice = await invoices.get(conn, principal, invoice_id)
        except NotFound:
            return not_found(request, principal, t("what.invoice", id=invoice_id))
        cursor = await conn.execute(
            "SELECT c.name, c.account_no, c.category, b.time_zone, b.name AS board_name"
            " FROM consumers c JOIN boards b ON b.id = c.board_id WHERE c.id = %s",
            (invoice["consumer_id"],),
        )
        consumer = await cursor.fetchone()
        # the version that took this one's place, if the viewer may see it
        later = await listings.invoices(
            conn,
            principal,
            consumer_id=invoice["consumer_id"],
            period_start=invoice["period_start"],
            latest_only=True,
            limit=1,
        )
        newer = next((r for r in later.rows if r["version"] > invoice["version"]), None)
    return render(
        request,
        "invoice.html",
        principal,
        page="invoice",
        title=t("invoice.title", period=invoice["period_start"].strftime("%B %Y")),
        invoice=invoice,
        consumer=consumer,
        newer=newer,
        data=script_json({"invoice_id": invoice_id}),
    )
