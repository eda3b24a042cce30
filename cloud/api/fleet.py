"""Fleet reads and consumer writes under `/api/v1`, each behind a permission and the scope filter.

Lists are paginated (limit 1-200, offset up to 100,000), filtered only on whitelisted columns
and sorted only on whitelisted keys; input models forbid unknown fields (no mass assignment).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidInput
from ..permissions import Permission
from ..services import consumers, readings
from ..services.auth import Principal
from ..services.scoped import CONSUMERS, GATEWAYS, METERS, Table, get_row, list_rows
from .deps import PoolDep, require
from .types import PLAIN_TEXT, text

router = APIRouter(prefix="/api/v1", tags=["fleet"])
Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=100_000)]


class Page(BaseModel):
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int


async def _page(
    pool: PoolDep,
    principal: Principal,
    table: Table,
    filters: dict[str, Any],
    sort: str,
    order: str,
    limit: int,
    offset: int,
) -> Page:
    async with pool.connection() as conn:
        items, total = await list_rows(
            conn,
            principal,
            table,
            filters=filters,
            sort=sort,
            descending=order == "desc",
            limit=limit,
            offset=offset,
        )
    return Page(items=items, total=total, limit=limit, offset=offset)


async def _one(pool: PoolDep, principal: Principal, table: Table, row_id: int) -> dict:
    async with pool.connection() as conn:
        return await get_row(conn, principal, table, row_id)


Order = Literal["asc", "desc"]


@router.get("/consumers", response_model=Page)
async def list_consumers(
    pool: PoolDep,
    principal: Principal = require(Permission.CONSUMER_READ),
    board_id: int | None = None,
    category: str | None = Query(None, max_length=64, pattern=PLAIN_TEXT),
    account_no: str | None = Query(None, max_length=64, pattern=PLAIN_TEXT),
    sort: Literal["id", "name", "account_no", "created_at"] = "id",
    order: Order = "asc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page:
    return await _page(
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
    consumer_id: int, pool: PoolDep, principal: Principal = require(Permission.CONSUMER_READ)
) -> dict:
    return await _one(pool, principal, CONSUMERS, consumer_id)


class ConsumerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    board_id: int
    account_no: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9/_-]+$")]
    name: text(200, min_length=1)  # type: ignore[valid-type]
    category: Literal["domestic", "commercial", "industrial", "agricultural"] = "domestic"
    sanctioned_load_kw: Annotated[
        Decimal, Field(gt=0, le=100_000, max_digits=10, decimal_places=3)
    ] = Decimal(1)


class ConsumerUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: text(200, min_length=1) | None = None  # type: ignore[valid-type]
    category: Literal["domestic", "commercial", "industrial", "agricultural"] | None = None
    sanctioned_load_kw: (
        Annotated[Decimal, Field(gt=0, le=100_000, max_digits=10, decimal_places=3)] | None
    ) = None


@router.post("/consumers", status_code=status.HTTP_201_CREATED)
async def create_consumer(
    body: ConsumerCreate, pool: PoolDep, principal: Principal = require(Permission.CONSUMER_CREATE)
) -> dict:
    async with pool.connection() as conn:
        return await consumers.create(conn, principal, **body.model_dump())


@router.patch("/consumers/{consumer_id}")
async def update_consumer(
    consumer_id: int,
    body: ConsumerUpdate,
    pool: PoolDep,
    principal: Principal = require(Permission.CONSUMER_UPDATE),
) -> dict:
    async with pool.connection() as conn:
        return await consumers.update(
            conn, principal, consumer_id, body.model_dump(exclude_unset=True)
        )


@router.get("/meters", response_model=Page)
async def list_meters(
    pool: PoolDep,
    principal: Principal = require(Permission.METER_READ),
    board_id: int | None = None,
    consumer_id: int | None = None,
    gateway_id: int | None = None,
    model: str | None = Query(None, max_length=32, pattern=PLAIN_TEXT),
    sort: Literal["id", "external_id", "created_at"] = "id",
    order: Order = "asc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page:
    return await _page(
        pool,
        principal,
        METERS,
        {
            "board_id": board_id,
            "consumer_id": consumer_id,
            "gateway_id": gateway_id,
            "model": model,
        },
        sort,
        order,
        limit,
        offset,
    )


@router.get("/meters/{meter_id}")
async def get_meter(
    meter_id: int, pool: PoolDep, principal: Principal = require(Permission.METER_READ)
) -> dict:
    return await _one(pool, principal, METERS, meter_id)


@router.get("/meters/{meter_id}/readings")
async def get_meter_readings(
    meter_id: int,
    pool: PoolDep,
    quantity: str = Query(..., max_length=16, pattern=PLAIN_TEXT),
    start: datetime = Query(..., alias="from"),
    end: datetime = Query(..., alias="to"),
    interval: Literal["raw", "15min", "hour", "day"] = "hour",
    principal: Principal = require(Permission.READING_READ),
) -> dict:
    """Raw readings, or energy per bucket (cumulative registers) / min-avg-max (others)."""
    for name, moment in (("from", start), ("to", end)):
        if moment.tzinfo is None:
            raise InvalidInput(f"{name} needs a time zone (e.g. Z)", errors=[(name, "naive")])
    async with pool.connection() as conn:
        return await readings.meter_readings(
            conn, principal, meter_id, quantity=quantity, start=start, end=end, interval=interval
        )


@router.get("/gateways", response_model=Page)
async def list_gateways(
    pool: PoolDep,
    principal: Principal = require(Permission.GATEWAY_READ),
    board_id: int | None = None,
    status_: Literal["active", "revoked"] | None = Query(None, alias="status"),
    sort: Literal["id", "gateway_code", "last_seen_at"] = "id",
    order: Order = "asc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page:
    return await _page(
        pool,
        principal,
        GATEWAYS,
        {"board_id": board_id, "status": status_},
        sort,
        order,
        limit,
        offset,
    )


@router.get("/gateways/{gateway_id}")
async def get_gateway(
    gateway_id: int, pool: PoolDep, principal: Principal = require(Permission.GATEWAY_READ)
) -> dict:
    return await _one(pool, principal, GATEWAYS, gateway_id)
