"""The operator console's first pages: the overview (one board at a glance; every board side by
side for state and super admins) and analytics (consumption by board, category and consumer
against earlier periods, top consumers, load against capacity, daily profiles).

Figures come from `cloud.services.analytics` (aggregates, never raw readings); charts are drawn
in the browser from the same JSON API a client would call.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from .. import formats
from ..access import Permission, allowed
from ..errors import InvalidInput, NotFound
from ..services import analytics
from .web import (
    csv_download,
    int_or_none,
    not_allowed,
    not_found,
    render,
    script_json,
    viewer,
    words,
)

router = APIRouter(prefix="/dashboard", include_in_schema=False)


@router.get("", response_class=HTMLResponse)
async def overview(request: Request, board_id: str | None = None) -> Response:
    principal = await viewer(request)
    if principal.role == "CONSUMER":
        return RedirectResponse("/dashboard/home", status_code=303)
    if not allowed(principal.role, Permission.BOARD_READ):
        return not_allowed(request, principal, Permission.BOARD_READ)
    t = words(request)
    async with request.app.state.pool.connection() as conn:
        boards = await analytics.boards(conn, principal)
        chosen = (
            int_or_none(board_id) or principal.board_id or (boards[0]["id"] if boards else None)
        )
        if chosen is None:
            return render(
                request, "overview.html", principal, title=t("nav.overview"), boards=[], board=None
            )
        try:
            figures = await analytics.overview(conn, principal, chosen)
        except NotFound:
            return not_found(request, principal, t("what.board", id=chosen))
    board = figures["board"]
    return render(
        request,
        "overview.html",
        principal,
        page="overview",
        title=f"{board['name']} — {t('nav.overview')}",
        boards=boards,
        board=board,
        o=figures,
        data=script_json(
            {
                "board_id": board["id"],
                "time_zone": board["time_zone"],
                "capacity_kw": board["capacity_kw"],
                "alerts_per_day": figures.get("alerts", {}).get("opened_per_day", []),
            }
        ),
    )


def _period(request: Request, tz: ZoneInfo) -> tuple[date, date]:
    """The period of the query string (`from`, and `to`: the last day, included; local days)
    as [start, end), else the last 30 days up to today."""
    today = datetime.now(UTC).astimezone(tz).date()
    try:
        start = date.fromisoformat(request.query_params.get("from", ""))
        last = date.fromisoformat(request.query_params.get("to", ""))
    except ValueError:
        return today - timedelta(days=29), today + timedelta(days=1)
    return start, last + timedelta(days=1)


@router.get("/analytics", response_class=HTMLResponse)
async def analytics_page(request: Request) -> Response:
    principal = await viewer(request)
    if not allowed(principal.role, Permission.READING_READ) or principal.role == "CONSUMER":
        return not_allowed(request, principal, Permission.READING_READ)
    t = words(request)
    query = request.query_params
    group_by = query.get("group_by", "category")
    if group_by not in ("board", "category", "consumer"):
        group_by = "category"
    async with request.app.state.pool.connection() as conn:
        boards = await analytics.boards(conn, principal)
        board_id = int_or_none(query.get("board_id")) or principal.board_id
        board = next((b for b in boards if b["id"] == board_id), boards[0] if boards else None)
        if board is None:
            return render(
                request, "analytics.html", principal, title=t("nav.analytics"), board=None
            )
        tz = ZoneInfo(board["time_zone"])
        start, end = _period(request, tz)
        error = None
        try:
            if end <= start:
                raise InvalidInput(
                    t(
                        "analytics.backwards",
                        start=formats.local_date(start),
                        last=formats.local_date(end - timedelta(days=1)),
                    )
                )
            table = await analytics.consumption(
                conn,
                principal,
                board_id=board["id"] if group_by != "board" else None,
                group_by=group_by,
                start=start,
                end=end,
                limit=10_000 if query.get("format") == "csv" else 50,
                offset=0,
            )
            top = await analytics.consumption(
                conn,
                principal,
                board_id=board["id"],
                group_by="consumer",
                start=start,
                end=end,
                limit=10,
                offset=0,
            )
        except InvalidInput as exc:
            error, table, top = str(exc), None, None
    if table is not None and query.get("format") == "csv":
        return csv_download(
            f"consumption-{group_by}-{start}-{end}",
            {
                group_by: "label",
                "energy_kwh": "energy_kwh",
                "previous_period_kwh": "previous_kwh",
                "same_period_last_year_kwh": "last_year_kwh",
            },
            table["items"],
        )
    return render(
        request,
        "analytics.html",
        principal,
        page="analytics",
        title=t("nav.analytics"),
        boards=boards,
        board=board,
        start=start,
        end=end,
        last_day=end - timedelta(days=1),
        group_by=group_by,
        table=table,
        top=top,
        error=error,
        data=script_json(
            {
                "board_id": board["id"],
                "time_zone": board["time_zone"],
                "capacity_kw": board["capacity_kw"],
                "from": start,
                "to": end,
                "error": error is not None,  # nothing to draw: the period cannot be asked for
                "start_instant": datetime.combine(start, datetime.min.time(), tz),
                "end_instant": datetime.combine(end, datetime.min.time(), tz),
            }
        ),
    )
