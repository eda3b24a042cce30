"""A real SMTP server for the tests (aiosmtpd, on a free port, in its own thread) and the
mailbox it fills, which a test waits on for the messages it expects."""

from __future__ import annotations

import asyncio
import contextlib
import email
import re
import ssl
import threading
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.policy import default

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from .services import free_tcp_port


class Mailbox:
    """What the server accepted, in order. `refusing` answers 451 (try later) to every
    message; `hold` (a threading.Event) keeps the server from answering until it is set, and
    `holding` is set while a message waits on it."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refusing = False
        self.hold: threading.Event | None = None
        self.holding = threading.Event()
        self._changed = threading.Condition()

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.hold is not None:
            self.holding.set()
            await asyncio.to_thread(self.hold.wait)
            return "451 4.3.0 held by the test; try again"
        if self.refusing:
            return "451 4.3.0 not now; try again later"
        message = email.message_from_bytes(envelope.content, policy=default)
        with self._changed:
            self.messages.append(message)  # type: ignore[arg-type]
            self._changed.notify_all()
        return "250 2.0.0 accepted"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    async def wait_for(
        self, ready: Callable[[list[EmailMessage]], bool], timeout: float = 30
    ) -> list[EmailMessage]:
        """The messages, once `ready(messages)` holds (AssertionError after `timeout`)."""

        def wait() -> bool:
            with self._changed:
                return self._changed.wait_for(lambda: ready(self.messages), timeout)

        if not await asyncio.to_thread(wait):
            raise AssertionError(f"the mail did not arrive; the mailbox holds {self.summary()}")
        return list(self.messages)

    async def next_to(self, address: str, subject_part: str, timeout: float = 30) -> EmailMessage:
        """The latest message to `address` whose subject contains `subject_part`."""

        def found(messages: list[EmailMessage]) -> bool:
            return any(m["To"] == address and subject_part in m["Subject"] for m in messages)

        messages = await self.wait_for(found, timeout)
        return [m for m in messages if m["To"] == address and subject_part in m["Subject"]][-1]

    def summary(self) -> list[str]:
        return [f"{m['To']}: {m['Subject']}" for m in self.messages]


def text_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]


def code_in(message: EmailMessage) -> str:
    match = re.search(r"\b(\d{6})\b", text_of(message))
    assert match, text_of(message)
    return match.group(1)


def link_token_in(message: EmailMessage) -> str:
    match = re.search(r"token=([A-Za-z0-9_-]+)", text_of(message))
    assert match, text_of(message)
    return match.group(1)


class SmtpServer:
    """Plain SMTP by default; with `tls_context` and `login` it insists on STARTTLS and on that
    (user, password) before it takes a message."""

    def __init__(
        self, tls_context: ssl.SSLContext | None = None, login: tuple[str, str] | None = None
    ) -> None:
        self.mailbox = Mailbox()
        self.port = free_tcp_port()
        self.tls_context, self.login = tls_context, login
        self.logins: list[str] = []
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?starttls=off"

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and self.login == (
            auth_data.login.decode(),
            auth_data.password.decode(),
        )
        if ok:
            self.logins.append(auth_data.login.decode())
        return AuthResult(success=ok)

    def start(self) -> None:
        secure = {}
        if self.tls_context is not None:
            secure = {
                "tls_context": self.tls_context,
                "require_starttls": True,
                "auth_required": self.login is not None,
                "authenticator": self._authenticate,
            }
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port, **secure)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@contextlib.contextmanager
def smtp_server(**options) -> Iterator[SmtpServer]:
    server = SmtpServer(**options)
    server.start()
    try:
        yield server
    finally:
        server.stop()
