"""Live changes for the server-sent-events streams: one database connection per server process
listens on the `gridgate_alerts` channel (a trigger on `alerts` announces each change) and on
`gridgate_notifications` (a trigger announces each new notification, naming its user), and hands
every announcement to the streams open in that process; each stream keeps what is its own.

Streams are bounded — a few per user, a few hundred per process — so no one can take the
database's connections by opening streams: a stream costs a queue, not a connection. A viewer
too slow to keep up loses the oldest announcements, never the process's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import structlog

from ..errors import TooManyRequests

log = structlog.get_logger(__name__)
CHANNELS = ("gridgate_alerts", "gridgate_notifications")
STREAMS_PER_USER = 5
STREAMS_PER_PROCESS = 500
QUEUE_SIZE = 1000


class AlertFeed:
    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._queues: dict[asyncio.Queue, int] = {}  # queue -> user id
        self._per_user: Counter[int] = Counter()
        self._task: asyncio.Task | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="alert-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self) -> None:
        """Listen, and listen again after a lost connection (streams keep their queues)."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.database_url, autocommit=True
                ) as listener:
                    for channel in CHANNELS:
                        await listener.execute(f"LISTEN {channel}")
                    self.ready.set()
                    async for notice in listener.notifies():
                        self._publish(json.loads(notice.payload))
            except psycopg.Error as exc:
                self.ready.clear()
                log.warning("alert feed lost its connection; listening again", error=str(exc))
                await asyncio.sleep(2)

    def _publish(self, change: dict[str, Any]) -> None:
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()  # the slowest viewer loses the oldest change
            queue.put_nowait(change)

    def check_room(self, user_id: int) -> None:
        """429 when the user or the process has as many streams as it may (asked before a
        stream's answer starts, while it can still be an error)."""
        if self._per_user[user_id] >= STREAMS_PER_USER:
            raise TooManyRequests(
                f"you have {STREAMS_PER_USER} live streams open already; close one first"
            )
        if len(self._queues) >= STREAMS_PER_PROCESS:
            raise TooManyRequests("the server is serving all the live streams it can; try later")

    @contextlib.asynccontextmanager
    async def subscribe(self, user_id: int) -> AsyncIterator[asyncio.Queue]:
        """A queue of changes for one stream, for as long as the stream lasts."""
        self.check_room(user_id)
        queue: asyncio.Queue = asyncio.Queue(QUEUE_SIZE)
        self._queues[queue] = user_id
        self._per_user[user_id] += 1
        try:
            yield queue
        finally:
            del self._queues[queue]
            self._per_user[user_id] -= 1
