"""The page of a board's report formats and schedules (`/dashboard/report-formats`): the formats
with their columns, grouping and file type, the schedules with when they run next (the board's
local time, with its zone) and how their last run went, and the forms to make, change and delete
both. The forms are filled by the page's script from the kinds' catalog and go through the API,
so they carry its checks, scope and audit."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ..access import Permission, allowed
from ..reports import layouts
from ..reports.when import WEEKDAYS
from ..services import report_formats, report_schedules
from ..services.scoped import BOARDS, list_rows
from .web import int_or_none, not_allowed, render, script_json, viewer, words

router = APIRouter(prefix="/dashboard", include_in_schema=False)


def catalog() -> dict[str, Any]:
    """The kinds' columns and groupings, as the form offers them."""
    return {
        kind: {
            "columns": [{"key": c.key, "label": c.label} for c in spec.columns],
            "default_columns": list(spec.default_columns),
            "groupings": [{"key": g.key, "label": g.label} for g in spec.groupings],
        }
        for kind, spec in layouts.KINDS.items()
    }


async def _staff(conn, board: dict[str, Any]) -> list[dict[str, Any]]:
    """Who on the board may receive a report: its active staff and its state's admins."""
    cursor = await conn.execute(
        "SELECT id, email, name, role FROM users WHERE active AND role <> 'CONSUMER'"
        " AND (board_id = %s OR (role = 'STATE_ADMIN' AND state_id = %s)) ORDER BY email"
        " LIMIT 200",
        (board["id"], board["state_id"]),
    )
    return await cursor.fetchall()


@router.get("/report-formats", response_class=HTMLResponse)
async def report_formats_page(request: Request) -> Response:
    principal = await viewer(request)
    if not allowed(principal.role, Permission.REPORT_READ):
        return not_allowed(request, principal, Permission.REPORT_READ)
    t = words(request)
    async with request.app.state.pool.connection() as conn:
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
        wanted = int_or_none(request.query_params.get("board_id")) or principal.board_id
        board = next((b for b in boards if b["id"] == wanted), boards[0] if boards else None)
        if board is None:
            return render(
                request, "report_formats.html", principal, title=t("rformat.title"), board=None
            )
        formats = await report_formats.list_for_board(conn, principal, board["id"])
        schedules = await report_schedules.list_for_board(conn, principal, board["id"])
        staff = await _staff(conn, board)
    names = {u["id"]: u["name"] or u["email"] for u in staff}
    for schedule in schedules:
        schedule["recipients"] = [
            names.get(user_id, f"#{user_id}") for user_id in schedule["user_ids"]
        ] + list(schedule["emails"])
    data = {
        "board_id": board["id"],
        "catalog": catalog(),
        "formats": formats,
        "schedules": [
            {k: v for k, v in s.items() if k not in ("runs", "recipients")} for s in schedules
        ],
        "staff": [{"id": u["id"], "label": u["name"] or u["email"]} for u in staff],
    }
    headings = {
        kind: {c.key: c.label for c in spec.columns} for kind, spec in layouts.KINDS.items()
    }
    groupings = {
        kind: {g.key: g.label for g in spec.groupings} for kind, spec in layouts.KINDS.items()
    }
    return render(
        request,
        "report_formats.html",
        principal,
        page="report-formats",
        title=t("rformat.title"),
        board=board,
        boards=boards,
        formats=formats,
        schedules=schedules,
        headings=headings,
        groupings=groupings,
        weekdays=WEEKDAYS,
        staff=staff,
        data=script_json(data),
    )
