"""The loop that empties the e-mail outbox: claim what is due, send it, record the outcome.

One loop per server process; several processes share the work (claims skip rows another
holds). A message is marked sent as soon as the server accepts it, so the only way one is sent
twice is a process dying in the instant between the server's "250 OK" and that commit; it is
then sent again with the same Message-ID, which mail readers fold into one.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from psycopg_pool import AsyncConnectionPool

from ..services import outbox
from ..settings import CloudSettings
from .messages import Rendered, build, message_id, render
from .smtp import FinalFailure, PassingFailure, SmtpTarget, send

log = structlog.get_logger(__name__)
_BATCH = 20


def backoff_s(attempts: int, settings: CloudSettings) -> float:
    return min(settings.mail_retry_base_s * 2 ** max(attempts - 1, 0), settings.mail_retry_max_s)


def _base_url(settings: CloudSettings) -> str:
    return (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


def render_digest(digest: dict, base_url: str) -> Rendered:
    """A digest of alerts, as it stands when sent."""
    items = digest["items"]
    return render(
        "alert_digest",
        {
            "name": digest.get("name"),
            "count": len(items),
            "items": items,
            "base_url": base_url,
            "preferences_url": f"{base_url}/dashboard/profile",
        },
    )


def _domain(settings: CloudSettings) -> str:
    address = settings.mail_from.rsplit("<", 1)[-1].rstrip(">")
    return address.rsplit("@", 1)[-1] or "gridgate.invalid"


async def deliver_due(
    pool: AsyncConnectionPool, target: SmtpTarget, settings: CloudSettings
) -> int:
    """One pass: send what is due; how many were sent."""
    async with pool.connection() as conn:
        claimed = await outbox.claim(conn, batch=_BATCH, lease_s=settings.mail_lease_s)
    delivered = 0
    for index, item in enumerate(claimed):
        subject, text, html = item.subject, item.body_text or "", item.body_html or ""
        if item.digest is not None:
            rendered = render_digest(item.digest, _base_url(settings))
            subject, text, html = rendered.subject, rendered.text, rendered.html
        message = build(
            sender=settings.mail_from,
            to=item.to_address,
            subject=subject,
            text=text,
            html=html,
            message_id=message_id(item.id, _domain(settings)),
        )
        try:
            await send(target, message)
        except PassingFailure as exc:
            final = item.attempts >= settings.mail_max_attempts
            retry = None if final else backoff_s(item.attempts, settings)
            log.warning("e-mail not sent", email_id=item.id, error=str(exc), retry_in_s=retry)
            async with pool.connection() as conn:
                await outbox.failed(conn, item.id, str(exc), retry_in_s=retry)
            if not final:  # the server is likely down: the rest wait for the next pass
                await _release(pool, claimed[index + 1 :])
                break
            continue
        except FinalFailure as exc:
            log.error("e-mail refused", email_id=item.id, error=str(exc))
            async with pool.connection() as conn:
                await outbox.failed(conn, item.id, str(exc), retry_in_s=None)
            continue
        async with pool.connection() as conn:
            await outbox.sent(conn, item.id)
        delivered += 1
    return delivered


async def _release(pool: AsyncConnectionPool, items: list[outbox.Outgoing]) -> None:
    """Claimed but not tried this pass: due again at the next pass, the claim not counted."""
    if not items:
        return
    async with pool.connection() as conn:
        await conn.execute(
            "UPDATE email_outbox SET status = 'pending', claimed_until = NULL,"
            " attempts = attempts - 1"
            " WHERE id = ANY(%s)",
            ([item.id for item in items],),
        )


async def run_sender(
    pool: AsyncConnectionPool, settings: CloudSettings, stop: asyncio.Event
) -> None:
    """Until `stop` is set: a pass every `mail_poll_s` (at once again while there is more to
    send). Stopping waits for the message being sent, rather than cutting it off mid-send."""
    target = SmtpTarget.from_url(settings.smtp_url or "")
    while not stop.is_set():
        try:
            sent = await deliver_due(pool, target, settings)
        except Exception as exc:  # keep the loop alive; the next pass may succeed
            log.error("e-mail pass failed", error=str(exc))
            sent = 0
        if sent < _BATCH:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), settings.mail_poll_s)
