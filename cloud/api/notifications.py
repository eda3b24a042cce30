"""The caller's own inbox under `/api/v1/notifications`: list (with the unread count), read one,
read all, delete. Nobody reaches another user's notifications, whatever their role."""

from __future__ import annotations

import json
from datetime import datetime

from fastapi import APIRouter, Request, status
from pydantic import BaseModel
from sse_starlette import EventSourceResponse

from ..access.ids import NotificationId
from ..services import notifications
from .deps import CurrentPrincipal, PoolDep
from .paging import Limit, Offset
from .scoped_route import ScopedRoute
from .streams import live_stream

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"], route_class=ScopedRoute)


class Notification(BaseModel):
    id: int
    kind: str
    title: str
    body: str
    link: str | None
    urgent: bool
    created_at: datetime
    read_at: datetime | None


class Inbox(BaseModel):
    items: list[Notification]
    total: int
    unread: int


class Marked(BaseModel):
    marked_read: int


@router.get("", response_model=Inbox)
async def list_notifications(
    principal: CurrentPrincipal,
    pool: PoolDep,
    unread: bool = False,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict:
    """Your notifications, newest first (`unread=true`: only those not read yet)."""
    async with pool.connection() as conn:
        return await notifications.inbox(
            conn, principal, unread_only=unread, limit=limit, offset=offset
        )


@router.get("/stream")
async def notification_stream(request: Request, principal: CurrentPrincipal) -> EventSourceResponse:
    """Server-sent events: a `notification` event (as JSON) for each new notification of yours,
    as it is written. Shares the alert stream's bounds (a few streams per user; 429 beyond); ends
    within seconds of your session ending."""

    async def pick(change: dict) -> dict | None:
        if change.get("channel") != "notification" or change.get("user_id") != principal.user_id:
            return None  # an alert, or someone else's
        async with request.app.state.pool.connection() as conn:
            found = await notifications.one(conn, principal, change["id"])
        return (
            None
            if found is None
            else {"event": "notification", "data": json.dumps(found, default=str)}
        )

    return live_stream(request, principal, pick)


@router.post("/read-all", response_model=Marked)
async def read_all(principal: CurrentPrincipal, pool: PoolDep) -> Marked:
    async with pool.connection() as conn:
        return Marked(marked_read=await notifications.mark_all_read(conn, principal))


@router.post("/{notification_id}/read", response_model=Notification)
async def read(notification_id: NotificationId, principal: CurrentPrincipal, pool: PoolDep) -> dict:
    async with pool.connection() as conn:
        return await notifications.mark_read(conn, principal, notification_id)


@router.delete("/{notification_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete(
    notification_id: NotificationId, principal: CurrentPrincipal, pool: PoolDep
) -> None:
    async with pool.connection() as conn:
        await notifications.delete(conn, principal, notification_id)
