"""Alerts under `/api/v1/alerts`: list with filters, statistics, acknowledge, resolve, and a
server-sent-events stream of changes in the viewer's scope."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict
from sse_starlette import EventSourceResponse

from ..access import Permission, Principal
from ..access.ids import AlertId, BoardId, GatewayId, MeterId
from ..errors import NotFound
from ..jobs import check_settings
from ..services import alerts, listings
from ..services.cloud_checks import run_checks
from ..services.scoped import ALERTS, get_row
from .deps import PoolDep, SettingsDep, require
from .paging import Limit, Offset, Order, Page, one, page
from .scoped_route import ScopedRoute
from .streams import live_stream
from .types import text

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"], route_class=ScopedRoute)
State = Literal["active", "acknowledged", "resolved"]
Severity = Literal["info", "low", "medium", "high", "critical"]


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: text(1000) = ""  # type: ignore[valid-type]


@router.get("", response_model=Page)
async def list_alerts(
    pool: PoolDep,
    principal: Principal = require(Permission.ALERT_READ),
    board_id: BoardId | None = None,
    gateway_id: GatewayId | None = None,
    meter_id: MeterId | None = None,
    state: State | None = None,
    severity: Severity | None = None,
    source: Literal["edge", "cloud"] | None = None,
    kind: text(64) | None = None,  # type: ignore[valid-type]
    sort: Literal["id", "opened_at", "last_seen_at", "severity"] = "opened_at",
    order: Order = "desc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page:
    filters = {
        "board_id": board_id,
        "gateway_id": gateway_id,
        "meter_id": meter_id,
        "state": state,
        "severity": severity,
        "source": source,
        "kind": kind,
    }
    return await page(pool, principal, ALERTS, filters, sort, order, limit, offset)


@router.get("/statistics")
async def alert_statistics(
    pool: PoolDep,
    principal: Principal = require(Permission.ALERT_READ),
    board_id: BoardId | None = None,
) -> dict:
    async with pool.connection() as conn:
        return await alerts.statistics(conn, principal, board_id)


@router.get("/stream")
async def alert_stream(
    request: Request, principal: Principal = require(Permission.ALERT_READ)
) -> EventSourceResponse:
    """Server-sent events: one `alert` event (the alert as JSON, with what it is about in words)
    for each change the viewer may see. A few streams per user at most (429 beyond); a stream
    ends within seconds of the viewer's session ending."""
    pool = request.app.state.pool

    async def pick(change: dict) -> dict | None:
        if change.get("channel") == "notification":
            return None  # a notification: the inbox stream's
        alert = await _named_alert(pool, principal, change["id"])
        return None if alert is None else {"event": "alert", "data": json.dumps(alert, default=str)}

    return live_stream(request, principal, pick)


async def _named_alert(pool, principal: Principal, alert_id: int) -> dict | None:
    """The alert if the viewer may see it, with its meter, consumer and gateway named."""
    try:
        async with pool.connection() as conn:
            alert = await get_row(conn, principal, ALERTS, alert_id)
            named = await listings.alerts(conn, principal, alert_id=alert_id, limit=1)
    except NotFound:
        return None  # outside the viewer's scope
    if named.rows:
        keys = ("meter", "consumer_name", "gateway_code", "board_code", "time_zone")
        alert |= {k: named.rows[0][k] for k in keys}
    return alert


@router.post("/checks")
async def run_cloud_checks(
    pool: PoolDep, settings: SettingsDep, principal: Principal = require(Permission.JOBS_RUN)
) -> dict:
    """Run the cloud's checks now (they also run every `GRIDGATE_JOBS_INTERVAL_S`)."""
    async with pool.connection() as conn:
        return await run_checks(conn, datetime.now(UTC), check_settings(settings))


@router.get("/{alert_id}")
async def get_alert(
    alert_id: AlertId, pool: PoolDep, principal: Principal = require(Permission.ALERT_READ)
) -> dict:
    return await one(pool, principal, ALERTS, alert_id)


@router.post("/{alert_id}/acknowledge")
async def acknowledge_alert(
    alert_id: AlertId,
    body: Note,
    pool: PoolDep,
    principal: Principal = require(Permission.ALERT_MANAGE),
) -> dict:
    async with pool.connection() as conn:
        return await alerts.acknowledge(conn, principal, alert_id, body.note)


@router.post("/{alert_id}/resolve")
async def resolve_alert(
    alert_id: AlertId,
    body: Note,
    pool: PoolDep,
    principal: Principal = require(Permission.ALERT_MANAGE),
) -> dict:
    async with pool.connection() as conn:
        return await alerts.resolve(conn, principal, alert_id, body.note)
