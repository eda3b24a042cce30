"""Sending one message over SMTP (aiosmtplib), and telling a passing failure from a final one.

`GRIDGATE_SMTP_URL` names the server: `smtp://[user:password@]host[:port]` speaks STARTTLS when
the server offers it (`?starttls=require` insists, `?starttls=off` never tries), `smtps://`
speaks TLS from the first byte; the server's certificate is checked against the system's CAs,
or against `?cafile=/path/to/ca.pem` for a private CA. A refused connection, a timeout or a 4xx
answer is passing (the outbox tries again later); a 5xx answer to the message itself is final.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

_STARTTLS = {"auto": None, "require": True, "off": False}


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool | None  # None: if the server offers it
    cafile: str | None = None

    def __repr__(self) -> str:  # never the password
        return f"SmtpTarget({self.host}:{self.port}, tls={self.use_tls})"

    @classmethod
    def from_url(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("GRIDGATE_SMTP_URL must look like smtp://host:port or smtps://host")
        query = parse_qs(parts.query)
        mode = query.get("starttls", ["auto"])[0]
        if mode not in _STARTTLS:
            raise ValueError("GRIDGATE_SMTP_URL: starttls must be auto, require or off")
        tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if tls else 587),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=tls,
            start_tls=False if tls else _STARTTLS[mode],
            cafile=query.get("cafile", [None])[0],
        )


class PassingFailure(Exception):
    """Try again later: the server was unreachable, slow, or answered 4xx."""


class FinalFailure(Exception):
    """The server refused this message for good (5xx)."""


async def send(target: SmtpTarget, message: EmailMessage, *, timeout_s: float = 30) -> None:
    try:
        await aiosmtplib.send(
            message,
            hostname=target.host,
            port=target.port,
            username=target.username,
            password=target.password,
            use_tls=target.use_tls,
            start_tls=target.start_tls,
            cert_bundle=target.cafile,
            timeout=timeout_s,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        detail = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
        if all(500 <= r.code < 600 for r in exc.recipients):
            raise FinalFailure(detail) from exc
        raise PassingFailure(detail) from exc
    except aiosmtplib.SMTPResponseException as exc:
        detail = f"{exc.code} {exc.message}"
        if 500 <= exc.code < 600:
            raise FinalFailure(detail) from exc
        raise PassingFailure(detail) from exc
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise PassingFailure(str(exc) or type(exc).__name__) from exc
