"""The audit log under `/api/v1/audit`: who did what, for auditors and administrators, within
their scope (what the users and gateways of their scope did). The list and the CSV take the same
filters: actor (exact, or a part of it), entity, entity id, action and a time range whose ends
carry a zone."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from ..access import Permission, Principal
from ..access.ids import AuditEntryId
from ..services import audit
from .deps import PoolDep, require
from .paging import Limit, Offset, Page
from .scoped_route import ScopedRoute
from .types import PLAIN_TEXT, Instant

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], route_class=ScopedRoute)


def _text(max_length: int, description: str) -> Any:
    return Query(min_length=1, max_length=max_length, pattern=PLAIN_TEXT, description=description)


def audit_filter(
    actor: Annotated[
        str | None, _text(80, "exactly this actor: user:<id>, gateway:<code>, cli")
    ] = None,
    actor_contains: Annotated[str | None, _text(80, "actors containing this (any case)")] = None,
    entity: Annotated[str | None, _text(40, "the kind of thing changed: meter, invoice...")] = None,
    entity_id: Annotated[str | None, _text(80, "the changed thing's id (with entity)")] = None,
    action: Annotated[str | None, _text(40, "create, update, assign...")] = None,
    start: Annotated[
        Instant | None, Query(alias="from", description="at or after; with zone")
    ] = None,
    end: Annotated[Instant | None, Query(alias="to", description="before; with zone")] = None,
) -> audit.AuditFilter:
    return audit.AuditFilter(
        actor=actor,
        actor_contains=actor_contains,
        entity=entity,
        entity_id=entity_id,
        action=action,
        start=start,
        end=end,
    )


FilterDep = Annotated[audit.AuditFilter, Depends(audit_filter)]


@router.get("", response_model=Page)
async def list_audit(
    pool: PoolDep,
    wanted: FilterDep,
    principal: Principal = require(Permission.AUDIT_READ),
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page:
    """Newest first."""
    async with pool.connection() as conn:
        rows, total = await audit.entries(
            conn, principal, limit=limit, offset=offset, wanted=wanted
        )
    return Page(items=rows, total=total, limit=limit, offset=offset)


@router.get("/export.csv", response_class=StreamingResponse)
async def export_audit(
    pool: PoolDep, wanted: FilterDep, principal: Principal = require(Permission.AUDIT_READ)
) -> StreamingResponse:
    """Every entry the filters keep, newest first, as CSV (UTF-8 with a byte-order mark; before
    and after as JSON), streamed a thousand rows at a time."""
    return StreamingResponse(
        audit.export_csv(pool, principal, wanted),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="audit.csv"'},
    )


@router.get("/{entry_id}")
async def get_audit_entry(
    entry_id: AuditEntryId, pool: PoolDep, principal: Principal = require(Permission.AUDIT_READ)
) -> dict:
    """One entry with its before and after, and `changes`: each key that changed, old and new."""
    async with pool.connection() as conn:
        return await audit.entry(conn, principal, entry_id)
