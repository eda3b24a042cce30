"""The daemon's HTTP clients to its cloud (sync, commands, software updates): one place makes
them, with one TLS trust store for all.

httpx loads certifi's CA bundle into a fresh TLS context for every client it makes (about
0.8 MB each, whether or not the cloud's address is https); the daemon's clients share one,
loaded once per process, so the gateway trusts exactly what httpx would and keeps one copy.
"""

from __future__ import annotations

import functools
import ssl

import certifi
import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The trust store httpx uses by default (certifi's CA bundle), made once."""
    return ssl.create_default_context(cafile=certifi.where())


def cloud_client(
    base_url: str, timeout_s: float, transport: httpx.AsyncBaseTransport | None = None
) -> httpx.AsyncClient:
    """A client of the cloud at `base_url` (`transport`: the tests' in-process app)."""
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout_s),
        transport=transport,
        verify=tls_context(),
    )
