"""A board's report formats and schedules: `/api/v1/boards/{id}/report-formats`,
`/api/v1/report-formats/{id}`, `/api/v1/boards/{id}/report-schedules`,
`/api/v1/report-schedules/{id}`, the catalog of each kind's columns and groupings
(`/api/v1/report-columns`), and the download links e-mailed to addresses outside the board
(`/api/v1/report-links/{token}`, public: the link is the credential)."""

from __future__ import annotations

import asyncio
from datetime import time
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..access import Permission, Principal
from ..access.ids import BoardId, ReportFormatId, ReportScheduleId, UserId
from ..reports import layouts
from ..reports.formats import MEDIA_TYPES
from ..services import report_formats, report_schedules, scheduled_reports
from .deps import PoolDep, require
from .scoped_route import ScopedRoute
from .types import Email, text

router = APIRouter(prefix="/api/v1", tags=["report formats"], route_class=ScopedRoute)
links = APIRouter(prefix="/api/v1", tags=["report formats"])
Kind = Literal["consumption", "billing_summary", "alerts", "fleet_health"]
FileType = Literal["csv", "json", "xml", "pdf"]
ColumnKey = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z_]+$")]


class ColumnChoice(BaseModel):
    """One column of the report: a column of its kind, and the heading to give it (its own
    heading when left out)."""

    model_config = ConfigDict(extra="forbid")
    column: ColumnKey
    label: text(60, min_length=1) | None = None  # type: ignore[valid-type]


class ReportFormatBody(BaseModel):
    """A report format: which of its kind's columns it shows in which order (`GET
    /report-columns` lists them), grouped by one of the kind's groupings with totals per
    group, sorted by one of the chosen columns, written as CSV, JSON, XML or PDF."""

    model_config = ConfigDict(extra="forbid")
    name: text(80, min_length=1)  # type: ignore[valid-type]
    kind: Kind
    file_type: FileType = "csv"
    columns: Annotated[list[ColumnChoice], Field(min_length=1, max_length=layouts.MAX_COLUMNS)]
    group_by: ColumnKey | None = None
    sort_by: ColumnKey | None = None
    sort_desc: bool = False


@router.get("/report-columns")
async def report_columns(principal: Principal = require(Permission.REPORT_READ)) -> dict:
    """Each report kind's columns (key, heading, whether it is an amount that adds up), the
    columns it shows by default and the groupings that fit it."""
    return {
        kind: {
            "columns": [{"key": c.key, "label": c.label, "summed": c.summed} for c in spec.columns],
            "default_columns": list(spec.default_columns),
            "groupings": [{"key": g.key, "label": g.label} for g in spec.groupings],
        }
        for kind, spec in layouts.KINDS.items()
    }


def _body(body: BaseModel) -> dict:
    values = body.model_dump()
    values["columns"] = [
        {k: v for k, v in choice.items() if v is not None} for choice in values["columns"]
    ]
    return values


@router.get("/boards/{board_id}/report-formats")
async def list_report_formats(
    board_id: BoardId, pool: PoolDep, principal: Principal = require(Permission.REPORT_READ)
) -> list[dict]:
    async with pool.connection() as conn:
        return await report_formats.list_for_board(conn, principal, board_id)


@router.post("/boards/{board_id}/report-formats", status_code=status.HTTP_201_CREATED)
async def create_report_format(
    board_id: BoardId,
    body: ReportFormatBody,
    pool: PoolDep,
    principal: Principal = require(Permission.REPORT_GENERATE),
) -> dict:
    """A new format of the board's reports (audited); 422 names a column, grouping or sort
    its kind does not have."""
    async with pool.connection() as conn:
        return await report_formats.create(conn, principal, board_id, **_body(body))


@router.get("/report-formats/{format_id}")
async def get_report_format(
    format_id: ReportFormatId, pool: PoolDep, principal: Principal = require(Permission.REPORT_READ)
) -> dict:
    async with pool.connection() as conn:
        return await report_formats.get(conn, principal, format_id)


@router.put("/report-formats/{format_id}")
async def update_report_format(
    format_id: ReportFormatId,
    body: ReportFormatBody,
    pool: PoolDep,
    principal: Principal = require(Permission.REPORT_GENERATE),
) -> dict:
    """Replace the format (audited); reports made before keep the layout they were made with."""
    async with pool.connection() as conn:
        return await report_formats.update(conn, principal, format_id, **_body(body))


@router.delete("/report-formats/{format_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_report_format(
    format_id: ReportFormatId,
    pool: PoolDep,
    principal: Principal = require(Permission.REPORT_GENERATE),
) -> None:
    """Delete the format (audited); 409 while a schedule uses it."""
    async with pool.connection() as conn:
        await report_formats.delete(conn, principal, format_id)


class ReportScheduleBody(BaseModel):
    """A report the board makes by itself: of one of its formats (or a kind and a file type),
    `monthly` once the board's billing run of a period has completed (reporting that period),
    or `weekly` on `weekday` (0 Monday ... 6 Sunday) at `at_time` in the board's zone (reporting
    the seven days before); delivered to users of the board and to e-mail addresses."""

    model_config = ConfigDict(extra="forbid")
    name: text(80, min_length=1)  # type: ignore[valid-type]
    format_id: ReportFormatId | None = None
    kind: Kind | None = None
    file_type: FileType | None = None
    cadence: Literal["monthly", "weekly"]
    weekday: Annotated[int, Field(ge=0, le=6)] | None = None
    at_time: time | None = None
    user_ids: Annotated[list[UserId], Field(max_length=20)] = []
    emails: Annotated[list[Email], Field(max_length=10)] = []
    enabled: bool = True

    @field_validator("at_time")
    @classmethod
    def _local(cls, value: time | None) -> time | None:
        if value is not None and value.tzinfo is not None:
            raise ValueError("is the board's local time: give it without an offset (07:00)")
        return value


@router.get("/boards/{board_id}/report-schedules")
async def list_report_schedules(
    board_id: BoardId, pool: PoolDep, principal: Principal = require(Permission.REPORT_READ)
) -> list[dict]:
    """The board's schedules, each with its next run and its latest runs' outcomes."""
    async with pool.connection() as conn:
        return await report_schedules.list_for_board(conn, principal, board_id)


@router.post("/boards/{board_id}/report-schedules", status_code=status.HTTP_201_CREATED)
async def create_report_schedule(
    board_id: BoardId,
    body: ReportScheduleBody,
    pool: PoolDep,
    principal: Principal = require(Permission.REPORT_GENERATE),
) -> dict:
    async with pool.connection() as conn:
        return await report_schedules.create(conn, principal, board_id, **body.model_dump())


@router.get("/report-schedules/{schedule_id}")
async def get_report_schedule(
    schedule_id: ReportScheduleId,
    pool: PoolDep,
    principal: Principal = require(Permission.REPORT_READ),
) -> dict:
    async with pool.connection() as conn:
        return await report_schedules.get(conn, principal, schedule_id)


@router.put("/report-schedules/{schedule_id}")
async def update_report_schedule(
    schedule_id: ReportScheduleId,
    body: ReportScheduleBody,
    pool: PoolDep,
    principal: Principal = require(Permission.REPORT_GENERATE),
) -> dict:
    async with pool.connection() as conn:
        return await report_schedules.update(conn, principal, schedule_id, **body.model_dump())


@router.delete("/report-schedules/{schedule_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_report_schedule(
    schedule_id: ReportScheduleId,
    pool: PoolDep,
    principal: Principal = require(Permission.REPORT_GENERATE),
) -> None:
    """Delete the schedule (audited); the reports it made stay."""
    async with pool.connection() as conn:
        await report_schedules.delete(conn, principal, schedule_id)


Token = Annotated[str, Path(min_length=20, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]


@links.get("/report-links/{token}", responses={200: {"content": {"text/csv": {}}}})
async def download_by_link(token: Token, request: Request, pool: PoolDep) -> Response:
    """A scheduled report, by the link e-mailed to an address outside the board (the link is
    the credential; it works for a week)."""
    async with pool.connection() as conn:
        report = await scheduled_reports.linked_report(conn, token)
    body = await asyncio.to_thread(request.app.state.report_storage.get, report["storage_key"])
    name = f"{report['kind']}-{report['period_start']}.{report['format']}"
    return Response(
        body,
        media_type=MEDIA_TYPES[report["format"]],
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )
