"""The daemon's HTTP client of its cloud (sync, commands, software updates): HTTP/1.1 over one
kept-alive connection per part, h11 for the protocol and asyncio's streams for the bytes.

Why not httpx, which the field tools (enrolment, the doctor) and the tests use: a daemon's
whole budget is 50 MB, and httpx brings about 4.5 MB it would keep for months — httpx and
httpcore, urllib's and http's modules, and anyio's asyncio backend, which httpcore loads for
every lock. The daemon asks one server one question at a time, a few paths, no redirects,
cookies or proxies (it connects to its cloud directly), so the part it needs is small: h11
(httpcore's own HTTP/1.1 engine, MIT, 0.3 MB) speaks the protocol, and this module moves the
bytes, bounds every wait by the configured timeout and every answer by its size, and says
why a request went unanswered (`CloudUnreachable`).

A connection is reused while it is idle for less than `REUSE_IDLE_S` and the server has not
closed it; a request whose reused connection turns out closed before any answer began is sent
once more on a new one (the server had closed it while idle, as servers do). The trust store
is certifi's CA bundle, loaded once per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import certifi
import h11

MAX_ANSWER_BYTES = 8 * 1024 * 1024  # an answer held in memory (commands carry configurations)
REUSE_IDLE_S = 4.0  # uvicorn closes a connection idle for 5 s
CHUNK = 64 * 1024
USER_AGENT = "gridgate-edge"
CUT = "the cloud closed the connection in the middle of its answer"


class CloudUnreachable(Exception):
    """The request got no complete answer: refused, timed out, cut, or not HTTP."""


class CloudAnswered(Exception):
    """The cloud answered, but not what was asked for (the status and a part of its text)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__(f"the cloud answered {answer.status_code}: {answer.text[:200]}")
        self.answer = answer


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int
    headers: Mapping[str, str] = field(default_factory=dict)  # names in lower case
    content: bytes = b""  # empty when the body went to a download's writer

    def header(self, name: str) -> str | None:
        """A header's value, its name in any case (HTTP's names are case-insensitive)."""
        return self.headers.get(name.lower())

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise CloudAnswered(self)


Writer = Callable[[bytes], None]


class Transport(Protocol):
    """What carries a request to the cloud and its answer back: `Connection` on a gateway; in
    the tests, the in-process cloud (`tests/support/cloud_link.py`)."""

    async def exchange(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes, into: Writer | None
    ) -> Answer:
        """Send one request; the answer, its body given to `into` when it is a 200 (a
        download) and held otherwise. Raises CloudUnreachable when no answer came."""
        ...

    async def aclose(self) -> None: ...


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The trust store httpx uses by default (certifi's CA bundle), made once."""
    return ssl.create_default_context(cafile=certifi.where())


@dataclass(slots=True)
class _Link:
    """One open connection: its streams, its HTTP state, and since when it has been idle."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    http: h11.Connection
    idle_since: float = 0.0

    def reusable(self) -> bool:
        return (
            self.http.our_state is h11.IDLE
            and not self.reader.at_eof()
            and not self.writer.is_closing()
            and time.monotonic() - self.idle_since < REUSE_IDLE_S
        )


class Connection:
    """HTTP/1.1 to the server of `base_url` (http or https), one request at a time."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{base_url!r} is not an http:// or https:// address")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._authority = parts.netloc.rpartition("@")[2]
        self._prefix = parts.path.rstrip("/")
        self._tls = parts.scheme == "https"
        self._timeout_s = timeout_s
        self._lock = asyncio.Lock()
        self._link: _Link | None = None

    async def exchange(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes, into: Writer | None
    ) -> Answer:
        async with self._lock:
            # an idle connection the server closed is found so before any answer began: the
            # request is sent once more, on a new connection
            for fresh in (False, True):
                link = self._link
                if link is None or not link.reusable():
                    await self._close()
                    link, fresh = await self._connect(), True
                try:
                    return await self._exchange(link, method, path, headers, body, into)
                except _ClosedBeforeAnswer as exc:
                    await self._close()
                    if fresh:
                        raise CloudUnreachable(str(exc)) from None
                except BaseException:
                    await self._close()  # a connection left mid-exchange cannot carry another
                    raise
            raise AssertionError("unreachable: the second try is on a fresh connection")

    async def aclose(self) -> None:
        async with self._lock:
            await self._close()

    async def _exchange(
        self,
        link: _Link,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes,
        into: Writer | None,
    ) -> Answer:
        fields = [
            ("Host", self._authority),
            ("User-Agent", USER_AGENT),
            ("Accept", "*/*"),
            ("Content-Length", str(len(body))),
            *((name, value) for name, value in headers.items() if name.lower() != "host"),
        ]
        try:
            wire = link.http.send(
                h11.Request(method=method, target=self._prefix + path, headers=fields)
            )
            wire += link.http.send(h11.Data(data=body)) if body else b""
            wire += link.http.send(h11.EndOfMessage())
        except h11.LocalProtocolError as exc:
            raise ValueError(f"not a request HTTP can carry: {exc}") from exc
        try:
            link.writer.write(wire)
            await self._wait(link.writer.drain(), "sending")
        except OSError as exc:
            raise _ClosedBeforeAnswer(f"the connection closed while sending: {exc}") from exc
        return await self._answer(link, into)

    async def _answer(self, link: _Link, into: Writer | None) -> Answer:
        response: h11.Response | None = None
        held: list[bytes] = []
        size = 0
        while True:
            event = await self._next_event(link, started=response is not None)
            if isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data) and response is not None:
                if into is not None and response.status_code == 200:
                    into(bytes(event.data))
                    continue
                size += len(event.data)
                if size > MAX_ANSWER_BYTES:
                    raise CloudUnreachable(f"the answer is over {MAX_ANSWER_BYTES} bytes")
                held.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage) and response is not None:
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise CloudUnreachable(
                    "the cloud closed the connection in the middle of its answer"
                )
            # an informational (1xx) answer comes before the real one
        if link.http.our_state is h11.DONE and link.http.their_state is h11.DONE:
            link.http.start_next_cycle()
            link.idle_since = time.monotonic()
        else:  # the server said it will close (Connection: close)
            await self._close()
        return Answer(
            response.status_code,
            {
                name.decode("latin-1").lower(): value.decode("latin-1")
                for name, value in response.headers
            },
            b"".join(held),
        )

    async def _next_event(self, link: _Link, started: bool) -> Any:
        ended = False  # the server closed its side
        while True:
            try:
                event = link.http.next_event()
            except h11.RemoteProtocolError as exc:
                if ended:
                    raise CloudUnreachable(CUT) from exc
                raise CloudUnreachable(f"the answer is not HTTP/1.1: {exc}") from exc
            if event is not h11.NEED_DATA:
                if isinstance(event, h11.ConnectionClosed) and not started:
                    raise _ClosedBeforeAnswer("the cloud closed the connection without answering")
                return event
            try:
                data = await self._wait(link.reader.read(CHUNK), "waiting for its answer")
            except OSError as exc:
                if started:
                    raise CloudUnreachable(f"the connection broke in its answer: {exc}") from exc
                raise _ClosedBeforeAnswer(f"the connection broke before an answer: {exc}") from exc
            if not data and not started:
                raise _ClosedBeforeAnswer("the cloud closed the connection without answering")
            ended = not data
            try:
                link.http.receive_data(data)
            except h11.RemoteProtocolError as exc:
                raise CloudUnreachable(f"the answer is not HTTP/1.1: {exc}") from exc

    async def _connect(self) -> _Link:
        try:
            reader, writer = await self._wait(
                asyncio.open_connection(
                    self._host,
                    self._port,
                    ssl=tls_context() if self._tls else None,
                    server_hostname=self._host if self._tls else None,
                    limit=CHUNK,
                ),
                f"connecting to {self._host}:{self._port}",
            )
        except OSError as exc:  # refused, no route, a name that does not resolve, TLS refused
            raise CloudUnreachable(
                f"cannot connect to {self._host}:{self._port}: {exc.strerror or exc}"
            ) from exc
        self._link = _Link(reader, writer, h11.Connection(h11.CLIENT))
        return self._link

    async def _wait(self, step: Any, doing: str) -> Any:
        try:
            async with asyncio.timeout(self._timeout_s):
                return await step
        except TimeoutError:
            raise CloudUnreachable(f"no progress in {self._timeout_s:g} s {doing}") from None

    async def _close(self) -> None:
        link, self._link = self._link, None
        if link is None:
            return
        link.writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await link.writer.wait_closed()


class _ClosedBeforeAnswer(Exception):
    """The connection was found closed before any of the answer came (safe to send again)."""


class CloudClient:
    """Requests to the cloud at `base_url` (`transport`: the tests' in-process cloud)."""

    def __init__(self, base_url: str, timeout_s: float, transport: Transport | None = None) -> None:
        self._transport = transport if transport is not None else Connection(base_url, timeout_s)

    async def get(self, path: str, headers: Mapping[str, str] | None = None) -> Answer:
        return await self._transport.exchange("GET", path, headers or {}, b"", None)

    async def post(
        self, path: str, content: bytes, headers: Mapping[str, str] | None = None
    ) -> Answer:
        return await self._transport.exchange("POST", path, headers or {}, content, None)

    async def download(
        self, path: str, content: bytes, headers: Mapping[str, str], into: Writer
    ) -> Answer:
        """POST, the body of a 200 answer given to `into` chunk by chunk (which may raise to
        stop it); any other answer is held, to say why."""
        return await self._transport.exchange("POST", path, headers, content, into)

    async def aclose(self) -> None:
        await self._transport.aclose()


def cloud_client(
    base_url: str, timeout_s: float, transport: Transport | None = None
) -> CloudClient:
    """A client of the cloud at `base_url` (`transport`: the tests' in-process cloud)."""
    return CloudClient(base_url, timeout_s, transport)
