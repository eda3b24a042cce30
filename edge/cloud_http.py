"""The daemon's HTTP client of its cloud (sync, commands, software updates): HTTP/1.1 over one
kept-alive connection per part, h11 for the protocol and asyncio's streams for the bytes.

Why not httpx, which the field tools (enrolment, the doctor) and the tests use: a daemon's
whole budget is 50 MB, and httpx brings about 4.5 MB it would keep for months — httpx and
httpcore, urllib's and http's modules, and anyio's asyncio backend, which httpcore loads for
every lock. The daemon asks one server one question at a time, a few paths, no redirects,
cookies or proxies (it connects to its cloud directly), so the part it needs is small: h11
(httpcore's own HTTP/1.1 engine, MIT, 0.3 MB) speaks the protocol, and this module moves the
bytes, bounds every wait by the configured timeout, every exchange by four of them (a
download by half an hour) and every answer by its size, and says why a request went
unanswered (`CloudUnreachable`).

A connection is reused while it is idle for less than `REUSE_IDLE_S` and the server has sent
nothing on it since its last answer (an idle connection is watched: a byte or a close there
retires it, so no stale byte is ever read as the next answer); a request whose reused
connection turns out closed before any byte of an answer came is sent once more on a new one
(the server had closed it while idle, as servers do). Addresses are tried Happy Eyeballs
fashion (an IPv6 route that does not answer is not waited out). The trust store is certifi's
CA bundle, loaded once per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import certifi
import h11

MAX_ANSWER_BYTES = 8 * 1024 * 1024  # an answer held in memory (commands carry configurations)
EXCHANGE_TIMEOUTS = 4  # a whole exchange takes at most this many `timeout_s`
DOWNLOAD_S = 30 * 60.0  # a wheel of 50 MB at 30 kB/s
MAX_INFORMATIONAL = 10  # 1xx answers before the real one
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
        """CloudAnswered unless the answer is a success (2xx: redirects are not followed)."""
        if not 200 <= self.status_code < 300:
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


def proxy_settings() -> list[str]:
    """The proxy variables set in this environment, which the daemon does not follow (it
    connects to its cloud directly; the field tools, on httpx, do follow them)."""
    names = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")
    return [name for name in (*names, *(n.lower() for n in names)) if os.environ.get(name)]


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The trust store httpx uses by default (certifi's CA bundle), made once."""
    return ssl.create_default_context(cafile=certifi.where())


@dataclass(slots=True)
class _Link:
    """One open connection: its streams, its HTTP state, and, while it is idle, since when and
    a read that notices anything the server sends or closes meanwhile."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    http: h11.Connection
    idle_since: float = 0.0
    watch: asyncio.Task[bytes] | None = None
    answered: bool = False  # a byte of the current exchange's answer has come

    def rest(self) -> None:
        """The exchange is over: idle from now, watched."""
        self.idle_since = time.monotonic()
        self.answered = False
        self.watch = asyncio.ensure_future(self.reader.read(1))

    async def take(self) -> bool:
        """Whether the connection can carry the next request (then it is no longer idle): the
        server has sent nothing and closed nothing since the last answer — a byte there now
        would be read as the next request's answer."""
        watch, self.watch = self.watch, None
        if watch is None:
            return False
        if not watch.done():
            watch.cancel()
            await asyncio.wait([watch])  # the reader is free again once the read has given up
        if not watch.cancelled():  # it read a byte, or the end, or failed: not to be reused
            watch.exception()  # (looked at, so that asyncio does not report it)
            return False
        return (
            self.http.our_state is h11.IDLE
            and not self.http.trailing_data[0]
            and not self.writer.is_closing()
            and time.monotonic() - self.idle_since < REUSE_IDLE_S
        )

    def drop(self) -> None:
        watch, self.watch = self.watch, None
        if watch is not None:
            if watch.done() and not watch.cancelled():
                watch.exception()
            watch.cancel()
        self.writer.close()


class Connection:
    """HTTP/1.1 to the server of `base_url` (http or https), one request at a time.

    Every POST the daemon makes must be safe to receive twice (a batch is taken once by its id,
    a command result once by its command, an update report once by its update): a request is
    sent again on a new connection when its kept connection turns out closed before any byte
    of an answer came, and a server may have acted on a request and died before answering."""

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
        # the whole exchange is bounded too: a server that sends a byte now and then never
        # holds a part of the daemon for longer (a download, larger, has its own bound)
        deadline = DOWNLOAD_S if into is not None else EXCHANGE_TIMEOUTS * self._timeout_s
        async with self._lock:
            try:
                async with asyncio.timeout(deadline):
                    return await self._exchange_once_or_twice(method, path, headers, body, into)
            except TimeoutError:
                await self._close()
                raise CloudUnreachable(f"no whole answer within {deadline:g} s") from None

    async def _exchange_once_or_twice(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes, into: Writer | None
    ) -> Answer:
        for fresh in (False, True):
            link = self._link
            if link is None or not await link.take():
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
        fields = [("Host", self._authority), ("User-Agent", USER_AGENT), ("Accept", "*/*")]
        if body or method != "GET":
            fields.append(("Content-Length", str(len(body))))
        fields += [(name, value) for name, value in headers.items() if name.lower() != "host"]
        try:
            head = link.http.send(
                h11.Request(method=method, target=self._prefix + path, headers=fields)
            )
            pieces = [head, *(body[i : i + CHUNK] for i in range(0, len(body), CHUNK))]
            for piece in pieces:
                wire = piece if piece is head else link.http.send(h11.Data(data=piece))
                link.writer.write(wire)
                await self._wait(link.writer.drain(), "sending")
            link.writer.write(link.http.send(h11.EndOfMessage()))
            await self._wait(link.writer.drain(), "sending")
        except h11.LocalProtocolError as exc:
            raise CloudUnreachable(f"not a request HTTP can carry: {exc}") from exc
        except OSError as exc:
            raise _ClosedBeforeAnswer(f"the connection closed while sending: {exc}") from exc
        return await self._answer(link, into)

    async def _answer(self, link: _Link, into: Writer | None) -> Answer:
        response: h11.Response | None = None
        held = bytearray()
        informational = 0
        while True:
            event = await self._next_event(link)
            if isinstance(event, h11.InformationalResponse):
                informational += 1
                if informational > MAX_INFORMATIONAL:
                    raise CloudUnreachable(f"over {MAX_INFORMATIONAL} informational answers")
            elif isinstance(event, h11.Response):
                response = event
                length = _content_length(event)
                if (
                    length is not None
                    and length > MAX_ANSWER_BYTES
                    and not _downloading(event, into)
                ):
                    raise CloudUnreachable(f"the answer is over {MAX_ANSWER_BYTES} bytes")
            elif isinstance(event, h11.Data) and response is not None:
                if _downloading(response, into):
                    into(bytes(event.data))  # type: ignore[misc]
                    continue
                if len(held) + len(event.data) > MAX_ANSWER_BYTES:
                    raise CloudUnreachable(f"the answer is over {MAX_ANSWER_BYTES} bytes")
                held += event.data
            elif isinstance(event, h11.EndOfMessage) and response is not None:
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise CloudUnreachable(CUT)
        if link.http.our_state is h11.DONE and link.http.their_state is h11.DONE:
            link.http.start_next_cycle()
            link.rest()
        else:  # the server said it will close (Connection: close)
            await self._close()
        return Answer(
            response.status_code,
            {
                name.decode("latin-1").lower(): value.decode("latin-1")
                for name, value in response.headers
            },
            bytes(held),
        )

    async def _next_event(self, link: _Link) -> Any:
        """The next event of the answer. Until a byte of it has come, a closed connection is
        `_ClosedBeforeAnswer` (the request may go again); after, it is a cut answer."""
        ended = False  # the server closed its side
        while True:
            try:
                event = link.http.next_event()
            except h11.RemoteProtocolError as exc:
                if ended:
                    raise CloudUnreachable(CUT) from exc
                raise CloudUnreachable(f"the answer is not HTTP/1.1: {exc}") from exc
            if event is not h11.NEED_DATA:
                if isinstance(event, h11.ConnectionClosed) and not link.answered:
                    raise _ClosedBeforeAnswer("the cloud closed the connection without answering")
                return event
            try:
                data = await self._wait(link.reader.read(CHUNK), "waiting for its answer")
            except OSError as exc:
                if link.answered:
                    raise CloudUnreachable(f"the connection broke in its answer: {exc}") from exc
                raise _ClosedBeforeAnswer(f"the connection broke before an answer: {exc}") from exc
            if not data and not link.answered:
                raise _ClosedBeforeAnswer("the cloud closed the connection without answering")
            link.answered = link.answered or bool(data)
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
                    # an address that does not answer (IPv6 broken on a cellular link) is not
                    # waited out before the next is tried
                    happy_eyeballs_delay=0.25,
                    interleave=1,
                ),
                f"connecting to {self._host}:{self._port}",
            )
        except OSError as exc:  # refused, no route, a name that does not resolve, TLS refused
            raise CloudUnreachable(
                f"cannot connect to {self._host}:{self._port}: {exc.strerror or exc}"
            ) from exc
        except (UnicodeError, ValueError) as exc:  # a host name DNS cannot carry
            raise CloudUnreachable(f"cannot connect to {self._host!r}: {exc}") from exc
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
        link.drop()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await link.writer.wait_closed()


def _content_length(response: h11.Response) -> int | None:
    for name, value in response.headers:
        if name == b"content-length":
            return int(value)  # h11 has checked it is a number
    return None


def _downloading(response: h11.Response, into: Writer | None) -> bool:
    return into is not None and response.status_code == 200


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
