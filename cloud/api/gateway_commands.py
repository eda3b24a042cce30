"""Commands to gateways: people queue and follow them under `/api/v1/gateways/{id}/commands`
and `/api/v1/gateway-commands/{id}`; gateways collect them and report results at
`POST /api/v1/control/exchange` (signed both ways), and may learn the cloud's public key at
`GET /api/v1/control/cloud-key`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request, status
from fastapi.responses import Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from shared import CLOUD_SIGNATURE_HEADER, GATEWAY_HEADER, QUANTITY_CODES, SIGNATURE_HEADER
from shared import public_key_text as key_text

from ..access import Permission, Principal
from ..access.ids import GatewayCommandId, GatewayId, MeterId
from ..services import gateway_control
from .deps import PoolDep, require
from .ingest import read_bounded_body
from .paging import Limit, Offset
from .scoped_route import ScopedRoute
from .types import text

people = APIRouter(tags=["gateways"], route_class=ScopedRoute)
gateways = APIRouter(prefix="/api/v1/control", tags=["gateways"], route_class=ScopedRoute)


class NewCommand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["read_now", "doctor", "upload_log", "restart", "backfill", "set_clock"]
    meter_id: MeterId | None = None  # read_now, backfill, set_clock: the meter, on this gateway
    quantities: Annotated[list[Literal[QUANTITY_CODES]], Field(max_length=64)] | None = None  # type: ignore[valid-type]
    lines: Annotated[int, Field(ge=1, le=2000)] | None = None  # upload_log: how many
    # backfill: the range of the meter's load profile (with a zone; at most 90 days, past)
    start: AwareDatetime | None = None
    end: AwareDatetime | None = None
    max_drift_s: Annotated[float, Field(ge=1, le=3600)] | None = None  # set_clock: else 30 s
    reason: text(500) | None = None  # type: ignore[valid-type]
    expires_in_h: Annotated[float, Field(gt=0, le=720)] = 168  # a week by default


class GatewayCommand(BaseModel):
    id: int
    uid: str
    gateway_id: int
    board_id: int
    kind: str
    meter_id: int | None
    meter: str | None
    args: dict[str, Any]
    reason: str | None
    requested_by: int | None
    requested_by_name: str | None
    status: str
    created_at: datetime
    expires_at: datetime
    delivered_at: datetime | None
    deliveries: int
    started_at: datetime | None
    finished_at: datetime | None
    detail: str | None
    result: dict[str, Any] | None


class CommandPage(BaseModel):
    items: list[GatewayCommand]
    total: int
    limit: int
    offset: int


@people.post(
    "/api/v1/gateways/{gateway_id}/commands",
    status_code=status.HTTP_201_CREATED,
    response_model=GatewayCommand,
)
async def queue_command(
    gateway_id: GatewayId,
    body: NewCommand,
    pool: PoolDep,
    principal: Principal = require(Permission.GATEWAY_COMMAND),
    idempotency_key: Annotated[
        str | None, Header(max_length=100, pattern=r"^[A-Za-z0-9._:-]+$")
    ] = None,
) -> dict:
    """Queue a command; the gateway collects it at its next contact (however long it is away,
    until the command expires) and runs it once. The same `Idempotency-Key` queues it once."""
    async with pool.connection() as conn:
        return await gateway_control.queue(
            conn,
            principal,
            gateway_id,
            kind=body.kind,
            meter_id=body.meter_id,
            quantities=body.quantities,
            lines=body.lines,
            reason=body.reason,
            expires_in=timedelta(hours=body.expires_in_h),
            client_key=f"api:{principal.user_id}:{idempotency_key}" if idempotency_key else None,
            start=body.start,
            end=body.end,
            max_drift_s=body.max_drift_s,
        )


class SupplySwitch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: Literal["disconnect", "reconnect"]
    reason: text(500, 5)  # type: ignore[valid-type]  # kept with the command and in the audit


@people.post(
    "/api/v1/meters/{meter_id}/supply",
    status_code=status.HTTP_201_CREATED,
    response_model=GatewayCommand,
)
async def switch_supply(
    meter_id: MeterId,
    body: SupplySwitch,
    pool: PoolDep,
    principal: Principal = require(Permission.METER_DISCONNECT),
) -> dict:
    """Cut or restore the consumer's supply at the meter: a command to the gateway that reads
    it (DLMS meters with a disconnect control), expiring after a day; audited with the reason."""
    async with pool.connection() as conn:
        return await gateway_control.switch_supply(
            conn, principal, meter_id, connect=body.action == "reconnect", reason=body.reason
        )


@people.get("/api/v1/gateways/{gateway_id}/commands", response_model=CommandPage)
async def list_commands(
    gateway_id: GatewayId,
    pool: PoolDep,
    principal: Principal = require(Permission.GATEWAY_READ),
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict:
    """The gateway's commands, newest first, with their status and results."""
    async with pool.connection() as conn:
        return await gateway_control.of_gateway(
            conn, principal, gateway_id, limit=limit, offset=offset
        )


@people.get("/api/v1/gateway-commands/{command_id}", response_model=GatewayCommand)
async def get_command(
    command_id: GatewayCommandId,
    pool: PoolDep,
    principal: Principal = require(Permission.GATEWAY_READ),
) -> dict:
    async with pool.connection() as conn:
        return await gateway_control.one(conn, principal, command_id)


@people.post("/api/v1/gateway-commands/{command_id}/cancel", response_model=GatewayCommand)
async def cancel_command(
    command_id: GatewayCommandId,
    pool: PoolDep,
    principal: Principal = require(Permission.GATEWAY_COMMAND),
) -> dict:
    """Take back a command the gateway has not collected yet."""
    async with pool.connection() as conn:
        return await gateway_control.cancel(conn, principal, command_id)


@gateways.post("/exchange")
async def exchange(request: Request, pool: PoolDep) -> Response:
    """For gateways: a signed `ControlRequest` (results of finished commands) in, a
    `ControlReply` (commands to run) out, signed with the cloud's key."""
    body = await read_bounded_body(request, gateway_control.MAX_REQUEST_BYTES)
    payload, signature = await gateway_control.exchange(
        pool,
        request.app.state.cloud_key,
        body=body,
        gateway_code=request.headers.get(GATEWAY_HEADER),
        signature=request.headers.get(SIGNATURE_HEADER),
    )
    return Response(
        payload, media_type="application/json", headers={CLOUD_SIGNATURE_HEADER: signature}
    )


@gateways.get("/cloud-key")
async def cloud_key(request: Request) -> dict[str, str]:
    """The public half of the key the cloud signs its commands with (Ed25519, base64)."""
    return {"public_key": key_text(request.app.state.cloud_key)}
