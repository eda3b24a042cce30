"""The support pages: a consumer's questions and their threads; an agent's queue and the thread
view with the drafted answer and the consumer's bills, meters and alerts beside it. Plain
forms, each carrying the session's CSRF token, call the same service the API does; a refused
form shows the page again with what was wrong and what the person typed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..access import Permission, Principal
from ..errors import CloudError, NotFound
from ..services import listings, notifications, support, support_drafts
from .web import csrf_ok, int_or_none, listing, not_allowed, not_found, render, viewer, words

router = APIRouter(prefix="/dashboard/support", include_in_schema=False)
CATEGORIES = (
    "high_bill",
    "billing_error",
    "meter_fault",
    "outage",
    "connection",
    "tariff",
    "payment",
    "other",
)
SORTS = {"opened": "opened", "due": "due", "priority": "priority", "updated": "updated"}
FILTERS = ("status", "category", "priority", "who", "board_id", "waiting", "age")
AGES = ("24", "72", "168")  # opened more than so many hours ago
MAX_TEXT = 4000


def _desk(principal: Principal) -> bool:
    return principal.may(Permission.QUERY_MANAGE)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: str(v)[: MAX_TEXT + 1] for k, v in form.items() if isinstance(v, str)}


@router.get("", response_class=HTMLResponse)
async def queries_page(request: Request, principal: Principal = Depends(viewer)) -> Response:
    if not principal.may(Permission.QUERY_READ):
        return not_allowed(request, principal, Permission.QUERY_READ)
    if _desk(principal):
        return await _queue(request, principal)
    return await _mine(request, principal)


async def _mine(
    request: Request,
    principal: Principal,
    *,
    error: str | None = None,
    typed: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    async with request.app.state.pool.connection() as conn:
        found = await listings.support_queries(conn, principal, limit=100)
        bills = await listings.invoices(conn, principal, limit=12)
        meters = await listings.meters(conn, principal, limit=20)
    return render(
        request,
        "support.html",
        principal,
        status=status,
        title=words(request)("support.title_consumer"),
        rows=found.rows,
        total=found.total,
        bills=bills.rows,
        meters=meters.rows,
        categories=CATEGORIES,
        error=error,
        typed=typed or {},
    )


async def _queue(request: Request, principal: Principal) -> Response:
    state = listing(
        request,
        sorts=SORTS,
        default_sort="due",
        filters=FILTERS,
        per_page=50,
    )
    f = state.filters
    who = f["who"]
    async with request.app.state.pool.connection() as conn:
        found = await listings.support_queries(
            conn,
            principal,
            board_id=int_or_none(f["board_id"]),
            status=f["status"] if f["status"] in support.STATUSES else None,
            open_only=not f["status"],
            category=f["category"] if f["category"] in CATEGORIES else None,
            priority=f["priority"] if f["priority"] in support.PRIORITIES else None,
            assignee_id=principal.user_id if who == "me" else None,
            unassigned=who == "nobody",
            older_than_h=int(f["age"]) if f["age"] in AGES else None,
            breached=f["waiting"] == "late",
            drafted=f["waiting"] == "draft",
            search=state.search or None,
            sort=state.sort,
            descending=state.descending,
            limit=state.per_page,
            offset=state.offset,
        )
    return render(
        request,
        "support_queue.html",
        principal,
        title=words(request)("support.title_desk"),
        state=state,
        rows=found.rows,
        total=found.total,
        categories=CATEGORIES,
        statuses=support.STATUSES,
        priorities=support.PRIORITIES,
        ages=AGES,
    )


@router.post("")
async def open_query(request: Request, principal: Principal = Depends(viewer)) -> Response:
    form = await _form(request)
    if not csrf_ok(request, form.get("csrf", "")):
        return RedirectResponse("/dashboard/support", status_code=303)
    if not principal.may(Permission.QUERY_OPEN):
        return not_allowed(request, principal, Permission.QUERY_OPEN)
    t = words(request)
    text = form.get("text", "").strip()
    category = form.get("category") or None
    problem = None
    if not text:
        problem = t("support.error_empty")
    elif len(text) > MAX_TEXT:
        problem = t("support.error_long", limit=MAX_TEXT)
    elif category is not None and category not in CATEGORIES:
        problem = t("support.error_category")
    if problem:
        return await _mine(request, principal, error=problem, typed=form, status=422)
    try:
        async with request.app.state.pool.connection() as conn:
            opened = await support.open_query(
                conn,
                principal,
                text=text,
                category=category,
                invoice_id=int_or_none(form.get("invoice_id")),
                meter_id=int_or_none(form.get("meter_id")),
                base_url=notifications.base_url(request.app.state.settings),
            )
    except CloudError as exc:
        return await _mine(request, principal, error=str(exc), typed=form, status=exc.status_code)
    return RedirectResponse(f"/dashboard/support/{opened['id']}", status_code=303)


async def _context(request: Request, principal: Principal, query: dict[str, Any]) -> dict:
    """What an agent sees beside the thread: the consumer's latest bills, meters and alerts."""
    async with request.app.state.pool.connection() as conn:
        bills = await listings.invoices(conn, principal, consumer_id=query["consumer_id"], limit=4)
        alerts = await listings.alerts(conn, principal, consumer_id=query["consumer_id"], limit=5)
        meters = await support_drafts.meters_of(conn, query["consumer_id"])
    return {"bills": bills.rows, "alerts": alerts.rows, "meters": meters}


async def _thread(
    request: Request,
    principal: Principal,
    query_id: int,
    *,
    error: str | None = None,
    typed: dict[str, str] | None = None,
    status: int = 200,
    notice: str | None = None,
) -> Response:
    try:
        async with request.app.state.pool.connection() as conn:
            query = await support.detail(conn, principal, query_id)
            desk = await support.desk_users(conn, query) if _desk(principal) else []
            await notifications.mark_read_for(conn, principal, f"/dashboard/support/{query_id}")
    except NotFound:
        return not_found(request, principal, words(request)("support.query_n", id=query_id))
    context = await _context(request, principal, query) if _desk(principal) else {}
    return render(
        request,
        "support_thread.html",
        principal,
        status=status,
        title=words(request)("support.query_n", id=query_id),
        query=query,
        zone=query["time_zone"],
        desk=desk,
        context=context,
        categories=CATEGORIES,
        statuses=support.STATUSES,
        priorities=support.PRIORITIES,
        moves=support.MOVES[query["status"]],
        error=error,
        notice=notice,
        typed=typed or {},
    )


@router.get("/{query_id}", response_class=HTMLResponse)
async def thread_page(
    request: Request, query_id: int, principal: Principal = Depends(viewer)
) -> Response:
    if not principal.may(Permission.QUERY_READ):
        return not_allowed(request, principal, Permission.QUERY_READ)
    t = words(request)
    done = {"1": t("support.saved"), "sent": t("support.sent")}.get(
        request.query_params.get("saved", "")
    )
    return await _thread(request, principal, query_id, notice=done)


@router.get("/{query_id}/{action}", include_in_schema=False)
async def back_to_thread(query_id: int, action: str) -> Response:
    """A refused form's page reloaded (its address is the form's): back to the thread."""
    return RedirectResponse(f"/dashboard/support/{query_id}", status_code=303)


@router.post("/{query_id}/{action}")
async def act(
    request: Request, query_id: int, action: str, principal: Principal = Depends(viewer)
) -> Response:
    """One form per action: write (consumer), escalate (consumer), answer, change, classify,
    draft, delete (the desk)."""
    form = await _form(request)
    here = f"/dashboard/support/{query_id}"
    if not csrf_ok(request, form.get("csrf", "")):
        return RedirectResponse(here, status_code=303)
    needed = {
        "write": Permission.QUERY_OPEN,
        "escalate": Permission.QUERY_OPEN,
        "answer": Permission.QUERY_MANAGE,
        "change": Permission.QUERY_MANAGE,
        "classify": Permission.QUERY_MANAGE,
        "draft": Permission.QUERY_MANAGE,
        "delete": Permission.QUERY_DELETE,
    }.get(action)
    if needed is None:
        return not_found(request, principal, action)
    if not principal.may(needed):
        return not_allowed(request, principal, needed)
    t = words(request)
    base = notifications.base_url(request.app.state.settings)
    body = form.get("body", "").strip()
    if action in ("write", "answer") and not body:
        return await _thread(
            request, principal, query_id, error=t("support.error_empty"), typed=form, status=422
        )
    if len(body) > MAX_TEXT:
        return await _thread(
            request,
            principal,
            query_id,
            error=t("support.error_long", limit=MAX_TEXT),
            typed=form,
            status=422,
        )
    try:
        async with request.app.state.pool.connection() as conn:
            if action == "write":
                await support.reply(
                    conn, principal, query_id, body=body, agent=False, base_url=base
                )
            elif action == "escalate":
                await support.escalate(conn, principal, query_id, base_url=base)
            elif action == "answer":
                status = form.get("status") or None
                if status is not None and status not in support.STATUSES:
                    status = None
                await support.reply(
                    conn, principal, query_id, body=body, agent=True, status=status, base_url=base
                )
            elif action == "change":
                await support.update(conn, principal, query_id, _changes(form), base_url=base)
                return RedirectResponse(f"{here}?saved=1", status_code=303)
            elif action == "classify":
                await support.classify(conn, principal, query_id)
            elif action == "draft":
                await support.redraft(conn, principal, query_id)
            else:
                await support.delete(conn, principal, query_id)
                return RedirectResponse("/dashboard/support", status_code=303)
    except NotFound:
        return not_found(request, principal, t("support.query_n", id=query_id))
    except CloudError as exc:
        return await _thread(
            request, principal, query_id, error=str(exc), typed=form, status=exc.status_code
        )
    if action in ("write", "answer"):  # said so on the thread: the message went
        return RedirectResponse(f"{here}?saved=sent", status_code=303)
    return RedirectResponse(here, status_code=303)


def _changes(form: dict[str, str]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if form.get("status") in support.STATUSES:
        changes["status"] = form["status"]
    if form.get("priority") in support.PRIORITIES:
        changes["priority"] = form["priority"]
    if form.get("category") in CATEGORIES:
        changes["category"] = form["category"]
    if "assignee_id" in form:
        changes["assignee_id"] = int_or_none(form["assignee_id"])
    return changes
