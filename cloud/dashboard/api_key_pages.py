"""The viewer's API keys: what they hold (named, with their permissions in words, when they were
made, when they expire and when they were last used, in the viewer's local time), a form to make
one with some of the viewer's own permissions, and a button to revoke each.

The page reads through the same service as the API; creating and revoking go to the API from the
browser with the CSRF token, and the new key's secret is shown by the script once, from the
API's answer: it is never part of a page the server renders.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from ..services import api_keys
from .admin_pages import viewer_zone
from .web import render, viewer, words

router = APIRouter(prefix="/dashboard", include_in_schema=False)

LIFETIMES_DAYS = (7, 30, 90, 180, 365)


async def _viewer_zone(conn, principal) -> str:
    """A consumer's board's zone; staff's as on the other admin pages."""
    if principal.consumer_id is None:
        return await viewer_zone(conn, principal)
    cursor = await conn.execute(
        "SELECT b.time_zone FROM consumers c JOIN boards b ON b.id = c.board_id WHERE c.id = %s",
        (principal.consumer_id,),
    )
    row = await cursor.fetchone()
    return row["time_zone"] if row else "UTC"


@router.get("/api-keys", response_class=HTMLResponse)
async def api_keys_page(request: Request) -> Response:
    principal = await viewer(request)
    async with request.app.state.pool.connection() as conn:
        keys = await api_keys.owned(conn, principal)
        zone = await _viewer_zone(conn, principal)
    max_days = request.app.state.settings.api_key_max_days
    return render(
        request,
        "api_keys.html",
        principal,
        page="api-keys",
        title=words(request)("nav.api_keys"),
        keys=keys,
        grantable=sorted(p.value for p in api_keys.grantable(principal)),
        lifetimes=[d for d in LIFETIMES_DAYS if d <= max_days] or [max_days],
        zone=zone,
    )
