"""Gateway enrollment over HTTP: a gateway registers its public key with a one-time token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from shared import IDENTIFIER_PATTERN

from ..services import enrollment
from .deps import PoolDep

router = APIRouter(prefix="/api/v1/gateways", tags=["gateways"])


class EnrollRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: Annotated[str, Field(min_length=16, max_length=128)]
    gateway_id: Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
    public_key: Annotated[str, Field(min_length=44, max_length=44)]


class EnrollResponse(BaseModel):
    gateway_id: str
    board: str
    status: str


@router.post("/enroll", status_code=status.HTTP_201_CREATED, response_model=EnrollResponse)
async def enroll(body: EnrollRequest, pool: PoolDep) -> dict[str, str]:
    """Register (or rotate) a gateway's Ed25519 public key with a one-time enrollment token."""
    async with pool.connection() as conn:
        return await enrollment.enroll(
            conn, token=body.token, gateway_code=body.gateway_id, public_key=body.public_key
        )
