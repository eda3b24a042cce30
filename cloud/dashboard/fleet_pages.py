"""The fleet in the console: meters (a searchable list; a meter's page that leads with its
charts, its values grouped by kind and its history), gateways (health at a glance) and consumers
(a list; a consumer's page, which is also what a consumer sees of themselves)."""

from __future__ import annotations

from collections import OrderedDict

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..access import Permission, Principal, allowed
from ..errors import CloudError, Conflict, NotFound
from ..services import listings, meters, readings
from ..services.scoped import METERS, get_row
from .web import (
    csrf_ok,
    int_or_none,
    listing,
    not_allowed,
    not_found,
    page_size,
    render,
    script_json,
    table_page,
    viewer,
    words,
)

router = APIRouter(prefix="/dashboard", include_in_schema=False)
GROUPS = ("energy", "demand", "power", "voltage", "current", "quality")
# the charts of a meter's page: which quantities each draws (only those the meter reports)
CHARTS = (
    ("power", ("1.7.0", "2.7.0"), "avg"),
    ("energy", ("1.8.0", "2.8.0"), "energy"),
    ("voltage", ("32.7.0", "52.7.0", "72.7.0"), "avg"),
    ("current", ("31.7.0", "51.7.0", "71.7.0"), "avg"),
    ("power_factor", ("13.7.0", "33.7.0", "53.7.0", "73.7.0"), "avg"),
    ("thd", ("32.7.124", "52.7.124", "72.7.124", "31.7.124", "51.7.124", "71.7.124"), "avg"),
)


METER_CSV = {
    "meter": "external_id",
    "board": "board_code",
    "model": "model",
    "consumer": "consumer_name",
    "account_no": "account_no",
    "gateway": "gateway_code",
    "last_reading_utc": "last_reading_at",
    "health": "health",
    "status": "status",
}


@router.get("/meters", response_class=HTMLResponse)
async def meters_page(request: Request) -> Response:
    principal = await viewer(request)
    if not allowed(principal.role, Permission.METER_READ):
        return not_allowed(request, principal, Permission.METER_READ)
    state = listing(
        request,
        sorts=listings.METER_SORTS,
        default_sort="meter",
        filters=("board_id", "health", "status"),
    )
    health = state.filters["health"] if state.filters["health"] in listings.HEALTHS else None
    status = state.filters["status"] if state.filters["status"] in meters.STATUSES else None
    limit, offset = page_size(request, state)
    async with request.app.state.pool.connection() as conn:
        page = await listings.meters(
            conn,
            principal,
            board_id=int_or_none(state.filters["board_id"]),
            health=health,
            status=status,
            search=state.search,
            sort=state.sort,
            descending=state.descending,
            limit=limit,
            offset=offset,
        )
    return table_page(
        request,
        principal,
        "meters.html",
        title_key="nav.meters",
        state=state,
        rows=page.rows,
        total=page.total,
        csv_name="meters",
        csv_columns=METER_CSV,
        healths=listings.HEALTHS,
        statuses=meters.STATUSES,
    )


@router.get("/meters/{meter_id}", response_class=HTMLResponse)
async def meter_page(request: Request, meter_id: int) -> Response:
    return await meter_view(request, await viewer(request), meter_id)


async def meter_view(
    request: Request,
    principal: Principal,
    meter_id: int,
    *,
    supply: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    """The meter page; `supply`: a supply form that was refused (its action, its reason, why),
    shown open with what was typed."""
    t = words(request)
    async with request.app.state.pool.connection() as conn:
        try:
            meter = await get_row(conn, principal, METERS, meter_id)
        except NotFound:
            return not_found(request, principal, t("what.meter", id=meter_id))
        named = await _named_meter(conn, principal, meter)
        latest = (
            await readings.latest_values(conn, principal, meter_id)
            if allowed(principal.role, Permission.READING_READ)
            else []
        )
        chain = await meters.events(conn, principal, meter_id)
    grouped: OrderedDict[str, list] = OrderedDict((g, []) for g in GROUPS)
    for value in latest:
        grouped[value["group"]].append(value)
    reported = {v["quantity"] for v in latest}
    charts = [
        {
            "id": f"chart-{name}",
            "name": name,
            "kind": kind,
            "quantities": [q for q in codes if q in reported],
        }
        for name, codes, kind in CHARTS
        if any(q in reported for q in codes)
    ]
    return render(
        request,
        "meter.html",
        principal,
        status=status,
        supply=supply,
        page="meter",
        title=t("meter.title", meter=meter["external_id"]),
        meter=named,
        groups={g: v for g, v in grouped.items() if v},
        charts=charts,
        events=chain,
        statuses=meters.STATUSES,
        data=script_json(
            {
                "meter_id": meter_id,
                "time_zone": named["time_zone"],
                "charts": charts,
                "names": {q: t(f"quantity.{q}") for c in charts for q in c["quantities"]},
                "units": {v["quantity"]: v["unit"] for v in latest},
            }
        ),
    )


@router.post("/meters/{meter_id}/status")
async def set_meter_status(request: Request, meter_id: int) -> Response:
    """The meter page's status form (a plain form with the CSRF token): the status with its
    reason, back to the page; what was refused is said there."""
    principal = await viewer(request)
    form = {k: str(v)[:600] for k, v in (await request.form()).items() if isinstance(v, str)}
    here = f"/dashboard/meters/{meter_id}"
    if not csrf_ok(request, form.get("csrf", "")):
        return RedirectResponse(here, status_code=303)
    if not principal.may(Permission.METER_UPDATE):
        return not_allowed(request, principal, Permission.METER_UPDATE)
    reason = form.get("reason", "").strip()
    if len(reason) < 3:
        return RedirectResponse(f"{here}?status_error=reason", status_code=303)
    try:
        async with request.app.state.pool.connection() as conn:
            await meters.set_status(
                conn, principal, meter_id, status=form.get("status", ""), reason=reason[:500]
            )
    except NotFound:
        return not_found(request, principal, words(request)("what.meter", id=meter_id))
    except Conflict as exc:
        code = "same" if "already" in str(exc) else "replaced"
        return RedirectResponse(f"{here}?status_error={code}", status_code=303)
    except CloudError:
        return RedirectResponse(f"{here}?status_error=status", status_code=303)
    return RedirectResponse(f"{here}#meter-status", status_code=303)


async def _named_meter(conn, principal, meter: dict) -> dict:
    """The meter with its consumer's and gateway's names and its board's zone."""
    cursor = await conn.execute(
        "SELECT c.name AS consumer_name, c.account_no, g.gateway_code, b.code AS board_code,"
        " b.name AS board_name, b.time_zone FROM meters m JOIN boards b ON b.id = m.board_id"
        " LEFT JOIN consumers c ON c.id = m.consumer_id"
        " LEFT JOIN gateways g ON g.id = m.gateway_id WHERE m.id = %s",
        (meter["id"],),
    )
    return {**meter, **(await cursor.fetchone())}


GATEWAY_CSV = {
    "gateway": "gateway_code",
    "board": "board_code",
    "health": "health",
    "last_seen_utc": "last_seen_at",
    "backlog_readings": "backlog_readings",
    "oldest_unsent_utc": "oldest_unsent_at",
    "clock_synced": "clock_synced",
    "clock_offset_s": "clock_offset_s",
    "software": "software_version",
    "meters": "meters",
}
CONSUMER_CSV = {
    "account_no": "account_no",
    "name": "name",
    "category": "category",
    "sanctioned_load_kw": "sanctioned_load_kw",
    "board": "board_code",
    "meters": "meters",
}


@router.get("/gateways", response_class=HTMLResponse)
async def gateways_page(request: Request) -> Response:
    principal = await viewer(request)
    if not allowed(principal.role, Permission.GATEWAY_READ):
        return not_allowed(request, principal, Permission.GATEWAY_READ)
    state = listing(
        request, sorts=listings.GATEWAY_SORTS, default_sort="gateway", filters=("board_id",)
    )
    limit, offset = page_size(request, state)
    async with request.app.state.pool.connection() as conn:
        page = await listings.gateways(
            conn,
            principal,
            board_id=int_or_none(state.filters["board_id"]),
            search=state.search,
            sort=state.sort,
            descending=state.descending,
            limit=limit,
            offset=offset,
        )
    return table_page(
        request,
        principal,
        "gateways.html",
        title_key="nav.gateways",
        state=state,
        rows=page.rows,
        total=page.total,
        csv_name="gateways",
        csv_columns=GATEWAY_CSV,
    )


@router.get("/consumers", response_class=HTMLResponse)
async def consumers_page(request: Request) -> Response:
    principal = await viewer(request)
    if not allowed(principal.role, Permission.CONSUMER_READ) or principal.role == "CONSUMER":
        return not_allowed(request, principal, Permission.CONSUMER_READ)
    state = listing(
        request,
        sorts=listings.CONSUMER_SORTS,
        default_sort="name",
        filters=("board_id", "category"),
    )
    limit, offset = page_size(request, state)
    async with request.app.state.pool.connection() as conn:
        page = await listings.consumers(
            conn,
            principal,
            board_id=int_or_none(state.filters["board_id"]),
            category=state.filters["category"] or None,
            search=state.search,
            sort=state.sort,
            descending=state.descending,
            limit=limit,
            offset=offset,
        )
    return table_page(
        request,
        principal,
        "consumers.html",
        title_key="nav.consumers",
        state=state,
        rows=page.rows,
        total=page.total,
        csv_name="consumers",
        csv_columns=CONSUMER_CSV,
    )
