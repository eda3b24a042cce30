"""The caller's own inbox under `/api/v1/notifications`: list (with the unread count), read one,
read all, delete. Nobody reaches another user's notifications, whatever their role."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, status
from pydantic import BaseModel

from ..access.ids import NotificationId
from ..services import notifications
from .deps import CurrentPrincipal, PoolDep
from .paging import Limit, Offset
from .scoped_route import ScopedRoute

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
