"""The loop that empties the SMS outbox: claim what is due, POST it to the provider, record the
outcome.

One loop per server process; several processes share the work (claims skip rows another
holds). A text is marked sent as soon as the provider answers 2xx, so the only way one is posted
twice is a process dying between that answer and the commit; it is then posted again, once its
lease runs out, with the same `id` and `Idempotency-Key`, by which the provider sends it once. A
text past its deadline is marked expired, never sent. A passing failure ends the pass (the
provider is down or throttling): the rest of what was claimed waits for the next pass, its claim
not counted as an attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from datetime import UTC, datetime

import httpx
import structlog
from psycopg_pool import AsyncConnectionPool

from ..services import sms_outbox
from ..settings import CloudSettings
from .errors import FinalFailure, PassingFailure
from .webhook import WebhookTarget, send

log = structlog.get_logger(__name__)
_BATCH = 10


def lease_s(settings: CloudSettings) -> float:
    """How long a claim holds: long enough for a whole batch of requests that each take their
    full timeout, so no other process claims a text while its request may be in flight."""
    return _BATCH * settings.sms_timeout_s + 30


def retry_in_s(attempts: int, retry_after_s: float | None, settings: CloudSettings) -> float:
    """The wait before the next attempt: exponential back-off from `sms_retry_base_s` up to
    `sms_retry_max_s`, or longer if the provider asked for longer (never past the text's life)."""
    backoff = min(settings.sms_retry_base_s * 2 ** max(attempts - 1, 0), settings.sms_retry_max_s)
    if retry_after_s is None:
        return backoff
    return min(max(backoff, retry_after_s), settings.sms_ttl_s)


async def deliver_due(
    pool: AsyncConnectionPool,
    client: httpx.AsyncClient,
    target: WebhookTarget,
    settings: CloudSettings,
) -> int:
    """One pass: send what is due; how many were sent."""
    async with pool.connection() as conn:
        claimed = await sms_outbox.claim(conn, batch=_BATCH, lease_s=lease_s(settings))
    delivered = 0
    for index, item in enumerate(claimed):
        bound = log.bind(sms_id=item.id, attempt=item.attempts)
        if item.expires_at <= datetime.now(UTC):  # the batch before it took that long
            bound.info("text message expired before it could be sent")
            async with pool.connection() as conn:
                await sms_outbox.expired(conn, item.id)
            continue
        try:
            receipt = await send(client, target, sms_id=item.id, to=item.to_phone, text=item.body)
        except PassingFailure as exc:
            final = item.attempts >= settings.sms_max_attempts
            retry = None if final else retry_in_s(item.attempts, exc.retry_after_s, settings)
            bound.warning("text message not sent", error=str(exc), retry_in_s=retry)
            async with pool.connection() as conn:
                await sms_outbox.failed(
                    conn, item.id, str(exc), http_status=exc.http_status, retry_in_s=retry
                )
            if not final:  # the provider is down or throttling: the rest wait for the next pass
                async with pool.connection() as conn:
                    await sms_outbox.release(conn, [later.id for later in claimed[index + 1 :]])
                break
            continue
        except FinalFailure as exc:
            bound.error("text message refused", error=str(exc))
            async with pool.connection() as conn:
                await sms_outbox.failed(
                    conn, item.id, str(exc), http_status=exc.http_status, retry_in_s=None
                )
            continue
        async with pool.connection() as conn:
            await sms_outbox.sent(
                conn,
                item.id,
                http_status=receipt.http_status,
                provider_message_id=receipt.provider_message_id,
            )
        delivered += 1
    return delivered


async def run_sender(
    pool: AsyncConnectionPool, settings: CloudSettings, stop: asyncio.Event
) -> None:
    """Until `stop` is set: a pass every `sms_poll_s` (at once again while there is more to
    send). Stopping waits for the request in flight, rather than cutting it off."""
    target = WebhookTarget.from_settings(settings)
    if not target.encrypted and not _loopback(target.host):
        log.warning(
            "the SMS webhook is plain http: phone numbers and texts cross the network unencrypted",
            provider=target.host,
        )
    log.info("SMS sender started", provider=target.host)
    async with httpx.AsyncClient(
        follow_redirects=False, headers={"User-Agent": "GridGate-SMS/1"}
    ) as client:
        while not stop.is_set():
            try:
                sent = await deliver_due(pool, client, target, settings)
            except Exception as exc:  # keep the loop alive; the next pass may succeed
                log.error("SMS pass failed", error=str(exc))
                sent = 0
            if sent < _BATCH:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), settings.sms_poll_s)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
