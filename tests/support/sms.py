"""A real SMS provider's webhook for the tests: an HTTP/1.1 server on 127.0.0.1 (a free port
the OS picks), in the test's own event loop, that checks each request's signature as a provider
would, answers as the test scripted for that phone number (200 with a message id otherwise),
and keeps every request, which a test waits on."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import http
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any


def signature_holds(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The check an integrator writes from `cloud/sms/webhook.py`'s docstring, written here
    again on its own (not imported) so the test holds our signing to what we document."""
    timestamp = headers.get("x-gridgate-timestamp", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
        return False
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(
        "sha256=" + expected.hexdigest(), headers.get("x-gridgate-signature", "")
    )


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: str | None = None


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]  # names in lower case
    body: bytes
    answered: int
    at: float  # time.monotonic() on arrival
    message: dict[str, Any] = field(compare=False)

    @property
    def to(self) -> str:
        return self.message.get("to", "")


class SmsReceiver:
    """Answers a text to a number with the statuses `answer` queued for it, in order, then 200
    (`{"id": "prov-N"}`); a request whose signature does not hold is answered 401."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.received: list[Received] = []
        self._scripts: dict[str, list[Answer]] = {}
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"http://{host}:{port}/sms"

    def answer(self, to: str, *statuses: int, retry_after: str | None = None) -> None:
        self._scripts.setdefault(to, []).extend(Answer(s, retry_after) for s in statuses)

    def to(self, phone: str) -> list[Received]:
        return [r for r in self.received if r.to == phone]

    async def wait_for(
        self, ready: Callable[[list[Received]], bool], timeout: float = 30
    ) -> list[Received]:
        """The requests, once `ready(requests)` holds (AssertionError after `timeout`)."""
        async with self._changed:
            try:
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: ready(self.received)), timeout
                )
            except TimeoutError:
                raise AssertionError(
                    f"the texts did not arrive; the receiver holds {self.summary()}"
                ) from None
        return list(self.received)

    async def next_to(self, phone: str, count: int = 1, timeout: float = 30) -> list[Received]:
        """The requests for `phone`, once there are `count` of them."""
        await self.wait_for(lambda received: len(self.to(phone)) >= count, timeout)
        return self.to(phone)

    def summary(self) -> list[str]:
        return [f"{r.to}: {r.answered}" for r in self.received]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._connections):
                writer.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            while True:  # keep-alive: one request after another on the connection
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
                headers = {
                    name.strip().lower(): value.strip()
                    for name, value in (line.split(":", 1) for line in head[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                answer, reply = await self._take(headers, body)
                phrase = http.HTTPStatus(answer.status).phrase
                extra = f"Retry-After: {answer.retry_after}\r\n" if answer.retry_after else ""
                writer.write(
                    f"HTTP/1.1 {answer.status} {phrase}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(reply)}\r\n{extra}\r\n".encode()
                    + reply
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed the connection
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _take(self, headers: dict[str, str], body: bytes) -> tuple[Answer, bytes]:
        message = json.loads(body) if body else {}
        if not signature_holds(self.secret, headers, body):
            answer, reply = Answer(401), {"error": "bad signature"}
        else:
            script = self._scripts.get(message.get("to", ""), [])
            answer = script.pop(0) if script else Answer(200)
            reply = {"id": f"prov-{next(self._ids)}"} if answer.status == 200 else {"error": "no"}
        async with self._changed:
            self.received.append(Received(headers, body, answer.status, time.monotonic(), message))
            self._changed.notify_all()
        return answer, json.dumps(reply).encode()


@contextlib.asynccontextmanager
async def sms_receiver(secret: str) -> AsyncIterator[SmsReceiver]:
    receiver = SmsReceiver(secret)
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()
