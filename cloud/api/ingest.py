"""`POST /api/v1/ingest/batches`: signed, compressed batches from gateways."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from shared import GATEWAY_HEADER, MAX_BODY_BYTES, SIGNATURE_HEADER, Ack

from ..errors import PayloadTooLarge
from ..services.ingest import ingest_batch
from .deps import MetricsDep, PoolDep, SettingsDep
from .scoped_route import ScopedRoute

router = APIRouter(prefix="/api/v1/ingest", tags=["ingest"], route_class=ScopedRoute)


async def read_bounded_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing to hold more than `limit` bytes (checked while it streams in)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes is over the limit of {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"body is over the limit of {limit} bytes")
    return bytes(body)


@router.post("/batches", response_model=Ack)
async def post_batch(
    request: Request, pool: PoolDep, settings: SettingsDep, metrics: MetricsDep
) -> JSONResponse:
    """Store a gateway's batch idempotently; answer `acked_through_seq` after commit."""
    body = await read_bounded_body(request, MAX_BODY_BYTES)
    ack = await ingest_batch(
        pool,
        settings,
        body=body,
        gateway_code=request.headers.get(GATEWAY_HEADER),
        signature=request.headers.get(SIGNATURE_HEADER),
        content_encoding=request.headers.get("content-encoding"),
    )
    metrics.ingest_batches.inc()
    metrics.ingest_readings.inc(ack.readings_new)
    metrics.ingest_events.inc(ack.events_new)
    # `refused` and `commands_waiting` only when there is something in them: gateways of before
    # they knew the fields keep reading the answer
    left_out = {name for name in ("refused", "commands_waiting") if not getattr(ack, name)}
    return JSONResponse(ack.model_dump(mode="json", exclude=left_out or None))
