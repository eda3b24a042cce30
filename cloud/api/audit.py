"""The audit log under `/api/v1/audit`: who did what, for auditors and administrators, within
their scope (what the users and gateways of their scope did)."""

from __future__ import annotations

from fastapi import APIRouter

from ..access import Permission, Principal
from ..services import audit
from .deps import PoolDep, require
from .paging import Limit, Offset, Page
from .scoped_route import ScopedRoute

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], route_class=ScopedRoute)


@router.get("", response_model=Page)
async def list_audit(
    pool: PoolDep,
    principal: Principal = require(Permission.AUDIT_READ),
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page:
    """Newest first."""
    async with pool.connection() as conn:
        rows, total = await audit.entries(conn, principal, limit=limit, offset=offset)
    return Page(items=rows, total=total, limit=limit, offset=offset)
