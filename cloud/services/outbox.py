"""The e-mail outbox: a message is written in the transaction of the event it tells of, so it
exists exactly when the event committed, and `cloud.mail.sender` sends it after commit.

Each message names its event (`event_key`, unique): writing the same event twice keeps one
message. A sender claims messages for a lease (`mail_lease_s`); a message whose sender died
mid-send is claimed again when the lease runs out. Every attempt is recorded; passing failures
are retried with exponential back-off; bodies are blanked once sent, since they may carry a
one-time code or link.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from ..mail.messages import render


@dataclass(frozen=True)
class Outgoing:
    id: int
    to_address: str
    subject: str
    body_text: str | None
    body_html: str | None
    attempts: int
    digest: dict[str, Any] | None = None  # rendered when sent (see add_to_digest)


async def enqueue(
    conn: AsyncConnection,
    *,
    event_key: str,
    to: str,
    kind: str,
    context: dict[str, Any],
    not_before: datetime | None = None,
) -> int | None:
    """Write a message inside the caller's transaction (it must have one open), to be sent at
    once or from `not_before`; its id (None when this event's message was written before)."""
    if conn.info.transaction_status != TransactionStatus.INTRANS:
        raise RuntimeError("an e-mail is written inside the transaction of its event")
    message = render(kind, context)
    cursor = await conn.execute(
        "INSERT INTO email_outbox (event_key, to_address, subject, body_text, body_html,"
        " next_attempt_at) VALUES (%s, %s, %s, %s, %s, coalesce(%s, now()))"
        " ON CONFLICT (event_key) DO NOTHING RETURNING id",
        (event_key, to, message.subject, message.text, message.html, not_before),
    )
    row = await cursor.fetchone()
    return row["id"] if row else None


DIGEST_WINDOW = timedelta(minutes=1)


async def add_to_digest(
    conn: AsyncConnection,
    *,
    user_id: int,
    to: str,
    name: str | None,
    item: dict[str, Any],
    not_before: datetime | None,
) -> int:
    """Add an item to the user's open digest (one not sent yet), or open one that goes out a
    minute from now (or when `not_before` says, if later): a burst of alerts is one message.
    Inside the caller's transaction; the digest's outbox id."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('digest ' || %s, 0))", (user_id,)
    )
    cursor = await conn.execute(
        "UPDATE email_outbox SET digest = jsonb_set(digest, '{items}',"
        " (digest->'items') || %s::jsonb)"
        " WHERE to_address = %s AND digest IS NOT NULL AND status = 'pending'"
        " AND digest->>'user_id' = %s RETURNING id",
        (Jsonb([item]), to, str(user_id)),
    )
    row = await cursor.fetchone()
    if row is not None:
        return row["id"]
    due = datetime.now(UTC) + DIGEST_WINDOW
    cursor = await conn.execute(
        "INSERT INTO email_outbox (event_key, to_address, subject, digest, next_attempt_at)"
        " VALUES (%s, %s, 'Alerts', %s, %s) RETURNING id",
        (
            f"digest:{user_id}:{uuid.uuid4().hex}",
            to,
            Jsonb({"user_id": str(user_id), "name": name, "items": [item]}),
            max(due, not_before) if not_before else due,
        ),
    )
    return (await cursor.fetchone())["id"]


async def claim(conn: AsyncConnection, *, batch: int, lease_s: float) -> list[Outgoing]:
    """Messages due now (or whose sender's lease ran out), marked as being sent by us."""
    async with conn.transaction():
        cursor = await conn.execute(
            "UPDATE email_outbox SET status = 'sending', attempts = attempts + 1,"
            "  claimed_until = now() + make_interval(secs => %s)"
            " WHERE id IN ("
            "  SELECT id FROM email_outbox"
            "  WHERE (status = 'pending' AND next_attempt_at <= now())"
            "     OR (status = 'sending' AND claimed_until < now())"
            "  ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)"
            " RETURNING id, to_address, subject, body_text, body_html, attempts, digest",
            (lease_s, batch),
        )
        rows = await cursor.fetchall()
    return [Outgoing(**row) for row in sorted(rows, key=lambda r: r["id"])]


async def sent(conn: AsyncConnection, email_id: int) -> None:
    async with conn.transaction():
        await conn.execute(
            "UPDATE email_outbox SET status = 'sent', sent_at = now(), claimed_until = NULL,"
            " body_text = NULL, body_html = NULL, last_error = NULL,"
            " subject = CASE WHEN digest IS NULL THEN subject"
            "  ELSE jsonb_array_length(digest->'items') || ' alerts' END WHERE id = %s",
            (email_id,),
        )
        await _attempt(conn, email_id, "sent", None)


async def failed(
    conn: AsyncConnection, email_id: int, error: str, *, retry_in_s: float | None
) -> None:
    """A failed attempt: try again in `retry_in_s`, or (None) give the message up."""
    error = error[:500]
    async with conn.transaction():
        if retry_in_s is None:
            await conn.execute(
                "UPDATE email_outbox SET status = 'failed', claimed_until = NULL,"
                " last_error = %s, body_text = NULL, body_html = NULL WHERE id = %s",
                (error, email_id),
            )
        else:
            await conn.execute(
                "UPDATE email_outbox SET status = 'pending', claimed_until = NULL,"
                " last_error = %s, next_attempt_at = now() + make_interval(secs => %s)"
                " WHERE id = %s",
                (error, retry_in_s, email_id),
            )
        await _attempt(conn, email_id, "retry" if retry_in_s is not None else "failed", error)


async def _attempt(conn: AsyncConnection, email_id: int, outcome: str, detail: str | None) -> None:
    await conn.execute(
        "INSERT INTO email_attempts (email_id, outcome, detail) VALUES (%s, %s, %s)",
        (email_id, outcome, detail),
    )


async def counts(conn: AsyncConnection) -> dict[str, int]:
    """How many messages are in each state (for the operator's status view)."""
    cursor = await conn.execute("SELECT status, count(*) AS n FROM email_outbox GROUP BY status")
    found = {row["status"]: row["n"] for row in await cursor.fetchall()}
    return {status: found.get(status, 0) for status in ("pending", "sending", "sent", "failed")}
