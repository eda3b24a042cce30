"""Broadcasts under `/api/v1/broadcasts`: admins and support agents announce to a board's
consumers (all, or one category's), its staff, or both; and list what was announced in their
scope. The rules (who is told, the bounds, the hourly limit) are `cloud.services.broadcasts`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, StringConstraints

from ..access import Permission, Principal
from ..access.ids import BoardId
from ..services import broadcasts
from .deps import PoolDep, PublicBase, require
from .paging import Limit, Offset
from .scoped_route import ScopedRoute
from .types import text

router = APIRouter(prefix="/api/v1/broadcasts", tags=["broadcasts"], route_class=ScopedRoute)
Audience = Literal["consumers", "staff", "everyone"]


def line(max_length: int) -> type[str]:
    """One line of text: no line breaks or other control characters."""
    return Annotated[
        str, StringConstraints(min_length=1, max_length=max_length, pattern=r"^[^\x00-\x1f\x7f]*$")
    ]  # type: ignore[return-value]


class NewBroadcast(BaseModel):
    model_config = ConfigDict(extra="forbid")
    board_id: BoardId
    audience: Audience
    # consumers of this category only (not with `staff`)
    category: line(broadcasts.MAX_CATEGORY_CHARS) | None = None  # type: ignore[valid-type]
    title: line(broadcasts.MAX_TITLE_CHARS)  # type: ignore[valid-type]
    body: text(broadcasts.MAX_BODY_CHARS, 1)  # type: ignore[valid-type]
    urgent: bool = False  # past quiet hours, by e-mail and text at once


class Broadcast(BaseModel):
    id: int
    board_id: int
    board_code: str
    time_zone: str
    audience: Audience
    category: str | None
    title: str
    body: str
    urgent: bool
    sent_by: int
    sent_by_name: str
    recipients: int  # the people told
    created_at: datetime


class Sent(Broadcast):
    opted_out: int  # of those it would have reached, how many opted out of announcements


class BroadcastPage(BaseModel):
    items: list[Broadcast]
    total: int
    limit: int
    offset: int


@router.post("", response_model=Sent, status_code=status.HTTP_201_CREATED)
async def send(
    body: NewBroadcast,
    pool: PoolDep,
    public_base: PublicBase,
    principal: Principal = require(Permission.NOTIFICATION_BROADCAST),
) -> dict:
    """Announce to the board's `audience`. 422 when it would reach nobody (saying why: no such
    consumers, no online accounts, everyone opted out); 429 past the board's hourly limit."""
    async with pool.connection() as conn:
        return await broadcasts.send(conn, principal, **body.model_dump(), base_url=public_base)


@router.get("", response_model=BroadcastPage)
async def list_broadcasts(
    pool: PoolDep,
    principal: Principal = require(Permission.NOTIFICATION_BROADCAST),
    board_id: BoardId | None = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict:
    """The broadcasts to the boards in your scope (or to `board_id`), newest first."""
    async with pool.connection() as conn:
        found = await broadcasts.recent(
            conn, principal, board_id=board_id, limit=limit, offset=offset
        )
    return found | {"limit": limit, "offset": offset}
