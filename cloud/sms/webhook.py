"""The SMS provider adapter: one signed HTTP POST per text, to `GRIDGATE_SMS_WEBHOOK_URL`.

What a provider (or the bridge in front of it) receives::

    POST <the configured URL>
    Content-Type: application/json
    Idempotency-Key: sms-<id>
    X-GridGate-Timestamp: <unix seconds when this request was signed>
    X-GridGate-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">

    {"id":"<id>","to":"+919876543210","text":"Your bill for March 2026 is ready\\n..."}

`id` names the text and stays the same on every retry (so does `Idempotency-Key`): a receiver
that has seen it before answers 2xx again and sends nothing. `to` is digits with an optional
leading `+`, as the user entered it less the separators. The HMAC key is
`GRIDGATE_SMS_WEBHOOK_SECRET` (UTF-8), shared with the provider. To verify a request, over the
raw body bytes as received (before any JSON parsing)::

    import hashlib, hmac, time

    def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
        expected = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256)
        fresh = abs(time.time() - int(timestamp)) <= 300  # refuse replays of old requests
        return fresh and hmac.compare_digest("sha256=" + expected.hexdigest(), signature)

The answer decides what happens next: 2xx is sent (an `id` in a JSON object reply is kept as
the provider's message id); 408, 425, 429, 5xx, a timeout or no connection is a passing failure,
tried again with exponential back-off, or after `Retry-After` seconds if the answer says so and
that is longer; any other status, redirects included (they are not followed), refuses the text
for good.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from ..settings import CloudSettings
from .errors import FinalFailure, PassingFailure, SmsConfigError

MIN_SECRET_CHARS = 16
_PASSING_STATUSES = frozenset({408, 425, 429})
_DETAIL_CHARS = 200


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    secret: str
    timeout_s: float

    def __repr__(self) -> str:  # never the secret, nor a URL that may carry a key
        return f"WebhookTarget({self.host})"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "?"

    @property
    def encrypted(self) -> bool:
        return urlsplit(self.url).scheme == "https"

    @classmethod
    def from_settings(cls, settings: CloudSettings) -> WebhookTarget:
        """The configured provider; SmsConfigError naming the setting if it cannot work."""
        parts = urlsplit(settings.sms_webhook_url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SmsConfigError(
                "GRIDGATE_SMS_WEBHOOK_URL must be an http:// or https:// URL with a host"
            )
        secret = settings.sms_webhook_secret or ""
        if len(secret) < MIN_SECRET_CHARS:
            raise SmsConfigError(
                "GRIDGATE_SMS_WEBHOOK_SECRET must be set, at least"
                f" {MIN_SECRET_CHARS} characters, when GRIDGATE_SMS_WEBHOOK_URL is: it signs"
                " every request so the provider can tell it came from this service"
            )
        return cls(settings.sms_webhook_url or "", secret, settings.sms_timeout_s)


@dataclass(frozen=True)
class Receipt:
    http_status: int
    provider_message_id: str | None


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The `X-GridGate-Signature` of `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def request_body(sms_id: int, to: str, text: str) -> bytes:
    return json.dumps(
        {"id": str(sms_id), "to": to, "text": text}, ensure_ascii=False, separators=(",", ":")
    ).encode()


async def send(
    client: httpx.AsyncClient, target: WebhookTarget, *, sms_id: int, to: str, text: str
) -> Receipt:
    """POST one text; its receipt, or PassingFailure / FinalFailure."""
    body = request_body(sms_id, to, text)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "Idempotency-Key": f"sms-{sms_id}",
        "X-GridGate-Timestamp": timestamp,
        "X-GridGate-Signature": sign(target.secret, timestamp, body),
    }
    try:
        response = await client.post(
            target.url, content=body, headers=headers, timeout=target.timeout_s
        )
    except httpx.TimeoutException as exc:
        raise PassingFailure(f"no answer within {target.timeout_s:g} s") from exc
    except httpx.TransportError as exc:
        raise PassingFailure(f"{type(exc).__name__}: {exc}"[:_DETAIL_CHARS]) from exc
    status = response.status_code
    if 200 <= status < 300:
        return Receipt(status, provider_message_id(response))
    detail = f"{status} {response.reason_phrase}: {response.text}"[:_DETAIL_CHARS].rstrip(": ")
    if status in _PASSING_STATUSES or status >= 500:
        raise PassingFailure(
            detail,
            http_status=status,
            retry_after_s=retry_after_s(response.headers.get("Retry-After")),
        )
    raise FinalFailure(detail, http_status=status)


def provider_message_id(response: httpx.Response) -> str | None:
    """The `id` of a JSON object reply, if it has one."""
    try:
        reply = response.json()
    except ValueError:
        return None
    found = reply.get("id") if isinstance(reply, dict) else None
    if isinstance(found, bool) or not isinstance(found, str | int) or found == "":
        return None
    return str(found)[:200]


def retry_after_s(header: str | None) -> float | None:
    """The wait a `Retry-After` header asks for, in seconds (the HTTP-date form is ignored:
    back-off applies instead)."""
    if header is None:
        return None
    try:
        seconds = float(header.strip())
    except ValueError:
        return None
    return seconds if 0 <= seconds < float("inf") else None
