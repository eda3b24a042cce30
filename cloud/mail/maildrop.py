"""An SMTP server that keeps every message it receives as files, for a machine with no mail
server (the demo): each message is written whole (`NNNN.eml`) and as readable text (`NNNN.txt`:
who, subject, the plain-text part), so a person can follow a sign-up code or a reset link."""

from __future__ import annotations

import contextlib
import email
import itertools
import socket
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from aiosmtpd.controller import Controller


class _Keeper:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        existing = [int(p.stem) for p in directory.glob("*.eml") if p.stem.isdigit()]
        self._numbers = itertools.count(max(existing, default=0) + 1)

    async def handle_DATA(self, server, session, envelope) -> str:
        number = next(self._numbers)
        message: EmailMessage = email.message_from_bytes(envelope.content, policy=default)  # type: ignore[assignment]
        (self.directory / f"{number:04d}.eml").write_bytes(envelope.content)
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content() if body is not None else ""
        (self.directory / f"{number:04d}.txt").write_text(
            f"To: {message['To']}\nDate: {message['Date'] or ''}\n"
            f"Subject: {message['Subject']}\n\n{text}"
        )
        return "250 2.0.0 kept"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def maildrop(directory: Path) -> Iterator[str]:
    """Run the server while the block runs; yields its `GRIDGATE_SMTP_URL`."""
    directory.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    controller = Controller(_Keeper(directory), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield f"smtp://127.0.0.1:{port}?starttls=off"
    finally:
        controller.stop()
