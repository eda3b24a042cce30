"""Server-sent-event streams of live changes (alerts, notifications): one loop for both.

A stream says `ready` once its process listens (nothing after that is missed), then one event
per change its `pick` keeps; while quiet it checks the viewer's session every few seconds and
ends with `session_ended` when the session has."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Request
from sse_starlette import EventSourceResponse

from ..access import Principal
from ..errors import Unauthorized
from .deps import reauthenticate

SESSION_CHECK_S = 5.0  # a quiet stream still checks the viewer's session this often

Pick = Callable[[dict[str, Any]], Awaitable[dict[str, str] | None]]


def live_stream(request: Request, principal: Principal, pick: Pick) -> EventSourceResponse:
    """A stream of the changes `pick` turns into events (None: not for this viewer). 429 when
    the viewer or the process has as many streams as it may."""
    feed = request.app.state.alert_feed
    feed.check_room(principal.user_id)

    async def events() -> AsyncIterator[dict]:
        async with feed.subscribe(principal.user_id) as changes:
            await feed.ready.wait()
            yield {"event": "ready", "data": "{}"}
            while True:
                try:
                    change = await asyncio.wait_for(changes.get(), SESSION_CHECK_S)
                except TimeoutError:
                    try:
                        await reauthenticate(request)
                    except Unauthorized as exc:
                        yield {"event": "session_ended", "data": json.dumps({"detail": str(exc)})}
                        return
                    continue
                event = await pick(change)
                if event is not None:
                    yield event

    return EventSourceResponse(events(), ping=15)
