"""Consumers, meters and their readings under `/api/v1`, each behind a permission and the scope
filter.

Lists are paginated (limit 1-200, offset up to 100,000), filtered only on whitelisted columns
and sorted only on whitelisted keys; input models forbid unknown fields (no mass assignment).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from shared import IDENTIFIER_PATTERN

from ..access import Permission, Principal
from ..access.ids import BoardId, ConsumerId, GatewayId, MeterId
from ..errors import InvalidInput
from ..services import consumers, meters, readings
from ..services.scoped import CONSUMERS, METERS
from .deps import PoolDep, ReadPoolDep, require
from .paging import Limit, Offset, Order, Page, one, page
from .scoped_route import ScopedRoute
from .types import PLAIN_TEXT, Day, Email, Instant, Patch, Phone, text

MeterStatus = Literal["active", "inactive", "under_maintenance", "faulty"]

router = APIRouter(prefix="/api/v1", tags=["fleet"], route_class=ScopedRoute)


@router.get("/consumers", response_model=Page)
async def list_consumers(
    pool: PoolDep,
    principal: Principal = require(Permission.CONSUMER_READ),
    board_id: BoardId | None = None,
    category: str | None = Query(None, max_length=64, pattern=PLAIN_TEXT),
    account_no: str | None = Query(None, max_length=64, pattern=PLAIN_TEXT),
    sort: Literal["id", "name", "account_no", "created_at"] = "id",
    order: Order = "asc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page:
    return await page(
        pool,
        principal,
        CONSUMERS,
        {"board_id": board_id, "category": category, "account_no": account_no},
        sort,
        order,
        limit,
        offset,
    )


@router.get("/consumers/{consumer_id}")
async def get_consumer(
    consumer_id: ConsumerId, pool: PoolDep, principal: Principal = require(Permission.CONSUMER_READ)
) -> dict:
    return await one(pool, principal, CONSUMERS, consumer_id)


class GenerationSource(BaseModel):
    """A consumer's own generation (one per consumer), which makes it net metered: its kind,
    capacity in kWp, the day it was connected, and optionally the meter of the same board that
    measures its output on the export register (2.8.0), a meter no consumer is billed on."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["rooftop_solar", "ground_mounted_solar", "wind"]
    capacity_kwp: Annotated[Decimal, Field(gt=0, le=10_000, max_digits=10, decimal_places=3)]
    since: Day
    meter_id: MeterId | None = None


class ConsumerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    board_id: BoardId
    account_no: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9/_-]+$")]
    name: text(200, min_length=1)  # type: ignore[valid-type]
    category: Literal["domestic", "commercial", "industrial", "agricultural"] = "domestic"
    sanctioned_load_kw: Annotated[
        Decimal, Field(gt=0, le=100_000, max_digits=10, decimal_places=3)
    ] = Decimal(1)
    email: Email | None = None
    phone: Phone | None = None
    generation: GenerationSource | None = None


class ConsumerUpdate(Patch):
    NULLABLE = frozenset({"email", "phone", "generation"})
    name: text(200, min_length=1) | None = None  # type: ignore[valid-type]
    category: Literal["domestic", "commercial", "industrial", "agricultural"] | None = None
    sanctioned_load_kw: (
        Annotated[Decimal, Field(gt=0, le=100_000, max_digits=10, decimal_places=3)] | None
    ) = None
    email: Email | None = None
    phone: Phone | None = None
    generation: GenerationSource | None = None  # null removes it


@router.post("/consumers", status_code=status.HTTP_201_CREATED)
async def create_consumer(
    body: ConsumerCreate, pool: PoolDep, principal: Principal = require(Permission.CONSUMER_CREATE)
) -> dict:
    async with pool.connection() as conn:
        return await consumers.create(conn, principal, **body.model_dump())


@router.patch("/consumers/{consumer_id}")
async def update_consumer(
    consumer_id: ConsumerId,
    body: ConsumerUpdate,
    pool: PoolDep,
    principal: Principal = require(Permission.CONSUMER_UPDATE),
) -> dict:
    async with pool.connection() as conn:
        return await consumers.update(
            conn, principal, consumer_id, body.model_dump(exclude_unset=True)
        )


@router.delete("/consumers/{consumer_id}")
async def delete_consumer(
    consumer_id: ConsumerId,
    pool: PoolDep,
    principal: Principal = require(Permission.CONSUMER_DELETE),
) -> dict:
    """Delete a consumer registered by mistake; one with meters or users answers 409."""
    async with pool.connection() as conn:
        return await consumers.delete(conn, principal, consumer_id)


@router.get("/meters", response_model=Page)
async def list_meters(
    pool: PoolDep,
    principal: Principal = require(Permission.METER_READ),
    board_id: BoardId | None = None,
    consumer_id: ConsumerId | None = None,
    gateway_id: GatewayId | None = None,
    model: str | None = Query(None, max_length=32, pattern=PLAIN_TEXT),
    confirmed: bool | None = Query(
        None, description="false: meters gateways reported that await an admin's confirmation"
    ),
    meter_status: MeterStatus | None = Query(None, alias="status"),
    sort: Literal["id", "external_id", "created_at"] = "id",
    order: Order = "asc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page:
    return await page(
        pool,
        principal,
        METERS,
        {
            "board_id": board_id,
            "consumer_id": consumer_id,
            "gateway_id": gateway_id,
            "model": model,
            "confirmed": confirmed,
            "status": meter_status,
        },
        sort,
        order,
        limit,
        offset,
    )


@router.get("/meters/{meter_id}")
async def get_meter(
    meter_id: MeterId, pool: PoolDep, principal: Principal = require(Permission.METER_READ)
) -> dict:
    return await one(pool, principal, METERS, meter_id)


@router.get("/meters/{meter_id}/latest")
async def get_meter_latest(
    meter_id: MeterId, pool: ReadPoolDep, principal: Principal = require(Permission.READING_READ)
) -> list[dict]:
    """The newest value of every quantity the meter reports (of the last 31 days), with its
    name, unit and the kind it belongs to (energy, demand, power, voltage, current, quality)."""
    async with pool.connection() as conn:
        return await readings.latest_values(conn, principal, meter_id)


@router.get("/meters/{meter_id}/readings")
async def get_meter_readings(
    meter_id: MeterId,
    pool: ReadPoolDep,
    start: Annotated[Instant, Query(alias="from")],
    end: Annotated[Instant, Query(alias="to")],
    quantity: str = Query(..., max_length=16, pattern=PLAIN_TEXT),
    interval: Literal["raw", "15min", "hour", "day"] = "hour",
    principal: Principal = require(Permission.READING_READ),
) -> dict:
    """Raw readings, or energy per bucket (cumulative registers) / min-avg-max (others)."""
    async with pool.connection() as conn:
        return await readings.meter_readings(
            conn, principal, meter_id, quantity=quantity, start=start, end=end, interval=interval
        )


def check_aware(*, start: datetime, end: datetime) -> None:
    for name, moment in (("from", start), ("to", end)):
        if moment.tzinfo is None:
            raise InvalidInput(f"{name} needs a time zone (e.g. Z)", errors=[(name, "naive")])


ExternalId = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
Model = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9._-]+$")]
Protocol = Literal["modbus-rtu", "modbus-tcp", "dlms", "mqtt"]
CtRatio = Annotated[Decimal, Field(gt=0, le=100_000, max_digits=10, decimal_places=3)]


class MeterFields(Patch):
    NULLABLE = frozenset({"model", "protocol", "phases", "installed_at"})
    model: Model | None = None
    protocol: Protocol | None = None
    phases: Literal[1, 3] | None = None
    ct_ratio: CtRatio | None = None
    installed_at: Instant | None = None


class MeterCreate(MeterFields):
    board_id: BoardId
    external_id: ExternalId


class MeterAssign(BaseModel):
    """Null clears an assignment; an absent field leaves it as it is."""

    model_config = ConfigDict(extra="forbid")
    consumer_id: ConsumerId | None = None
    gateway_id: GatewayId | None = None


class MeterStatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: MeterStatus
    reason: text(500, min_length=3)  # type: ignore[valid-type]


class MeterReplace(MeterFields):
    external_id: ExternalId
    replaced_at: Instant


@router.post("/meters", status_code=status.HTTP_201_CREATED)
async def create_meter(
    body: MeterCreate, pool: PoolDep, principal: Principal = require(Permission.METER_CREATE)
) -> dict:
    async with pool.connection() as conn:
        return await meters.create(conn, principal, **body.model_dump())


@router.patch("/meters/{meter_id}")
async def update_meter(
    meter_id: MeterId,
    body: MeterFields,
    pool: PoolDep,
    principal: Principal = require(Permission.METER_UPDATE),
) -> dict:
    async with pool.connection() as conn:
        return await meters.update(conn, principal, meter_id, body.model_dump(exclude_unset=True))


@router.post("/meters/{meter_id}/assign")
async def assign_meter(
    meter_id: MeterId,
    body: MeterAssign,
    pool: PoolDep,
    principal: Principal = require(Permission.METER_ASSIGN),
) -> dict:
    """Assign the meter to a consumer and/or a gateway of its board (null unassigns)."""
    async with pool.connection() as conn:
        return await meters.assign(conn, principal, meter_id, body.model_dump(exclude_unset=True))


@router.post("/meters/{meter_id}/status")
async def set_meter_status(
    meter_id: MeterId,
    body: MeterStatusChange,
    pool: PoolDep,
    principal: Principal = require(Permission.METER_UPDATE),
) -> dict:
    """Mark the meter active, inactive, under maintenance or faulty, with the reason (audited;
    409 if it already is). The cloud's checks and billing go by it: see `cloud_checks` and
    `billing_runs`."""
    async with pool.connection() as conn:
        return await meters.set_status(conn, principal, meter_id, **body.model_dump())


@router.post("/meters/{meter_id}/confirm")
async def confirm_meter(
    meter_id: MeterId, pool: PoolDep, principal: Principal = require(Permission.METER_ASSIGN)
) -> dict:
    """Accept a meter that a gateway reported and the cloud did not know (409 if confirmed)."""
    async with pool.connection() as conn:
        return await meters.confirm(conn, principal, meter_id)


@router.post("/meters/{meter_id}/replace", status_code=status.HTTP_201_CREATED)
async def replace_meter(
    meter_id: MeterId,
    body: MeterReplace,
    pool: PoolDep,
    principal: Principal = require(Permission.METER_ASSIGN),
) -> dict:
    """Swap the meter for a new one: the consumer and gateway move to the new meter."""
    async with pool.connection() as conn:
        return await meters.replace(conn, principal, meter_id, **body.model_dump())


@router.get("/meters/{meter_id}/history")
async def meter_history(
    meter_id: MeterId, pool: PoolDep, principal: Principal = require(Permission.METER_READ)
) -> list[dict]:
    """The meter's replacement chain (installation and replacement dates), oldest first."""
    async with pool.connection() as conn:
        return await meters.history(conn, principal, meter_id)


@router.delete("/meters/{meter_id}")
async def delete_meter(
    meter_id: MeterId, pool: PoolDep, principal: Principal = require(Permission.METER_DELETE)
) -> dict:
    """Delete a meter registered by mistake; one with readings answers 409."""
    async with pool.connection() as conn:
        return await meters.delete(conn, principal, meter_id)
