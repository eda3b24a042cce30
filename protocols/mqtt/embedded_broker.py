"""An embedded MQTT broker (amqtt) for machines with none: demos, tests, a lone gateway.

Production configures a real broker; this exists so that `gridgate demo` and the test suite run
on a fresh machine. It listens on 127.0.0.1 only and allows anonymous clients.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

from amqtt.broker import Broker


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the OS reports free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _config(port: int) -> dict[str, object]:
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


@asynccontextmanager
async def embedded_broker(port: int | None = None) -> AsyncIterator[int]:
    """Run a broker on this event loop; yields its port (a free one unless given)."""
    port = port or free_port()
    broker = Broker(_config(port))
    await broker.start()
    try:
        yield port
    finally:
        await broker.shutdown()


@contextmanager
def embedded_broker_thread(port: int | None = None) -> Iterator[int]:
    """Run a broker on its own event loop in a thread (for synchronous callers such as pytest)."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    box: dict[str, object] = {}

    async def serve() -> None:
        try:
            async with embedded_broker(port) as bound:
                box["port"] = bound
                ready.set()
                await stop.wait()
        except BaseException as exc:  # reported to the caller below
            box["error"] = exc
            ready.set()

    thread = threading.Thread(
        target=loop.run_until_complete, args=(serve(),), daemon=True, name="embedded-mqtt-broker"
    )
    thread.start()
    if not ready.wait(30) or "error" in box:
        raise RuntimeError(f"embedded MQTT broker did not start: {box.get('error')}")
    try:
        yield int(box["port"])  # type: ignore[call-overload]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)
        loop.close()
