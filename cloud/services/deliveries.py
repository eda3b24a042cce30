"""What became of the notifications sent to a consumer, channel by channel, for the staff who
answer "did they get it?".

`notify` records one `notification_deliveries` row per channel when it tells a user (delivered
to the inbox, queued for e-mail or text, or not sent and why); a queued message's fate after
that is its outbox's own (`email_outbox`, `sms_outbox`: pending, sending, sent, failed, or for
a text expired, with its attempts and last error). `for_consumer` joins the two, so the answer
is what happened, not what was hoped for. Only titles are shown, never bodies.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection

from ..access import Permission, Principal, resolve_in_scope
from ..errors import Forbidden

CHANNELS = ("in_app", "email", "sms")


async def for_consumer(
    conn: AsyncConnection, principal: Principal, consumer_id: int, *, limit: int, offset: int
) -> dict[str, Any]:
    """The notifications sent to the consumer's accounts, newest first (those the consumer
    deleted from their inbox too: the record stays), each with its deliveries per channel."""
    if not principal.may(Permission.NOTIFICATION_MANAGE):
        raise Forbidden(f"role {principal.role} may not {Permission.NOTIFICATION_MANAGE.value}")
    await resolve_in_scope(conn, principal, {"consumer": [consumer_id]})
    cursor = await conn.execute(
        "SELECT n.id, n.user_id, u.email AS user_email, n.kind, n.title, n.link, n.urgent,"
        " n.created_at, n.read_at, n.deleted_at, count(*) OVER () AS _total FROM notifications n"
        " JOIN users u ON u.id = n.user_id WHERE u.consumer_id = %s"
        " ORDER BY n.id DESC LIMIT %s OFFSET %s",
        (consumer_id, limit, offset),
    )
    items = await cursor.fetchall()
    total = items[0]["_total"] if items else 0
    by_id = {}
    for item in items:
        item.pop("_total")
        item["deliveries"] = []
        by_id[item["id"]] = item
    cursor = await conn.execute(
        "SELECT d.notification_id, d.channel, d.status, d.detail, d.at,"
        " e.id AS email_id, e.to_address, e.status AS email_status,"
        " e.attempts AS email_attempts, e.last_error AS email_error, e.sent_at AS email_sent_at,"
        " e.next_attempt_at AS email_next_attempt_at,"
        " s.id AS sms_id, s.to_phone, s.status AS sms_status, s.attempts AS sms_attempts,"
        " s.last_error AS sms_error, s.sent_at AS sms_sent_at,"
        " s.next_attempt_at AS sms_next_attempt_at, s.expires_at AS sms_expires_at"
        " FROM notification_deliveries d LEFT JOIN email_outbox e ON e.id = d.email_id"
        " LEFT JOIN sms_outbox s ON s.id = d.sms_id WHERE d.notification_id = ANY(%s)",
        (list(by_id),),
    )
    for row in await cursor.fetchall():
        by_id[row["notification_id"]]["deliveries"].append(_delivery(row))
    for item in items:
        item["deliveries"].sort(key=lambda d: CHANNELS.index(d["channel"]))
    return {"items": items, "total": total}


def _delivery(row: dict[str, Any]) -> dict[str, Any]:
    """One channel's record, with its outbox message's own state (e-mail and text only)."""
    delivery = {k: row[k] for k in ("channel", "status", "detail", "at")}
    delivery["outbox"] = None
    if row["channel"] == "email" and row["email_id"] is not None:
        delivery["outbox"] = {
            "id": row["email_id"],
            "to": row["to_address"],
            "status": row["email_status"],
            "attempts": row["email_attempts"],
            "last_error": row["email_error"],
            "sent_at": row["email_sent_at"],
            "next_attempt_at": row["email_next_attempt_at"],
            "expires_at": None,
        }
    elif row["channel"] == "sms" and row["sms_id"] is not None:
        delivery["outbox"] = {
            "id": row["sms_id"],
            "to": row["to_phone"],
            "status": row["sms_status"],
            "attempts": row["sms_attempts"],
            "last_error": row["sms_error"],
            "sent_at": row["sms_sent_at"],
            "next_attempt_at": row["sms_next_attempt_at"],
            "expires_at": row["sms_expires_at"],
        }
    return delivery
