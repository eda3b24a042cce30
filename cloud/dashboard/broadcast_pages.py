"""The broadcasts page, for admins and support agents: a plain form (carrying the session's CSRF
token) that announces to a board's consumers, staff or both through the same service as the API,
and the broadcasts sent before in the viewer's scope.

Nothing goes out from the form itself: it answers with a review (the message as it will read,
how many people it reaches and how many opted out), from which the person sends it or goes back
to change it. The form carries a key from the page that showed it, through its review and
changes, to the send: the same message sent twice (a double click; Back, where the browser asks
to send the review's form again, since it keeps no copy of the page, and Send) tells nobody
twice and shows the broadcast that went. A refused form shows the page again with what was
wrong and everything the person typed."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..access import Permission, Principal
from ..errors import CloudError
from ..services import broadcasts, notifications
from .web import csrf_ok, int_or_none, not_allowed, render, viewer, words

router = APIRouter(prefix="/dashboard/broadcasts", include_in_schema=False)
FIELDS = ("csrf", "step", "once", "board_id", "audience", "category", "title", "body", "urgent")
STEPS = ("review", "send", "edit")  # what the form's buttons ask for; review unless said


async def _form(request: Request) -> dict[str, str]:
    """The form's fields, each cut one past its longest (so too long is said, not stored)."""
    form = await request.form()
    return {
        k: str(v)[: broadcasts.MAX_BODY_CHARS + 1]
        for k, v in form.items()
        if k in FIELDS and isinstance(v, str)
    }


async def _page(
    request: Request,
    principal: Principal,
    *,
    error: str | None = None,
    typed: dict[str, str] | None = None,
    review: dict[str, object] | None = None,
    status: int = 200,
) -> Response:
    async with request.app.state.pool.connection() as conn:
        boards = await broadcasts.audiences(conn, principal)
        sent = await broadcasts.recent(conn, principal, board_id=None, limit=50, offset=0)
    query = request.query_params
    already = int_or_none(query.get("already"))
    return render(
        request,
        "broadcasts.html",
        principal,
        status=status,
        title=words(request)("broadcasts.title"),
        boards=boards,
        categories=sorted({c for b in boards for c in b["categories"]}),
        audiences=broadcasts.AUDIENCES,
        sent=sent,
        told=int_or_none(query.get("told")) if not error else None,
        skipped=int_or_none(query.get("skipped")) if not error else None,
        per_hour=broadcasts.MAX_PER_BOARD_PER_HOUR,
        max_title=broadcasts.MAX_TITLE_CHARS,
        max_body=broadcasts.MAX_BODY_CHARS,
        error=error,
        typed=typed or {},
        review=review,
        # the key a new message's form carries to its send, or the one it came with
        once=_key_of(typed or {}),
        # a review sent a second time: the broadcast that went the first time
        already=next((b for b in sent["items"] if b["id"] == already), None),
    )


def _key_of(form: dict[str, str]) -> str:
    """The key the form came with, when it is one the page hands out; else a new one."""
    once = form.get("once", "")
    return once if broadcasts.FORM_KEY.fullmatch(once) else broadcasts.new_form_key()


@router.get("", response_class=HTMLResponse)
async def broadcasts_page(request: Request, principal: Principal = Depends(viewer)) -> Response:
    if not principal.may(Permission.NOTIFICATION_BROADCAST):
        return not_allowed(request, principal, Permission.NOTIFICATION_BROADCAST)
    return await _page(request, principal)


@router.post("")
async def send(request: Request, principal: Principal = Depends(viewer)) -> Response:
    if not principal.may(Permission.NOTIFICATION_BROADCAST):
        return not_allowed(request, principal, Permission.NOTIFICATION_BROADCAST)
    form = await _form(request)
    t = words(request)
    if not csrf_ok(request, form.get("csrf", "")):
        return await _page(request, principal, error=t("form.expired"), typed=form, status=403)
    step = form.get("step") if form.get("step") in STEPS else "review"
    if step == "send" and not form.get("once"):
        step = "review"  # a send carries the key its form's page handed out
    if step == "edit":
        return await _page(request, principal, typed=form)
    board_id = int_or_none(form.get("board_id"))
    audience = form.get("audience", "")
    problem = None
    if board_id is None:
        problem = t("hint.board_id")
    elif audience not in broadcasts.AUDIENCES:
        problem = t("broadcasts.error_audience")
    if problem:
        return await _page(request, principal, error=problem, typed=form, status=422)
    fields = {
        "board_id": board_id,
        "audience": audience,
        "category": form.get("category") or None,
        "title": form.get("title", ""),
        "body": form.get("body", ""),
    }
    try:
        async with request.app.state.pool.connection() as conn:
            if step == "review":
                reach = await broadcasts.preview(conn, principal, **fields)
            else:
                sent = await broadcasts.send(
                    conn,
                    principal,
                    **fields,
                    urgent=form.get("urgent") == "1",
                    base_url=notifications.base_url(request.app.state.settings),
                    form_key=form["once"],
                )
    except broadcasts.AlreadySent as exc:
        return RedirectResponse(
            f"/dashboard/broadcasts?already={exc.broadcast['id']}", status_code=303
        )
    except CloudError as exc:
        return await _page(request, principal, error=str(exc), typed=form, status=exc.status_code)
    if step == "review":
        return await _page(request, principal, typed=form, review=reach)
    return RedirectResponse(
        f"/dashboard/broadcasts?told={sent['recipients']}&skipped={sent['opted_out']}",
        status_code=303,
    )
