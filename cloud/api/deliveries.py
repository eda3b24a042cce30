"""What became of the notifications sent to a consumer, per channel, for the staff who manage
notifications: `GET /api/v1/consumers/{consumer_id}/notifications`."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from ..access import Permission, Principal
from ..access.ids import ConsumerId
from ..services import deliveries
from .deps import PoolDep, require
from .paging import Limit, Offset
from .scoped_route import ScopedRoute

router = APIRouter(prefix="/api/v1/consumers", tags=["notifications"], route_class=ScopedRoute)


class OutboxMessage(BaseModel):
    """The e-mail or text as its outbox keeps it: its own fate after it was queued."""

    id: int
    to: str
    status: Literal["pending", "sending", "sent", "failed", "expired"]
    attempts: int
    last_error: str | None
    sent_at: datetime | None
    next_attempt_at: datetime
    expires_at: datetime | None  # texts only: not sent by then, never sent


class Delivery(BaseModel):
    channel: Literal["in_app", "email", "sms"]
    status: Literal["delivered", "queued", "not_sent"]
    detail: str | None  # why not sent, or why held
    at: datetime
    outbox: OutboxMessage | None


class SentNotification(BaseModel):
    id: int
    user_id: int
    user_email: str  # the account told (a consumer may have several)
    kind: str
    title: str
    link: str | None
    urgent: bool
    created_at: datetime
    read_at: datetime | None
    deleted_at: datetime | None  # taken out of their inbox by the consumer (kept for the record)
    deliveries: list[Delivery]


class SentPage(BaseModel):
    items: list[SentNotification]
    total: int
    limit: int
    offset: int


@router.get("/{consumer_id}/notifications", response_model=SentPage)
async def consumer_notifications(
    consumer_id: ConsumerId,
    pool: PoolDep,
    principal: Principal = require(Permission.NOTIFICATION_MANAGE),
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict:
    """The notifications sent to the consumer's accounts, newest first, each with how it went
    on every channel: in the inbox, and the e-mail's and text's own status, tries and last
    error. Titles only, never bodies."""
    async with pool.connection() as conn:
        found = await deliveries.for_consumer(
            conn, principal, consumer_id, limit=limit, offset=offset
        )
    return found | {"limit": limit, "offset": offset}
