"""Gateways over HTTP: enrollment (a gateway registers its public key with a one-time token
that an admin or technician issued for a board), the scoped fleet view, and revocation."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from shared import IDENTIFIER_PATTERN, public_key_text

from ..access import Permission, Principal
from ..access.ids import BoardId, GatewayId
from ..errors import InvalidInput
from ..services import enrollment
from ..services.scoped import BOARDS, GATEWAYS, actor, get_row
from .deps import PoolDep, require
from .paging import Limit, Offset, Order, Page, one, page
from .scoped_route import ScopedRoute

router = APIRouter(prefix="/api/v1/gateways", tags=["gateways"], route_class=ScopedRoute)


class EnrollRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: Annotated[str, Field(min_length=16, max_length=128)]
    gateway_id: Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
    public_key: Annotated[str, Field(min_length=44, max_length=44)]


class EnrollResponse(BaseModel):
    gateway_id: str
    board: str
    status: str
    # the key the cloud signs its commands with: the gateway keeps it to check them
    cloud_public_key: str


@router.post("/enroll", status_code=status.HTTP_201_CREATED, response_model=EnrollResponse)
async def enroll(body: EnrollRequest, pool: PoolDep, request: Request) -> dict[str, str]:
    """Register a new gateway's Ed25519 public key with a one-time board token, or re-key an
    enrolled gateway with a token issued for it."""
    async with pool.connection() as conn:
        enrolled = await enrollment.enroll(
            conn, token=body.token, gateway_code=body.gateway_id, public_key=body.public_key
        )
    return {**enrolled, "cloud_public_key": public_key_text(request.app.state.cloud_key)}


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    board_id: BoardId
    ttl_s: Annotated[int, Field(ge=60, le=7 * 24 * 3600)] = 24 * 3600
    # set: a token that re-keys this enrolled gateway of the board (and nothing else)
    gateway_id: GatewayId | None = None


class TokenResponse(BaseModel):
    token: str
    board_id: BoardId
    expires_at: datetime


@router.post(
    "/enrollment-tokens", status_code=status.HTTP_201_CREATED, response_model=TokenResponse
)
async def create_enrollment_token(
    body: TokenRequest, pool: PoolDep, principal: Principal = require(Permission.GATEWAY_ENROLL)
) -> dict:
    """A one-time token a new gateway of this board enrolls with (or, with `gateway_id`, that
    re-keys that enrolled gateway); shown once, stored as a hash."""
    async with pool.connection() as conn:
        board = await get_row(conn, principal, BOARDS, body.board_id)  # 404 outside scope
        gateway_code = None
        if body.gateway_id is not None:
            gateway = await get_row(conn, principal, GATEWAYS, body.gateway_id)
            if gateway["board_id"] != board["id"]:
                raise InvalidInput(
                    f"gateway {body.gateway_id} is not on board {board['code']}",
                    errors=[("gateway_id", "another board")],
                )
            gateway_code = gateway["gateway_code"]
        token, expires = await enrollment.create_token(
            conn,
            board_code=board["code"],
            ttl_s=body.ttl_s,
            actor=actor(principal),
            gateway_code=gateway_code,
        )
    return {
        "token": token,
        "board_id": board["id"],
        "gateway_id": body.gateway_id,
        "expires_at": expires,
    }


@router.get("", response_model=Page)
async def list_gateways(
    pool: PoolDep,
    principal: Principal = require(Permission.GATEWAY_READ),
    board_id: BoardId | None = None,
    status_: Literal["active", "revoked"] | None = Query(None, alias="status"),
    sort: Literal["id", "gateway_code", "last_seen_at"] = "id",
    order: Order = "asc",
    limit: Limit = 50,
    offset: Offset = 0,
) -> Page:
    filters = {"board_id": board_id, "status": status_}
    return await page(pool, principal, GATEWAYS, filters, sort, order, limit, offset)


@router.get("/{gateway_id}")
async def get_gateway(
    gateway_id: GatewayId, pool: PoolDep, principal: Principal = require(Permission.GATEWAY_READ)
) -> dict:
    return await one(pool, principal, GATEWAYS, gateway_id)


@router.post("/{gateway_id}/revoke")
async def revoke_gateway(
    gateway_id: GatewayId, pool: PoolDep, principal: Principal = require(Permission.GATEWAY_REVOKE)
) -> dict:
    """Revoke the gateway's key: its batches are refused until it enrolls again."""
    async with pool.connection() as conn:
        gateway = await get_row(conn, principal, GATEWAYS, gateway_id)  # 404 outside scope
        await enrollment.revoke(conn, gateway_code=gateway["gateway_code"], actor=actor(principal))
        return await get_row(conn, principal, GATEWAYS, gateway_id)
