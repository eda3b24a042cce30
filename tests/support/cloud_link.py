"""The gateway's link to an in-process cloud: an httpx transport (the app's ASGI transport, or a
test's faulty cable around it) carrying the daemon's requests (`edge.cloud_http.Transport`).

What httpx calls a transport error (refused, timed out, cut) reaches the daemon as it would
from its own connection: `CloudUnreachable`.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from edge.cloud_http import Answer, CloudUnreachable, Writer


class HttpxLink:
    def __init__(self, inner: httpx.AsyncBaseTransport, base_url: str = "http://cloud") -> None:
        self.inner = inner
        self.base_url = base_url

    async def exchange(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes, into: Writer | None
    ) -> Answer:
        request = httpx.Request(method, self.base_url + path, headers=dict(headers), content=body)
        try:
            response = await self.inner.handle_async_request(request)
            content = await response.aread()
        except httpx.TransportError as exc:
            raise CloudUnreachable(f"{type(exc).__name__}: {exc}") from exc
        if into is not None and response.status_code == 200:
            into(content)
            content = b""
        return Answer(
            response.status_code, {k.lower(): v for k, v in response.headers.items()}, content
        )

    async def aclose(self) -> None:
        await self.inner.aclose()


def link(inner: httpx.AsyncBaseTransport) -> HttpxLink:
    """The daemon's `transport` for an httpx transport."""
    return HttpxLink(inner)
