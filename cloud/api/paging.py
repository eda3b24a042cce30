"""Pages of scoped rows: hard limits on page size and offset, shared by every list route."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel

from ..access import Principal
from ..services.scoped import Table, get_row, list_rows
from .deps import PoolDep

Limit = Annotated[int, Query(ge=1, le=200)]
Offset = Annotated[int, Query(ge=0, le=100_000)]
Order = Literal["asc", "desc"]


class Page(BaseModel):
    items: list[dict[str, Any]]
    total: int
    limit: int
    offset: int


async def page(
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


async def one(pool: PoolDep, principal: Principal, table: Table, row_id: int) -> dict:
    async with pool.connection() as conn:
        return await get_row(conn, principal, table, row_id)
