"""A gateway's desired configuration under `/api/v1/gateways/{id}/config`, the meters its scans
found under `/api/v1/gateways/{id}/discoveries` and `/api/v1/gateway-discoveries/{id}/assign`;
gateways report scans at `POST /api/v1/control/discoveries` (signed with the gateway's key)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, ConfigDict, Field

from shared import GATEWAY_HEADER, IDENTIFIER_PATTERN, SIGNATURE_HEADER, GatewaySettings, ScanReport

from ..access import Permission, Principal
from ..access.ids import ConsumerId, GatewayDiscoveryId, GatewayId
from ..services import gateway_configs, gateway_control
from .deps import PoolDep, require
from .ingest import read_bounded_body
from .scoped_route import ScopedRoute
from .types import text

people = APIRouter(tags=["gateways"], route_class=ScopedRoute)
gateways = APIRouter(prefix="/api/v1/control", tags=["gateways"], route_class=ScopedRoute)
MAX_SCAN_BYTES = 256 * 1024


class ConfigVersion(BaseModel):
    version: int
    status: str
    detail: str | None
    comment: str | None
    created_at: datetime
    delivered_at: datetime | None
    reported_at: datetime | None
    created_by_name: str | None


class LatestVersion(ConfigVersion):
    settings: GatewaySettings


class Running(BaseModel):
    version: int | None  # 0: the gateway's own file; None: it has not said yet
    settings: GatewaySettings | None
    reported_at: datetime | None


class ConfigOverview(BaseModel):
    gateway_id: int
    running: Running
    latest: LatestVersion | None
    versions: list[ConfigVersion]


class NewVersion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    settings: GatewaySettings
    comment: text(500) | None = None  # type: ignore[valid-type]


@people.get("/api/v1/gateways/{gateway_id}/config", response_model=ConfigOverview)
async def get_config(
    gateway_id: GatewayId, pool: PoolDep, principal: Principal = require(Permission.GATEWAY_READ)
) -> dict:
    """What the gateway runs (as it last reported), the newest version of its settings with
    its status (pending, delivered, applied, rejected or rolled back, with the reason), and the
    versions before."""
    async with pool.connection() as conn:
        return await gateway_configs.overview(conn, principal, gateway_id)


@people.put(
    "/api/v1/gateways/{gateway_id}/config",
    status_code=status.HTTP_201_CREATED,
    response_model=LatestVersion,
)
async def put_config(
    gateway_id: GatewayId,
    body: NewVersion,
    pool: PoolDep,
    principal: Principal = require(Permission.GATEWAY_CONFIGURE),
) -> dict:
    """A new version of the gateway's settings (buses and meters, checks, store, sync), handed
    over at its next contact; it applies them, or keeps what ran before and says why."""
    async with pool.connection() as conn:
        return await gateway_configs.propose(
            conn, principal, gateway_id, body.settings, comment=body.comment
        )


class Discovery(BaseModel):
    id: int
    gateway_id: int
    bus_name: str
    unit: int
    model: str | None
    serial: str | None
    sample: dict[str, float]
    found_at: datetime
    meter_id: int | None
    meter: str | None
    consumer_id: int | None
    consumer_name: str | None
    assigned_at: datetime | None


class AssignedDiscovery(Discovery):
    config_version: int


class Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    consumer_id: ConsumerId
    # the meter's name on the wire; by default its model and serial number
    meter: Annotated[str, Field(pattern=IDENTIFIER_PATTERN)] | None = None
    fast_s: Annotated[float, Field(ge=1, le=3600)] = 10.0
    slow_s: Annotated[float, Field(ge=10, le=86_400)] = 900.0


@people.get("/api/v1/gateways/{gateway_id}/discoveries", response_model=list[Discovery])
async def list_discoveries(
    gateway_id: GatewayId, pool: PoolDep, principal: Principal = require(Permission.GATEWAY_READ)
) -> list[dict[str, Any]]:
    """Meters technicians' scans found on this gateway's buses; those not given to a consumer
    first."""
    async with pool.connection() as conn:
        return await gateway_configs.discoveries(conn, principal, gateway_id)


@people.post("/api/v1/gateway-discoveries/{discovery_id}/assign", response_model=AssignedDiscovery)
async def assign_discovery(
    discovery_id: GatewayDiscoveryId,
    body: Assignment,
    pool: PoolDep,
    principal: Principal = require(Permission.GATEWAY_CONFIGURE),
) -> dict[str, Any]:
    """Give a found meter to a consumer: it is registered, assigned, and added to the gateway's
    configuration, which reaches the gateway at its next contact; readings follow."""
    async with pool.connection() as conn:
        return await gateway_configs.assign(
            conn,
            principal,
            discovery_id,
            consumer_id=body.consumer_id,
            external_id=body.meter,
            fast_s=body.fast_s,
            slow_s=body.slow_s,
        )


@gateways.post("/discoveries", status_code=status.HTTP_201_CREATED)
async def report_scan(request: Request, pool: PoolDep) -> dict[str, int]:
    """For gateways: a signed `ScanReport`, what a technician's scan found on one bus."""
    body = await read_bounded_body(request, MAX_SCAN_BYTES)
    gateway, report = await gateway_control.signed(
        pool,
        body=body,
        gateway_code=request.headers.get(GATEWAY_HEADER),
        signature=request.headers.get(SIGNATURE_HEADER),
        model=ScanReport,
    )
    async with pool.connection() as conn:
        return {"recorded": await gateway_configs.record_scan(conn, gateway, report)}
