"""The daemon's HTTP client (`edge.cloud_http`) against a real socket server that answers as it
is told: kept-alive connections, a server that closed an idle one, hangs, cuts, garbage, oversized
answers, downloads, and TLS with a certificate the gateway does or does not trust."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import h11
import pytest

import edge.cloud_http
from edge.cloud_http import Answer, CloudAnswered, CloudUnreachable, Connection, cloud_client
from tests.support.tls import self_signed

# what the server does with a request: answer it (and keep the connection, or not), or misbehave
Behaviour = Callable[[h11.Request, bytes, asyncio.StreamWriter, h11.Connection], Awaitable[bool]]


@dataclass
class Server:
    """An HTTP/1.1 server (h11 on asyncio) on a free port; `script` holds what to do with each
    request in turn (after it: answer 200 with the body echoed)."""

    script: list[Behaviour] = field(default_factory=list)
    connections: int = 0
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = await _read_request(conn, reader)
                if request is None:
                    return
                headers = {k.decode().lower(): v.decode() for k, v in request.headers}
                self.requests.append(
                    (request.method.decode(), request.target.decode(), headers, body)
                )
                behaviour = self.script.pop(0) if self.script else echo
                if not await behaviour(request, body, writer, conn):
                    return
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError):
            return
        finally:
            writer.close()


async def _read_request(
    conn: h11.Connection, reader: asyncio.StreamReader
) -> tuple[h11.Request | None, bytes]:
    request, body = None, b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return request, body
        else:  # the client closed
            return None, b""


def answer(status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> bytes:
    """A whole answer's bytes, as a server's h11 would write them."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    conn.next_event()
    conn.next_event()
    fields = headers if headers is not None else [("Content-Length", str(len(body)))]
    return (
        conn.send(h11.Response(status_code=status, headers=fields))
        + conn.send(h11.Data(data=body))
        + conn.send(h11.EndOfMessage())
    )


async def echo(request: h11.Request, body: bytes, writer: asyncio.StreamWriter, conn) -> bool:
    reply = body or request.target
    writer.write(
        conn.send(h11.Response(status_code=200, headers=[("Content-Length", str(len(reply)))]))
        + conn.send(h11.Data(data=reply))
        + conn.send(h11.EndOfMessage())
    )
    await writer.drain()
    return True


def close_after_answering(request, body, writer, conn) -> Awaitable[bool]:
    """Answer, then close as an idle server does (no `Connection: close` said)."""

    async def run() -> bool:
        await echo(request, body, writer, conn)
        return False

    return run()


async def hang(request, body, writer, conn) -> bool:
    await asyncio.Event().wait()
    return False


async def hang_up(request, body, writer, conn) -> bool:
    return False


def raw(data: bytes) -> Behaviour:
    """Write these bytes, whatever they are, and close."""

    async def run(request, body, writer, conn) -> bool:
        writer.write(data)
        await writer.drain()
        return False

    return run


def respond(status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> Behaviour:
    """Answer this, and keep the connection for the next request."""

    async def run(request, _body, writer, conn) -> bool:
        fields = headers if headers is not None else [("Content-Length", str(len(body)))]
        writer.write(
            conn.send(h11.Response(status_code=status, headers=fields))
            + conn.send(h11.Data(data=body))
            + conn.send(h11.EndOfMessage())
        )
        await writer.drain()
        return True

    return run


@contextlib.asynccontextmanager
async def serving(
    script: list[Behaviour] | None = None, tls: ssl.SSLContext | None = None
) -> AsyncIterator[Server]:
    server = Server(script or [])
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0, ssl=tls)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()


async def test_requests_in_turn_share_one_connection_and_answers_read_as_sent() -> None:
    async with serving() as server:
        client = cloud_client(f"http://127.0.0.1:{server.port}/base/", 5.0)
        first = await client.post("/api/echo", b'{"a": 1}', {"Content-Type": "application/json"})
        second = await client.get("/api/path?x=1")
        await client.aclose()
    assert first == Answer(200, {"content-length": "8"}, b'{"a": 1}')
    assert first.json() == {"a": 1}
    assert first.header("Content-Length") == "8"
    assert second.text == "/base/api/path?x=1"
    assert server.connections == 1
    method, target, headers, body = server.requests[0]
    assert (method, target, body) == ("POST", "/base/api/echo", b'{"a": 1}')
    assert headers["host"] == f"127.0.0.1:{server.port}"
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == "8"


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    async with serving([close_after_answering]) as server:
        client = cloud_client(f"http://127.0.0.1:{server.port}", 5.0)
        assert (await client.post("/one", b"1")).content == b"1"
        # the server's close is seen by the client's loop, or found when it writes: either way
        # the second request gets its answer, on a second connection
        assert (await client.post("/two", b"2")).content == b"2"
        await client.aclose()
    assert server.connections == 2
    assert [target for _, target, _, _ in server.requests] == ["/one", "/two"]


async def test_a_kept_connection_closed_before_an_answer_is_tried_once_more_on_a_new_one() -> None:
    """A server may close a kept connection just as the request goes out; the request was not
    answered, so it goes again, once, on a new connection (a fresh one is not tried twice: see
    the hang-up case below)."""
    async with serving([echo, hang_up]) as server:
        client = cloud_client(f"http://127.0.0.1:{server.port}", 5.0)
        assert (await client.post("/one", b"1")).content == b"1"
        assert (await client.post("/two", b"2")).content == b"2"
        await client.aclose()
    assert server.connections == 2
    assert [target for _, target, _, _ in server.requests] == ["/one", "/two", "/two"]


async def test_a_connection_said_to_close_is_not_reused() -> None:
    closing = raw(answer(200, b"ok", [("Content-Length", "2"), ("Connection", "close")]))
    async with serving([closing]) as server:
        client = cloud_client(f"http://127.0.0.1:{server.port}", 5.0)
        assert (await client.get("/a")).text == "ok"
        assert (await client.get("/b")).text == "/b"
        await client.aclose()
    assert server.connections == 2


@pytest.mark.parametrize(
    ("behaviour", "problem"),
    [
        (hang_up, "closed the connection without answering"),
        (hang, "no progress in 0.5 s waiting for its answer"),
        (raw(b"SSH-2.0-OpenSSH_9.6\r\n\r\n"), "the answer is not HTTP/1.1"),
        (raw(answer(200, b"hello")[:-2]), "in the middle of its answer"),
        (raw(answer(200, b"x" * 2048)), "the answer is over 1024 bytes"),
    ],
    ids=["hang-up", "hang", "not-http", "cut", "too-large"],
)
async def test_a_request_without_a_whole_answer_says_why(
    behaviour: Behaviour, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(edge.cloud_http, "MAX_ANSWER_BYTES", 1024)
    async with serving([behaviour]) as server:
        client = cloud_client(f"http://127.0.0.1:{server.port}", 0.5)
        with pytest.raises(CloudUnreachable, match=problem):
            await client.post("/batch", b"readings")
        # the next request starts clean, on a new connection
        assert (await client.post("/again", b"more")).content == b"more"
        await client.aclose()
    assert server.connections == 2
    assert [t for _, t, _, _ in server.requests] == ["/batch", "/again"], "nothing sent twice"


async def test_nobody_listening_is_unreachable_and_a_bad_address_is_refused_at_once() -> None:
    async with serving() as server:
        port = server.port
    client = cloud_client(f"http://127.0.0.1:{port}", 2.0)
    with pytest.raises(CloudUnreachable, match=f"cannot connect to 127.0.0.1:{port}"):
        await client.get("/health")
    with pytest.raises(ValueError, match="not an http:// or https:// address"):
        Connection("ftp://cloud.example", 2.0)


async def test_an_error_status_is_an_answer_and_raise_for_status_names_it() -> None:
    async with serving([respond(403, b'{"detail": "gateway revoked"}')]) as server:
        client = cloud_client(f"http://127.0.0.1:{server.port}", 5.0)
        refused = await client.get("/api/v1/control/cloud-key")
        with pytest.raises(CloudAnswered, match=r"answered 403: .*gateway revoked"):
            refused.raise_for_status()
        assert (await client.get("/next")).text == "/next"
        await client.aclose()
    assert server.connections == 1


async def test_a_download_goes_to_its_writer_chunk_by_chunk_and_a_refusal_is_held() -> None:
    wheel = bytes(range(256)) * 1000
    chunked = [("Transfer-Encoding", "chunked")]
    async with serving([respond(200, wheel, chunked)]) as server:
        client = cloud_client(f"http://127.0.0.1:{server.port}", 5.0)
        chunks: list[bytes] = []
        got = await client.download("/wheel", b"{}", {}, chunks.append)
        assert (got.status_code, got.content) == (200, b"")
        assert b"".join(chunks) == wheel
        server.script.append(respond(404, b"no such version"))
        refused = await client.download("/wheel", b"{}", {}, chunks.append)
        assert (refused.status_code, refused.text) == (404, "no such version")
        await client.aclose()
    assert server.connections == 1


async def test_a_writer_that_stops_a_download_leaves_no_half_read_connection() -> None:
    async with serving([respond(200, b"w" * 300_000)]) as server:
        client = cloud_client(f"http://127.0.0.1:{server.port}", 5.0)

        def too_big(chunk: bytes) -> None:
            raise OverflowError("the wheel is too large")

        with pytest.raises(OverflowError):
            await client.download("/wheel", b"{}", {}, too_big)
        assert (await client.get("/after")).text == "/after"
        await client.aclose()
    assert server.connections == 2


async def test_https_is_verified_against_the_trust_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls, cert_path = self_signed(tmp_path)
    async with serving(tls=tls) as server:
        url = f"https://127.0.0.1:{server.port}"
        # certifi's bundle does not hold a certificate made here: no request goes out
        client = cloud_client(url, 5.0)
        with pytest.raises(CloudUnreachable, match="certificate verify failed"):
            await client.post("/api/v1/ingest/batches", b"secret readings")
        await client.aclose()
        assert server.requests == []
        # a trust store that holds it: the same request, encrypted, answered
        trusting = ssl.create_default_context(cafile=str(cert_path))
        monkeypatch.setattr(edge.cloud_http, "tls_context", lambda: trusting)
        client = cloud_client(url, 5.0)
        assert (await client.post("/api/v1/ingest/batches", b"readings")).content == b"readings"
        await client.aclose()
    assert [t for _, t, _, _ in server.requests] == ["/api/v1/ingest/batches"]


async def test_bytes_the_server_sent_with_an_answer_are_never_read_as_the_next_one() -> None:
    """A server that writes more than its answer: the extra bytes stay with the old connection,
    and the next request goes on a new one (not answered by a stale 408)."""
    stale = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n"

    async def answer_and_more(request, body, writer, conn) -> bool:
        writer.write(answer(200, b"first") + stale)
        await writer.drain()
        return False

    async with serving([answer_and_more]) as server:
        client = cloud_client(f"http://127.0.0.1:{server.port}", 5.0)
        assert (await client.get("/one")).text == "first"
        assert (await client.get("/two")).text == "/two"
        await client.aclose()
    assert [t for _, t, _, _ in server.requests] == ["/one", "/two"]


async def test_an_answer_the_server_sends_while_the_connection_is_idle_retires_it() -> None:
    """A server may say 408 (and close) to an idle connection; that is no answer to the next
    request, which goes on a new connection."""
    idle = asyncio.Event()

    async def then_time_out(request, body, writer, conn) -> bool:
        await echo(request, body, writer, conn)
        await idle.wait()
        writer.write(b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n")
        await writer.drain()
        return False

    async with serving([then_time_out]) as server:
        client = cloud_client(f"http://127.0.0.1:{server.port}", 5.0)
        assert (await client.get("/one")).text == "/one"
        link = client._transport._link  # the kept connection, idle and watched
        idle.set()
        await asyncio.wait([link.watch])  # the 408 has reached the client
        assert (await client.get("/two")).text == "/two"
        await client.aclose()
    assert server.connections == 2
    assert [t for _, t, _, _ in server.requests] == ["/one", "/two"]


async def test_an_answer_cut_after_it_began_is_not_sent_again() -> None:
    async with serving([echo, raw(b"HTTP/1.1 200 OK\r\nContent-")]) as server:
        client = cloud_client(f"http://127.0.0.1:{server.port}", 5.0)
        assert (await client.post("/one", b"1")).content == b"1"
        with pytest.raises(CloudUnreachable, match="in the middle of its answer"):
            await client.post("/two", b"2")
        await client.aclose()
    assert [t for _, t, _, _ in server.requests] == ["/one", "/two"], "the server may have acted"


async def test_a_server_that_drips_its_answer_is_given_up_as_a_whole() -> None:
    """Each byte within the timeout, the answer never whole: the exchange has its own bound
    (four timeouts), so one slow server cannot hold a part of the daemon."""

    async def drip(request, body, writer, conn) -> bool:
        for byte in answer(200, b"x" * 100):
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.1)  # the misbehaviour itself: a byte every 0.1 s
        return False

    async with serving([drip]) as server:
        client = cloud_client(f"http://127.0.0.1:{server.port}", 0.4)
        with pytest.raises(CloudUnreachable, match=r"no whole answer within 1\.6 s"):
            await client.get("/slow")
        await client.aclose()


async def test_endless_informational_answers_and_an_announced_oversize_are_refused() -> None:
    early_hints = b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" * 50
    huge = raw(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n")
    async with serving([raw(early_hints), huge]) as server:
        client = cloud_client(f"http://127.0.0.1:{server.port}", 5.0)
        with pytest.raises(CloudUnreachable, match="over 10 informational answers"):
            await client.get("/hints")
        # refused as its head arrives: no waiting for a body that may never come
        with pytest.raises(CloudUnreachable, match=r"the answer is over \d+ bytes"):
            await client.get("/huge")
        await client.aclose()


async def test_an_address_dns_cannot_carry_is_unreachable_not_a_crash() -> None:
    client = cloud_client("http://a..b", 2.0)
    with pytest.raises(CloudUnreachable, match=r"cannot connect to 'a\.\.b'"):
        await client.get("/health")
    await client.aclose()


async def test_a_redirect_is_not_a_success(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CloudAnswered, match="answered 302"):
        Answer(302, {"location": "/login"}, b"").raise_for_status()
    Answer(204).raise_for_status()


def test_proxy_settings_are_named_for_the_log(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("all_proxy", raising=False)
    assert edge.cloud_http.proxy_settings() == []
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    assert edge.cloud_http.proxy_settings() == ["https_proxy"]
