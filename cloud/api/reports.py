"""Reports under `/api/v1/reports`: ask for one (it is generated in the background), list,
download and delete — within scope."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Literal

from fastapi import APIRouter, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict

from ..access import Permission, Principal
from ..access.ids import BoardId, ReportFormatId, ReportId, StateId, WholeStateId
from ..reports.formats import MEDIA_TYPES
from ..services import reports
from ..services.scoped import REPORTS
from .deps import PoolDep, PublicBase, require
from .paging import Limit, Offset, Order, Page, one, page
from .scoped_route import ScopedRoute
from .types import Day

router = APIRouter(prefix="/api/v1/reports", tags=["reports"], route_class=ScopedRoute)
Kind = Literal["consumption", "billing_summary", "alerts", "fleet_health"]
Format = Literal["csv", "json", "xml", "pdf"]


class ReportRequest(BaseModel):
    """A report of a board or a whole state over [period_start, period_end). With `format_id`
    (one of the board's report formats) it follows that format, whose kind and file type it
    takes; without, `kind` is needed and `format` is CSV unless given."""

    model_config = ConfigDict(extra="forbid")
    kind: Kind | None = None
    format: Format | None = None
    format_id: ReportFormatId | None = None
    board_id: BoardId | None = None
    state_id: WholeStateId | None = None  # a state-wide report: for those who cover the state
    period_start: Day
    period_end: Day  # exclusive
    granularity: Literal["daily", "monthly"] = "daily"


def _storage(request: Request):
    return request.app.state.report_storage


@router.post("", status_code=status.HTTP_202_ACCEPTED)
async def request_report(
    body: ReportRequest,
    request: Request,
    pool: PoolDep,
    public_base: PublicBase,
    principal: Principal = require(Permission.REPORT_GENERATE),
) -> dict:
    """Queue a report; poll `GET /reports/{id}` until its status is done, then download it."""
    async with pool.connection() as conn:
        report = await reports.request(conn, principal, **body.model_dump())
    task = asyncio.create_task(
        reports.generate(pool, _storage(request), report["id"], base_url=public_base)
    )
    request.app.state.tasks.add(task)
    task.add_done_callback(request.app.state.tasks.discard)
    return report


@router.get("", response_model=Page)
async def list_reports(
    pool: PoolDep,
    principal: Principal = require(Permission.REPORT_READ),
    board_id: BoardId | None = None,
    state_id: StateId | None = None,
    kind: Kind | None = None,
    status_: Literal["queued", "running", "done", "failed"] | None = Query(None, alias="status"),
    sort: Literal["id", "created_at", "period_start"] = "created_at",
    order: Order = "desc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page:
    filters = {"board_id": board_id, "state_id": state_id, "kind": kind, "status": status_}
    return await page(pool, principal, REPORTS, filters, sort, order, limit, offset)


@router.get("/{report_id}")
async def get_report(
    report_id: ReportId, pool: PoolDep, principal: Principal = require(Permission.REPORT_READ)
) -> dict:
    return await one(pool, principal, REPORTS, report_id)


@router.get("/{report_id}/download", responses={200: {"content": {"text/csv": {}}}})
async def download_report(
    report_id: ReportId,
    request: Request,
    pool: PoolDep,
    principal: Principal = require(Permission.REPORT_READ),
) -> Response:
    async with pool.connection() as conn:
        report, body = await reports.download(conn, principal, _storage(request), report_id)
    # the period as people name it, its last day included: consumption-2026-10-01-to-2026-10-31
    last = report["period_end"] - timedelta(days=1)
    name = f"{report['kind']}-{report['period_start']}-to-{last}.{report['format']}"
    return Response(
        body,
        media_type=MEDIA_TYPES[report["format"]],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.delete("/{report_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_report(
    report_id: ReportId,
    request: Request,
    pool: PoolDep,
    principal: Principal = require(Permission.REPORT_GENERATE),
) -> None:
    async with pool.connection() as conn:
        await reports.delete(conn, principal, _storage(request), report_id)
