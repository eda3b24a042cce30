"""The signed-in user's inbox: their notifications, newest first, read and deleted with plain
forms (the session's CSRF token rides in each); the same service the API uses."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..access import Principal
from ..errors import NotFound
from ..services import notifications
from .web import csrf_ok, render, viewer, words

router = APIRouter(prefix="/dashboard", include_in_schema=False)


async def _zone(request: Request, principal: Principal) -> str:
    async with request.app.state.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT coalesce(p.zone, b.time_zone, 'Asia/Kolkata') AS zone FROM users u"
            " LEFT JOIN notification_preferences p ON p.user_id = u.id"
            " LEFT JOIN consumers c ON c.id = u.consumer_id"
            " LEFT JOIN boards b ON b.id = coalesce(u.board_id, c.board_id) WHERE u.id = %s",
            (principal.user_id,),
        )
        return (await cursor.fetchone())["zone"]


@router.get("/inbox", response_class=HTMLResponse)
async def inbox_page(request: Request, principal: Principal = Depends(viewer)) -> Response:
    async with request.app.state.pool.connection() as conn:
        inbox = await notifications.inbox(conn, principal, unread_only=False, limit=100, offset=0)
    return render(
        request,
        "inbox.html",
        principal,
        title=words(request)("inbox.title"),
        inbox=inbox,
        zone=await _zone(request, principal),
    )


async def _act(request: Request, principal: Principal, csrf: str, action) -> Response:
    if csrf_ok(request, csrf):
        async with request.app.state.pool.connection() as conn:
            try:
                target = await action(conn)
            except NotFound:
                target = None
        if isinstance(target, str):
            return RedirectResponse(target, status_code=303)
    return RedirectResponse("/dashboard/inbox", status_code=303)


@router.post("/inbox/read-all")
async def read_all(
    request: Request, principal: Principal = Depends(viewer), csrf: str = Form("", max_length=100)
) -> Response:
    return await _act(
        request, principal, csrf, lambda conn: notifications.mark_all_read(conn, principal)
    )


@router.post("/inbox/{notification_id}/read")
async def read(
    request: Request,
    notification_id: int,
    principal: Principal = Depends(viewer),
    csrf: str = Form("", max_length=100),
) -> Response:
    return await _act(
        request,
        principal,
        csrf,
        lambda conn: notifications.mark_read(conn, principal, notification_id),
    )


@router.post("/inbox/{notification_id}/open")
async def open_link(
    request: Request,
    notification_id: int,
    principal: Principal = Depends(viewer),
    csrf: str = Form("", max_length=100),
) -> Response:
    """Mark it read and go where it points (always a page of this app)."""

    async def action(conn) -> str | None:
        return (await notifications.mark_read(conn, principal, notification_id))["link"]

    return await _act(request, principal, csrf, action)


@router.post("/inbox/{notification_id}/delete")
async def delete(
    request: Request,
    notification_id: int,
    principal: Principal = Depends(viewer),
    csrf: str = Form("", max_length=100),
) -> Response:
    return await _act(
        request,
        principal,
        csrf,
        lambda conn: notifications.delete(conn, principal, notification_id),
    )
