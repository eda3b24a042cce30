"""The SMS outbox: a text is written in the transaction of the event it tells of, so it exists
exactly when the event committed, and `cloud.sms.sender` sends it after commit.

As with e-mail (`outbox`), each text names its event (`event_key`, unique), a sender claims
texts for a lease and a text whose sender died is claimed again when the lease runs out, every
attempt is recorded, and passing failures are retried with back-off. Unlike e-mail, a text has a
deadline (`expires_at`): one not sent by then is marked `expired` and never sent.

Texts are queued only while this process knows an SMS provider is configured: `configure` is
called with the settings where a process starts (the app, the command line), and until then
a notification's SMS is recorded as not sent, as it is with no provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus

from ..settings import CloudSettings
from ..sms.messages import compose_text, normalize_phone

# how long a queued text may wait to be sent; None: no provider, nothing is queued
_ttl_s: float | None = None


def configure(settings: CloudSettings | None) -> None:
    """Queue texts from now on if `settings` names an SMS provider (None: stop queueing).
    Called once where a process starts, before any event can notify."""
    global _ttl_s
    _ttl_s = settings.sms_ttl_s if settings is not None and settings.sms_webhook_url else None


@dataclass(frozen=True)
class Delivery:
    """What became of a notification's text, for its `notification_deliveries` row."""

    status: str  # 'queued' or 'not_sent'
    detail: str | None
    sms_id: int | None = None


@dataclass(frozen=True)
class OutgoingSms:
    id: int
    to_phone: str
    body: str
    attempts: int
    expires_at: datetime


async def queue_notification(
    conn: AsyncConnection,
    *,
    notification_id: int,
    user_id: int,
    phone: str | None,
    title: str,
    body: str,
    not_before: datetime | None,
) -> Delivery:
    """Queue the text of a notification inside its transaction (from `not_before`, if given:
    the end of the user's quiet hours), or say why there is none."""
    if _ttl_s is None:
        return Delivery("not_sent", "no SMS provider is configured")
    if not phone:
        return Delivery("not_sent", "no phone number on the account")
    try:
        to = normalize_phone(phone)
    except ValueError:
        return Delivery("not_sent", "the phone number on the account cannot take a text")
    sms_id = await enqueue(
        conn,
        event_key=f"notification:{notification_id}:sms",
        user_id=user_id,
        to=to,
        text=compose_text(title, body),
        ttl_s=_ttl_s,
        not_before=not_before,
    )
    detail = f"held until quiet hours end ({not_before:%H:%M} UTC)" if not_before else None
    return Delivery("queued", detail, sms_id)


async def enqueue(
    conn: AsyncConnection,
    *,
    event_key: str,
    user_id: int | None,
    to: str,
    text: str,
    ttl_s: float,
    not_before: datetime | None = None,
) -> int | None:
    """Write a text inside the caller's transaction (it must have one open), to be sent at once
    or from `not_before`, and given up `ttl_s` after that; its id (None when this event's text
    was written before)."""
    if conn.info.transaction_status != TransactionStatus.INTRANS:
        raise RuntimeError("a text message is written inside the transaction of its event")
    cursor = await conn.execute(
        "INSERT INTO sms_outbox (event_key, user_id, to_phone, body, next_attempt_at,"
        " expires_at) VALUES (%(key)s, %(user)s, %(to)s, %(text)s, coalesce(%(from)s, now()),"
        " coalesce(%(from)s, now()) + make_interval(secs => %(ttl)s))"
        " ON CONFLICT (event_key) DO NOTHING RETURNING id",
        {
            "key": event_key,
            "user": user_id,
            "to": to,
            "text": text,
            "from": not_before,
            "ttl": ttl_s,
        },
    )
    row = await cursor.fetchone()
    return row["id"] if row else None


async def claim(conn: AsyncConnection, *, batch: int, lease_s: float) -> list[OutgoingSms]:
    """Texts due now (or whose sender's lease ran out), marked as being sent by us; those due
    but past their deadline are marked expired instead."""
    async with conn.transaction():
        await conn.execute(
            "UPDATE sms_outbox SET status = 'expired', claimed_until = NULL,"
            " last_error = 'not sent before it expired'"
            " WHERE id IN (SELECT id FROM sms_outbox"
            "  WHERE ((status = 'pending' AND next_attempt_at <= now())"
            "     OR (status = 'sending' AND claimed_until < now()))"
            "    AND expires_at <= now() FOR UPDATE SKIP LOCKED)"
        )
        cursor = await conn.execute(
            "UPDATE sms_outbox SET status = 'sending', attempts = attempts + 1,"
            "  claimed_until = now() + make_interval(secs => %s)"
            " WHERE id IN (SELECT id FROM sms_outbox"
            "  WHERE ((status = 'pending' AND next_attempt_at <= now())"
            "     OR (status = 'sending' AND claimed_until < now()))"
            "    AND expires_at > now()"
            "  ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)"
            " RETURNING id, to_phone, body, attempts, expires_at",
            (lease_s, batch),
        )
        rows = await cursor.fetchall()
    return [OutgoingSms(**row) for row in sorted(rows, key=lambda r: r["id"])]


async def sent(
    conn: AsyncConnection, sms_id: int, *, http_status: int, provider_message_id: str | None
) -> None:
    async with conn.transaction():
        await conn.execute(
            "UPDATE sms_outbox SET status = 'sent', sent_at = now(), claimed_until = NULL,"
            " last_error = NULL, provider_message_id = %s WHERE id = %s",
            (provider_message_id, sms_id),
        )
        await _attempt(conn, sms_id, "sent", http_status, None)


async def failed(
    conn: AsyncConnection,
    sms_id: int,
    error: str,
    *,
    http_status: int | None,
    retry_in_s: float | None,
) -> None:
    """A failed attempt: try again in `retry_in_s`, or (None) give the text up."""
    error = error[:500]
    async with conn.transaction():
        if retry_in_s is None:
            await conn.execute(
                "UPDATE sms_outbox SET status = 'failed', claimed_until = NULL, last_error = %s"
                " WHERE id = %s",
                (error, sms_id),
            )
        else:
            await conn.execute(
                "UPDATE sms_outbox SET status = 'pending', claimed_until = NULL,"
                " last_error = %s, next_attempt_at = now() + make_interval(secs => %s)"
                " WHERE id = %s",
                (error, retry_in_s, sms_id),
            )
        outcome = "retry" if retry_in_s is not None else "failed"
        await _attempt(conn, sms_id, outcome, http_status, error)


async def expired(conn: AsyncConnection, sms_id: int) -> None:
    """Claimed, but past its deadline before it could be tried: given up, the claim undone."""
    await conn.execute(
        "UPDATE sms_outbox SET status = 'expired', claimed_until = NULL,"
        " attempts = attempts - 1, last_error = 'not sent before it expired' WHERE id = %s",
        (sms_id,),
    )


async def release(conn: AsyncConnection, sms_ids: list[int]) -> None:
    """Claimed but not tried this pass: due again at the next pass, the claim not counted."""
    if sms_ids:
        await conn.execute(
            "UPDATE sms_outbox SET status = 'pending', claimed_until = NULL,"
            " attempts = attempts - 1 WHERE id = ANY(%s)",
            (sms_ids,),
        )


async def _attempt(
    conn: AsyncConnection, sms_id: int, outcome: str, http_status: int | None, detail: str | None
) -> None:
    await conn.execute(
        "INSERT INTO sms_attempts (sms_id, outcome, http_status, detail) VALUES (%s, %s, %s, %s)",
        (sms_id, outcome, http_status, detail),
    )
