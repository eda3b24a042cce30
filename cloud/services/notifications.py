"""Each user's inbox, fed by the events of their account, and delivered as they chose.

`notify` is called inside the transaction of the event it tells of (a bill issued, a payment
received, a bill gone overdue, a dispute resolved, an alert opened on the consumer's meter at or
above their threshold), so a notification exists exactly when its
event committed, and names the event (`event_key`): the same event never notifies a user twice.
For each user it follows their preferences (`cloud.services.preferences`): nothing for a topic
they opted out of; in the app if they chose it; by e-mail through the outbox, held until their
quiet hours end unless the message is urgent (alerts gather into one digest per minute, so a
burst is one e-mail, not a hundred); by text message through the SMS outbox
(`sms_outbox`), held through quiet hours the same way (of alerts, only the urgent ones: a text
each would be a burst of paid texts), when an SMS provider is configured and
the user has a phone number (otherwise recorded as not sent, with why); and it records what
happened on each channel (`notification_deliveries`; a message's own fate is its outbox's).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection

from ..access import Principal
from ..errors import NotFound
from ..formats import local_time
from ..settings import CloudSettings
from . import audit, outbox, sms_outbox

# the preference topic each kind belongs to (what a user can opt out of)
TOPICS = {
    "bill_issued": "bills",
    "payment_received": "bills",
    "bill_overdue": "bills",
    "dispute_resolved": "bills",
    "alert": "alerts",
    "tariff_changed": "tariff_changes",
    "support_reply": "support_replies",
    "support_update": "support_replies",
    "sla_breached": "alerts",
    "report_ready": "reports",
    "fleet_alert": "alerts",
    "broadcast": "announcements",
}
# kinds whose e-mail gathers into a digest (a minute's worth, written when sent)
DIGESTED = ("alert", "fleet_alert", "sla_breached")
# kinds that reach a phone only when urgent (texts cost money, and these come in numbers)
TEXTED_WHEN_URGENT = (*DIGESTED, "broadcast")
SEVERITY_ORDER = ("info", "low", "medium", "high", "critical")


@dataclass(frozen=True)
class Notice:
    kind: str
    title: str
    body: str
    link: str | None
    event_key: str
    urgent: bool = False
    severity: str | None = None  # alerts: told only to users whose threshold it reaches


def quiet_until(now: datetime, prefs: dict[str, Any]) -> datetime | None:
    """When the user's quiet hours end, if `now` lies inside them (they may cross midnight)."""
    start, end = prefs.get("quiet_from"), prefs.get("quiet_until")
    if start is None or end is None:
        return None
    zone = ZoneInfo(prefs.get("zone") or "UTC")
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    inside = start <= clock < end if start < end else clock >= start or clock < end
    if not inside:
        return None
    day = local.date() if clock < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)


async def notify(
    conn: AsyncConnection, user_ids: list[int], notice: Notice, *, base_url: str | None = None
) -> int:
    """Tell `user_ids` of an event, inside its transaction; how many were notified. `base_url`
    makes the links of an e-mail written now (a digest is written when it is sent)."""
    if base_url is None and notice.kind not in DIGESTED:
        raise ValueError("a notification e-mailed now needs the service's base URL")
    if not user_ids:
        return 0
    cursor = await conn.execute(
        "SELECT u.id, u.email, u.name, u.phone, p.channels, p.opted_out, p.quiet_from,"
        " p.quiet_until, p.zone, p.alert_min_severity"
        " FROM users u LEFT JOIN notification_preferences p ON p.user_id = u.id"
        " WHERE u.id = ANY(%s) AND u.active",
        (user_ids,),
    )
    notified = 0
    now = datetime.now(UTC)
    for user in await cursor.fetchall():
        channels = user["channels"] or ["in_app", "email"]
        if TOPICS[notice.kind] in (user["opted_out"] or []):
            continue
        threshold = user["alert_min_severity"] or "medium"
        if notice.severity and SEVERITY_ORDER.index(notice.severity) < SEVERITY_ORDER.index(
            threshold
        ):
            continue
        inserted = await conn.execute(
            "INSERT INTO notifications (user_id, kind, title, body, link, urgent, event_key,"
            " read_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (user_id, event_key) DO NOTHING RETURNING id",
            (
                user["id"],
                notice.kind,
                notice.title,
                notice.body,
                notice.link,
                notice.urgent,
                notice.event_key,
                # not chosen in the app: kept for the record, as read
                None if "in_app" in channels else now,
            ),
        )
        row = await inserted.fetchone()
        if row is None:
            continue  # this event told this user already
        notified += 1
        deliveries = [("in_app", "delivered" if "in_app" in channels else "not_sent", None, None)]
        if "email" in channels and notice.kind in DIGESTED:
            held = None if notice.urgent else quiet_until(now, user)
            zone = user["zone"] or "Asia/Kolkata"
            email_id = await outbox.add_to_digest(
                conn,
                user_id=user["id"],
                to=user["email"],
                name=user["name"],
                item={"title": notice.title, "body": notice.body, "when": local_time(now, zone)},
                not_before=held,
            )
            deliveries.append(("email", "queued", "in a digest of a minute's alerts", email_id))
        elif "email" in channels:
            held = None if notice.urgent else quiet_until(now, user)
            email_id = await outbox.enqueue(
                conn,
                event_key=f"notification:{row['id']}",
                to=user["email"],
                kind="notification",
                context={
                    "name": user["name"],
                    "title": notice.title,
                    "body": notice.body,
                    "link": f"{base_url}{notice.link}" if notice.link else None,
                    "preferences_url": f"{base_url}/dashboard/profile",
                },
                not_before=held,
            )
            detail = f"held until quiet hours end ({held:%H:%M} UTC)" if held else None
            deliveries.append(("email", "queued", detail, email_id))
        if "sms" in channels and notice.kind in TEXTED_WHEN_URGENT and not notice.urgent:
            # a text per alert would be a hundred paid texts in a burst, and an announcement to
            # a board thousands: only urgent ones go
            deliveries.append(
                ("sms", "not_sent", "texts are sent for urgent alerts and announcements", None)
            )
        elif "sms" in channels:
            text = await sms_outbox.queue_notification(
                conn,
                notification_id=row["id"],
                user_id=user["id"],
                phone=user["phone"],
                title=notice.title,
                body=notice.body,
                not_before=None if notice.urgent else quiet_until(now, user),
            )
            deliveries.append(("sms", text.status, text.detail, text.sms_id))
        for channel, status, detail, outbox_id in deliveries:
            await conn.execute(
                "INSERT INTO notification_deliveries (notification_id, channel, status, detail,"
                " email_id, sms_id) VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    row["id"],
                    channel,
                    status,
                    detail,
                    outbox_id if channel == "email" else None,
                    outbox_id if channel == "sms" else None,
                ),
            )
    return notified


async def consumer_users(conn: AsyncConnection, consumer_id: int) -> list[int]:
    cursor = await conn.execute(
        "SELECT id FROM users WHERE consumer_id = %s AND active", (consumer_id,)
    )
    return [row["id"] for row in await cursor.fetchall()]


def base_url(settings: CloudSettings) -> str:
    return (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


# --- the inbox ----------------------------------------------------------------------------


async def inbox(
    conn: AsyncConnection, principal: Principal, *, unread_only: bool, limit: int, offset: int
) -> dict[str, Any]:
    """The caller's notifications, newest first, with how many are unread."""
    cursor = await conn.execute(
        "SELECT n.id, n.kind, n.title, n.body, n.link, n.urgent, n.created_at, n.read_at,"
        " count(*) OVER () AS _total FROM notifications n"
        " WHERE n.user_id = %s AND n.deleted_at IS NULL AND (NOT %s OR n.read_at IS NULL)"
        " ORDER BY n.id DESC LIMIT %s OFFSET %s",
        (principal.user_id, unread_only, limit, offset),
    )
    rows = await cursor.fetchall()
    total = rows[0]["_total"] if rows else 0
    for row in rows:
        row.pop("_total")
    return {"items": rows, "total": total, "unread": await unread(conn, principal)}


async def one(
    conn: AsyncConnection, principal: Principal, notification_id: int
) -> dict[str, Any] | None:
    """One of the caller's notifications (None if it is not theirs or was deleted)."""
    cursor = await conn.execute(
        "SELECT id, kind, title, body, link, urgent, created_at, read_at FROM notifications"
        " WHERE id = %s AND user_id = %s AND deleted_at IS NULL",
        (notification_id, principal.user_id),
    )
    return await cursor.fetchone()


async def unread(conn: AsyncConnection, principal: Principal) -> int:
    cursor = await conn.execute(
        "SELECT count(*) AS n FROM notifications"
        " WHERE user_id = %s AND read_at IS NULL AND deleted_at IS NULL",
        (principal.user_id,),
    )
    return (await cursor.fetchone())["n"]


async def mark_read(conn: AsyncConnection, principal: Principal, notification_id: int) -> dict:
    async with conn.transaction():
        cursor = await conn.execute(
            "UPDATE notifications SET read_at = coalesce(read_at, now())"
            " WHERE id = %s AND user_id = %s AND deleted_at IS NULL"
            " RETURNING id, kind, title, body, link, urgent, created_at, read_at",
            (notification_id, principal.user_id),
        )
        row = await cursor.fetchone()
        if row is None:
            raise NotFound(f"notification {notification_id} not found")
        await audit.record(
            conn,
            actor=principal.actor,
            action="read",
            entity="notification",
            entity_id=notification_id,
        )
        return row


async def mark_read_for(conn: AsyncConnection, principal: Principal, link: str) -> int:
    """The caller opened the page these notifications point at: they are read (not audited:
    reading a page is not a change anyone made)."""
    cursor = await conn.execute(
        "UPDATE notifications SET read_at = now() WHERE user_id = %s AND link = %s"
        " AND read_at IS NULL AND deleted_at IS NULL RETURNING id",
        (principal.user_id, link),
    )
    return len(await cursor.fetchall())


async def mark_all_read(conn: AsyncConnection, principal: Principal) -> int:
    async with conn.transaction():
        cursor = await conn.execute(
            "UPDATE notifications SET read_at = now()"
            " WHERE user_id = %s AND read_at IS NULL AND deleted_at IS NULL RETURNING id",
            (principal.user_id,),
        )
        marked = [row["id"] for row in await cursor.fetchall()]
        if marked:
            await audit.record(
                conn,
                actor=principal.actor,
                action="read_all",
                entity="user",
                entity_id=principal.user_id,
                after={"notifications": len(marked)},
            )
        return len(marked)


async def delete(conn: AsyncConnection, principal: Principal, notification_id: int) -> None:
    """Take a notification out of the inbox (kept, with its deliveries, for the record)."""
    async with conn.transaction():
        cursor = await conn.execute(
            "UPDATE notifications SET deleted_at = now()"
            " WHERE id = %s AND user_id = %s AND deleted_at IS NULL RETURNING id",
            (notification_id, principal.user_id),
        )
        if await cursor.fetchone() is None:
            raise NotFound(f"notification {notification_id} not found")
        await audit.record(
            conn,
            actor=principal.actor,
            action="delete",
            entity="notification",
            entity_id=notification_id,
        )
