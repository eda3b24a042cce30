"""The software page, for those who may update gateways (super admins): the releases the cloud
knows (a wheel it keeps, or a version from the package index) with forms to register one, and
each board's target, share, which versions its gateways run and its updates by status, with a
form to set or clear the target. A gateway's own target is set on its page (`gateway_pages`).
Plain forms with the session's CSRF token call the same service the API does."""

from __future__ import annotations

from pathlib import PurePath
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from ..access import Permission, Principal
from ..errors import CloudError, NotFound
from ..middleware import DASHBOARD_WHEEL_PATH
from ..services import software
from .admin_pages import viewer_zone
from .web import csrf_ok, int_or_none, listing, not_allowed, not_found, render, viewer, words

router = APIRouter(prefix="/dashboard", include_in_schema=False)
HERE = "/dashboard/software"


async def _page(
    request: Request,
    principal: Principal,
    *,
    error: str | None = None,
    typed: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    state = listing(request, sorts={"code": "code"}, default_sort="code", per_page=20)
    async with request.app.state.pool.connection() as conn:
        releases = await software.releases(conn, limit=50, offset=0)
        boards = await software.boards_software(
            conn, principal, search=state.search, limit=state.per_page, offset=state.offset
        )
        zone = await viewer_zone(conn, principal)
    return render(
        request,
        "software.html",
        principal,
        status=status,
        title=words(request)("software.title"),
        releases=releases["items"],
        releases_total=releases["total"],
        boards=boards["items"],
        total=boards["total"],
        state=state,
        zone=zone,
        statuses=software.STATUSES,
        wheel_path=DASHBOARD_WHEEL_PATH,
        error=error,
        typed=typed or {},
    )


@router.get("/software", response_class=HTMLResponse)
async def software_page(request: Request, principal: Principal = Depends(viewer)) -> Response:
    if not principal.may(Permission.GATEWAY_UPDATE):
        return not_allowed(request, principal, Permission.GATEWAY_UPDATE)
    return await _page(request, principal)


def _done(anchor: str = "", **said: Any) -> RedirectResponse:
    """Back to the page, saying what was done (and where, `anchor`)."""
    return RedirectResponse(f"{HERE}?{urlencode(said)}{anchor}", status_code=303)


@router.post("/software/releases")
async def register_index(request: Request, principal: Principal = Depends(viewer)) -> Response:
    form = {k: str(v)[:600] for k, v in (await request.form()).items() if isinstance(v, str)}
    if not csrf_ok(request, form.get("csrf", "")):
        return RedirectResponse(HERE, status_code=303)
    if not principal.may(Permission.GATEWAY_UPDATE):
        return not_allowed(request, principal, Permission.GATEWAY_UPDATE)
    version = form.get("version", "").strip()
    try:
        async with request.app.state.pool.connection() as conn:
            await software.register_index(
                conn,
                principal,
                version=software.checked_version(version),
                notes=form.get("notes", "").strip()[:500] or None,
            )
    except CloudError as exc:
        return await _page(request, principal, error=str(exc), typed=form, status=exc.status_code)
    return _done(registered=version)


@router.post(DASHBOARD_WHEEL_PATH.removeprefix("/dashboard"))
async def upload_wheel(request: Request, principal: Principal = Depends(viewer)) -> Response:
    """A wheel as a file of a multipart form (the body bound: `middleware`, 50 MB)."""
    form = await request.form(max_files=1, max_fields=4)
    if not csrf_ok(request, str(form.get("csrf", ""))[:100]):
        return RedirectResponse(HERE, status_code=303)
    if not principal.may(Permission.GATEWAY_UPDATE):
        return not_allowed(request, principal, Permission.GATEWAY_UPDATE)
    t = words(request)
    upload = form.get("wheel")
    notes = str(form.get("wheel_notes", "")).strip()[:500] or None
    if not isinstance(upload, UploadFile) or not upload.filename:
        return await _page(request, principal, error=t("software.wheel_missing"), status=422)
    filename = PurePath(upload.filename.replace("\\", "/")).name[:200]
    data = await upload.read(software.MAX_WHEEL_BYTES + 1)
    try:
        async with request.app.state.pool.connection() as conn:
            release = await software.register_wheel(
                conn, principal, filename=filename, data=data, notes=notes
            )
    except CloudError as exc:
        return await _page(request, principal, error=str(exc), status=exc.status_code)
    return _done(registered=release["version"])


@router.post("/software/boards/{board_id}")
async def set_board_target(
    request: Request, board_id: int, principal: Principal = Depends(viewer)
) -> Response:
    form = {k: str(v)[:200] for k, v in (await request.form()).items() if isinstance(v, str)}
    if not csrf_ok(request, form.get("csrf", "")):
        return RedirectResponse(HERE, status_code=303)
    if not principal.may(Permission.GATEWAY_UPDATE):
        return not_allowed(request, principal, Permission.GATEWAY_UPDATE)
    t = words(request)
    percent = int_or_none(form.get("percent"))
    try:
        async with request.app.state.pool.connection() as conn:
            if form.get("action") == "clear":
                await software.clear_board_target(conn, principal, board_id)
            elif percent is None or not 1 <= percent <= 100:
                return await _page(
                    request, principal, error=t("software.percent_range"), typed=form, status=422
                )
            else:
                await software.set_board_target(
                    conn,
                    principal,
                    board_id,
                    version=software.checked_version(form.get("version", "")),
                    percent=percent,
                )
    except NotFound:
        return not_found(request, principal, t("what.board", id=board_id))
    except CloudError as exc:
        return await _page(request, principal, error=str(exc), typed=form, status=exc.status_code)
    return _done(f"#board-{board_id}", q=form.get("q", ""), target=board_id)


@router.get("/software/{form:path}", include_in_schema=False)
async def back_to_software(form: str) -> Response:
    """A refused form's page reloaded (its address is the form's): back to the page."""
    return RedirectResponse(HERE, status_code=303)
