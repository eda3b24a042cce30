"""Software updates: releases under `/api/v1/software`, a board's target under
`/api/v1/boards/{id}/software`, a gateway's under `/api/v1/gateways/{id}/software`; gateways
fetch a wheel and report how an update ended under `/api/v1/control/software` (signed)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from shared import GATEWAY_HEADER, SIGNATURE_HEADER, VERSION_PATTERN

from ..access import Permission, Principal
from ..access.ids import BoardId, GatewayId
from ..middleware import WHEEL_UPLOAD_PATH  # the one body allowed up to 50 MB
from ..services import software
from .deps import PoolDep, require
from .ingest import read_bounded_body
from .paging import Limit, Offset
from .scoped_route import ScopedRoute
from .types import text

router = APIRouter(tags=["software"], route_class=ScopedRoute)
Version = Annotated[str, Field(pattern=VERSION_PATTERN)]


class Release(BaseModel):
    id: int
    version: str
    source: Literal["wheel", "index"]
    filename: str | None
    sha256: str | None
    size_bytes: int | None
    notes: str | None
    created_at: datetime
    created_by_name: str | None


class ReleasePage(BaseModel):
    items: list[Release]
    total: int
    limit: int
    offset: int


class IndexRelease(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Version
    notes: text(500) | None = None  # type: ignore[valid-type]


class BoardTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Version
    percent: Annotated[int, Field(ge=1, le=100)] = 100


class GatewayTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: Version | None  # null: follow the board again


class Update(BaseModel):
    id: int
    gateway_code: str
    version: str
    from_version: str | None
    status: Literal["sent", "installed", "confirmed", "rolled_back", "failed"]
    detail: str | None
    created_at: datetime
    reported_at: datetime | None
    command_uid: str


class Target(BaseModel):
    version: str | None  # what this gateway is to run (none: not in the share, or no target)
    set_for: Literal["gateway", "board"]
    percent: int | None
    board_version: str | None = None


class GatewaySoftware(BaseModel):
    running: str | None
    target: Target | None
    updates: list[Update]


class BoardTargetNow(BaseModel):
    version: str
    percent: int
    set_at: datetime


class VersionCount(BaseModel):
    version: str
    gateways: int


class BoardSoftware(BaseModel):
    target: BoardTargetNow | None
    running: list[VersionCount]
    updates: list[Update]


@router.get("/api/v1/software/releases", response_model=ReleasePage)
async def list_releases(
    pool: PoolDep,
    principal: Principal = require(Permission.GATEWAY_UPDATE),
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict:
    async with pool.connection() as conn:
        return await software.releases(conn, limit=limit, offset=offset)


@router.post(
    "/api/v1/software/releases", status_code=status.HTTP_201_CREATED, response_model=Release
)
async def register_index_release(
    body: IndexRelease, pool: PoolDep, principal: Principal = require(Permission.GATEWAY_UPDATE)
) -> dict:
    """A version gateways install from their package index (`pip install gridgate==VERSION`)."""
    async with pool.connection() as conn:
        return await software.register_index(
            conn, principal, version=body.version, notes=body.notes
        )


@router.post(WHEEL_UPLOAD_PATH, status_code=status.HTTP_201_CREATED, response_model=Release)
async def upload_wheel(
    request: Request,
    pool: PoolDep,
    filename: Annotated[str, Query(max_length=200, pattern=r"^[A-Za-z0-9._+!-]+\.whl$")],
    notes: Annotated[str | None, Query(max_length=500)] = None,
    principal: Principal = require(Permission.GATEWAY_UPDATE),
) -> dict:
    """A wheel the cloud keeps and serves to gateways (the body, at most 50 MB); its version is
    read from `filename`, its sha256 computed here and sent with every update command."""
    data = await read_bounded_body(request, software.MAX_WHEEL_BYTES)
    async with pool.connection() as conn:
        return await software.register_wheel(
            conn, principal, filename=filename, data=data, notes=notes
        )


@router.get("/api/v1/boards/{board_id}/software", response_model=BoardSoftware)
async def board_software(
    board_id: BoardId, pool: PoolDep, principal: Principal = require(Permission.GATEWAY_READ)
) -> dict:
    async with pool.connection() as conn:
        return await software.board_software(conn, principal, board_id)


@router.put("/api/v1/boards/{board_id}/software", response_model=BoardSoftware)
async def set_board_target(
    board_id: BoardId,
    body: BoardTarget,
    pool: PoolDep,
    principal: Principal = require(Permission.GATEWAY_UPDATE),
) -> dict:
    """The version the board's gateways run: the first `percent` of them (a fixed order per
    release), each updated at its next contact."""
    async with pool.connection() as conn:
        return await software.set_board_target(
            conn, principal, board_id, version=body.version, percent=body.percent
        )


@router.delete("/api/v1/boards/{board_id}/software", response_model=BoardSoftware)
async def clear_board_target(
    board_id: BoardId, pool: PoolDep, principal: Principal = require(Permission.GATEWAY_UPDATE)
) -> dict:
    """No target: gateways keep what they run."""
    async with pool.connection() as conn:
        return await software.clear_board_target(conn, principal, board_id)


@router.get("/api/v1/gateways/{gateway_id}/software", response_model=GatewaySoftware)
async def gateway_software(
    gateway_id: GatewayId, pool: PoolDep, principal: Principal = require(Permission.GATEWAY_READ)
) -> dict:
    async with pool.connection() as conn:
        return await software.gateway_software(conn, principal, gateway_id)


@router.put("/api/v1/gateways/{gateway_id}/software", response_model=GatewaySoftware)
async def set_gateway_target(
    gateway_id: GatewayId,
    body: GatewayTarget,
    pool: PoolDep,
    principal: Principal = require(Permission.GATEWAY_UPDATE),
) -> dict:
    """The version this gateway runs, whatever its board's target (null: as its board)."""
    async with pool.connection() as conn:
        return await software.set_gateway_target(conn, principal, gateway_id, version=body.version)


@router.post("/api/v1/control/software/wheel")
async def gateway_wheel(request: Request, pool: PoolDep) -> Response:
    """For gateways: a signed `WheelRequest` in, the release's wheel out (its sha256 in
    `X-Gridgate-Sha256`; the gateway checks it against the one in the signed command)."""
    body = await read_bounded_body(request, 4096)
    data, sha256 = await software.wheel(
        pool,
        body=body,
        code=request.headers.get(GATEWAY_HEADER),
        signature=request.headers.get(SIGNATURE_HEADER),
    )
    return Response(
        data, media_type="application/octet-stream", headers={"X-Gridgate-Sha256": sha256}
    )


@router.post("/api/v1/control/software/report")
async def gateway_report(request: Request, pool: PoolDep) -> dict:
    """For gateways: a signed `UpdateReport` (how an update ended), recorded once."""
    body = await read_bounded_body(request, 4096)
    return await software.report(
        pool,
        body=body,
        code=request.headers.get(GATEWAY_HEADER),
        signature=request.headers.get(SIGNATURE_HEADER),
    )
