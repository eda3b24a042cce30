from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from .deps import PoolDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(pool: PoolDep) -> JSONResponse:
    """Whether the service can reach its database."""
    try:
        async with pool.connection(timeout=5) as conn:
            await conn.execute("SELECT 1")
    except Exception as exc:  # any failure to reach the database is "unhealthy", said plainly
        return JSONResponse({"status": "unhealthy", "database": str(exc)[:200]}, status_code=503)
    return JSONResponse({"status": "ok", "database": "reachable"})
