from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..services.health import database_problem
from .deps import PoolDep
from .scoped_route import ScopedRoute

router = APIRouter(tags=["health"], route_class=ScopedRoute)


@router.get("/health")
async def health(pool: PoolDep) -> JSONResponse:
    """Whether the service can reach its database."""
    problem = await database_problem(pool)
    if problem is not None:
        return JSONResponse({"status": "unhealthy", "database": problem}, status_code=503)
    return JSONResponse({"status": "ok", "database": "reachable"})
