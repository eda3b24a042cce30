"""The boards page, for the admins who run a state's boards or the whole country's: the states
(a super admin adds, renames and removes them), the boards in scope with what each holds, and
plain forms (carrying the session's CSRF token) to add a board, change one and remove an empty
one.

The forms are checked by the API's own models and done by the same scoped, audited services as
`/api/v1/states` and `/api/v1/boards`: a board outside the viewer's scope is not found, and a
board or state that still holds something is refused with what it holds. A refused form shows
the page again with what was wrong and everything the person typed."""

from __future__ import annotations

import functools
import zoneinfo
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from psycopg import sql
from pydantic import ValidationError

from ..access import Permission, Principal, scope_filter
from ..api.boards import BoardCreate, BoardUpdate, StateCreate, StateUpdate
from ..errors import CloudError, NotFound
from ..services import fleet
from ..services.scoped import BOARDS, STATES, actor, delete_row, get_row, update_row
from .web import csrf_ok, not_allowed, not_found, render, viewer, words

router = APIRouter(prefix="/dashboard", include_in_schema=False)
MAX_FIELD = 300  # a form field is cut here, so too long is said by the model, not stored
BOARD_FIELDS = ("csrf", "state_id", "code", "name", "time_zone", "currency", "capacity_kw")
STATE_FIELDS = ("csrf", "code", "name")
DONE = (
    "board_added",
    "board_changed",
    "board_removed",
    "state_added",
    "state_renamed",
    "state_removed",
)

# what a board holds, counted for the list (and what stops its removal)
_BOARDS = sql.SQL(
    "SELECT b.id, b.code, b.name, b.time_zone, b.currency, b.capacity_kw, b.state_id,"
    " s.code AS state_code, s.name AS state_name,"
    " (SELECT count(*) FROM consumers c WHERE c.board_id = b.id) AS consumers,"
    " (SELECT count(*) FROM meters m WHERE m.board_id = b.id) AS meters,"
    " (SELECT count(*) FROM gateways g WHERE g.board_id = b.id) AS gateways,"
    " (SELECT count(*) FROM users u WHERE u.board_id = b.id AND u.role <> 'CONSUMER')"
    " AS staff"
    " FROM boards b JOIN states s ON s.id = b.state_id WHERE {} ORDER BY s.code, b.code"
    " LIMIT 500"
)
_STATES = sql.SQL(
    "SELECT s.id, s.code, s.name,"
    " (SELECT count(*) FROM boards b WHERE b.state_id = s.id) AS boards,"
    " (SELECT count(*) FROM users u WHERE u.state_id = s.id) AS staff"
    " FROM states s WHERE {} ORDER BY s.code LIMIT 200"
)


def _shown(board: dict[str, Any]) -> dict[str, Any]:
    """A board's row with its capacity as it was typed: 125.5, not 125.500 nor 126."""
    capacity = board["capacity_kw"]
    if capacity is None:
        return board
    exact = capacity.normalize()
    places = max(0, -exact.as_tuple().exponent)
    return board | {"capacity_text": f"{exact:f}", "capacity_places": places}


@functools.cache
def time_zones() -> tuple[str, ...]:
    """The IANA zones a board may keep its tariffs in (Area/City names, no aliases)."""
    areas = ("Africa", "America", "Asia", "Atlantic", "Australia", "Europe", "Indian", "Pacific")
    return ("UTC", *sorted(z for z in zoneinfo.available_timezones() if z.startswith(areas)))


async def _form(request: Request, names: tuple[str, ...]) -> dict[str, str]:
    form = await request.form()
    return {k: str(v)[:MAX_FIELD].strip() for k, v in form.items() if k in names}


def _problem(
    request: Request, exc: ValidationError, typed: dict[str, str], *, kind: str = "board"
) -> str:
    """Everything wrong in a form at once, in words: each field's hint (a state's code has its
    own), or the model's message; and a time zone the model let by that is no zone."""
    t = words(request)
    fields: list[str] = []
    said: list[str] = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        if field in fields:
            continue
        fields.append(field)
        hint = t(f"boards.hint.{kind}_{field}", "") or t(f"boards.hint.{field}", "")
        said.append(hint or f"{field.replace('_', ' ')}: {error['msg']}")
    zone = typed.get("time_zone")
    if zone and "time_zone" not in fields:
        try:
            fleet.check_time_zone(zone)
        except CloudError as zone_error:
            said.append(str(zone_error)[:1].upper() + str(zone_error)[1:] + ".")
    return " ".join(said)


def _manager(principal: Principal, request: Request) -> Response | None:
    if not principal.may(Permission.BOARD_MANAGE):
        return not_allowed(request, principal, Permission.BOARD_MANAGE)
    return None


async def _listing(conn, principal: Principal) -> tuple[list[dict], list[dict]]:
    where, params = scope_filter(principal, "board", "b")
    found = await (await conn.execute(_BOARDS.format(where), params)).fetchall()
    boards = [_shown(board) for board in found]
    where, params = scope_filter(principal, "state", "s")
    states = await (await conn.execute(_STATES.format(where), params)).fetchall()
    return states, boards


async def _page(
    request: Request,
    principal: Principal,
    *,
    board_error: str | None = None,
    state_error: str | None = None,
    problem: str | None = None,
    typed: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    t = words(request)
    async with request.app.state.pool.connection() as conn:
        states, boards = await _listing(conn, principal)
    query = request.query_params
    done = query.get("done")
    return render(
        request,
        "boards.html",
        principal,
        status=status,
        title=t("nav.boards"),
        states=states,
        boards=boards,
        zones=time_zones(),
        done=t(f"boards.done.{done}", code=query.get("code", "")[:40]) if done in DONE else None,
        board_error=board_error,
        state_error=state_error,
        problem=problem,
        typed=typed or {},
    )


@router.get("/boards", response_class=HTMLResponse)
async def boards_page(request: Request) -> Response:
    principal = await viewer(request)
    return _manager(principal, request) or await _page(request, principal)


@router.post("/boards", response_class=HTMLResponse)
async def add_board(request: Request) -> Response:
    """A new board in a state of the viewer's scope (the API's `POST /boards`, as a form)."""
    principal = await viewer(request)
    if refused := _manager(principal, request):
        return refused
    typed = await _form(request, BOARD_FIELDS)
    t = words(request)
    if not csrf_ok(request, typed.get("csrf", "")):
        return await _page(
            request, principal, board_error=t("form.expired"), typed=typed, status=403
        )
    fields = {k: v for k, v in typed.items() if k != "csrf" and v != ""}
    try:
        body = BoardCreate.model_validate(fields)
        async with request.app.state.pool.connection() as conn:
            board = await fleet.add_board(conn, principal, **body.model_dump())
    except NotFound:  # a state outside the scope is not one of the form's
        return await _page(
            request, principal, board_error=t("hint.state_id"), typed=typed, status=422
        )
    except ValidationError as exc:
        problem = _problem(request, exc, typed)
        return await _page(request, principal, board_error=problem, typed=typed, status=422)
    except CloudError as exc:
        return await _page(
            request, principal, board_error=str(exc), typed=typed, status=exc.status_code
        )
    return RedirectResponse(
        f"/dashboard/boards?done=board_added&code={board['code']}", status_code=303
    )


async def _board_view(
    request: Request,
    principal: Principal,
    board_id: int,
    *,
    error: str | None = None,
    typed: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    t = words(request)
    async with request.app.state.pool.connection() as conn:
        try:
            await get_row(conn, principal, BOARDS, board_id)
        except NotFound:
            return not_found(request, principal, t("what.board", id=board_id))
        where, params = scope_filter(principal, "board", "b")
        cursor = await conn.execute(
            _BOARDS.format(sql.SQL("{} AND b.id = %s").format(where)), [*params, board_id]
        )
        board = _shown(await cursor.fetchone())
    holds = board["consumers"] + board["meters"] + board["gateways"] + board["staff"]
    return render(
        request,
        "board.html",
        principal,
        status=status,
        title=f"{board['code']} — {board['name']}",
        board=board,
        empty=holds == 0,
        zones=time_zones(),
        error=error,
        typed=typed or {},
    )


@router.get("/boards/{board_id}", response_class=HTMLResponse)
async def board_page(request: Request, board_id: int) -> Response:
    principal = await viewer(request)
    return _manager(principal, request) or await _board_view(request, principal, board_id)


@router.post("/boards/{board_id}", response_class=HTMLResponse)
async def change_board(request: Request, board_id: int) -> Response:
    """A board's name, zone, currency or capacity (the API's `PATCH /boards/{id}`, as a form;
    an empty capacity clears it)."""
    principal = await viewer(request)
    if refused := _manager(principal, request):
        return refused
    typed = await _form(request, BOARD_FIELDS)
    t = words(request)
    if not csrf_ok(request, typed.get("csrf", "")):
        return await _board_view(
            request, principal, board_id, error=t("form.expired"), typed=typed, status=403
        )
    fields: dict[str, Any] = {
        k: typed.get(k, "") for k in ("name", "time_zone", "currency", "capacity_kw")
    }
    fields["capacity_kw"] = fields["capacity_kw"] or None
    try:
        changes = BoardUpdate.model_validate(fields).model_dump(exclude_unset=True)
        fleet.check_time_zone(changes["time_zone"])
        async with request.app.state.pool.connection() as conn:
            board = await update_row(conn, principal, BOARDS, board_id, changes)
    except ValidationError as exc:
        problem = _problem(request, exc, typed)
        return await _board_view(
            request, principal, board_id, error=problem, typed=typed, status=422
        )
    except NotFound:
        return not_found(request, principal, t("what.board", id=board_id))
    except CloudError as exc:
        return await _board_view(
            request, principal, board_id, error=str(exc), typed=typed, status=exc.status_code
        )
    return RedirectResponse(
        f"/dashboard/boards?done=board_changed&code={board['code']}", status_code=303
    )


@router.post("/boards/{board_id}/delete", response_class=HTMLResponse)
async def remove_board(request: Request, board_id: int) -> Response:
    """Remove an empty board (the API's `DELETE /boards/{id}`); one that holds anything is
    refused with what it holds."""
    principal = await viewer(request)
    if refused := _manager(principal, request):
        return refused
    typed = await _form(request, ("csrf",))
    t = words(request)
    if not csrf_ok(request, typed.get("csrf", "")):
        return await _board_view(request, principal, board_id, error=t("form.expired"), status=403)
    try:
        async with request.app.state.pool.connection() as conn:
            board = await delete_row(conn, principal, BOARDS, board_id)
    except NotFound:
        return not_found(request, principal, t("what.board", id=board_id))
    except CloudError as exc:
        return await _board_view(
            request, principal, board_id, error=str(exc), status=exc.status_code
        )
    return RedirectResponse(
        f"/dashboard/boards?done=board_removed&code={board['code']}", status_code=303
    )


def _state_manager(principal: Principal, request: Request) -> Response | None:
    if not principal.may(Permission.STATE_MANAGE):
        return not_allowed(request, principal, Permission.STATE_MANAGE)
    return None


@router.post("/states", response_class=HTMLResponse)
async def add_state(request: Request) -> Response:
    """A new state (the API's `POST /states`, as a form): super admins only."""
    principal = await viewer(request)
    if refused := _state_manager(principal, request):
        return refused
    typed = await _form(request, STATE_FIELDS)
    t = words(request)
    if not csrf_ok(request, typed.get("csrf", "")):
        return await _page(
            request, principal, state_error=t("form.expired"), typed=typed, status=403
        )
    try:
        body = StateCreate.model_validate({k: v for k, v in typed.items() if k != "csrf"})
        async with request.app.state.pool.connection() as conn:
            state = await fleet.create_state(
                conn, code=body.code, name=body.name, actor=actor(principal)
            )
    except ValidationError as exc:
        problem = _problem(request, exc, typed, kind="state")
        return await _page(request, principal, state_error=problem, typed=typed, status=422)
    except CloudError as exc:
        return await _page(
            request, principal, state_error=str(exc), typed=typed, status=exc.status_code
        )
    return RedirectResponse(
        f"/dashboard/boards?done=state_added&code={state['code']}", status_code=303
    )


@router.post("/states/{state_id}", response_class=HTMLResponse)
async def rename_state(request: Request, state_id: int) -> Response:
    principal = await viewer(request)
    if refused := _state_manager(principal, request):
        return refused
    typed = await _form(request, ("csrf", "name"))
    t = words(request)
    if not csrf_ok(request, typed.get("csrf", "")):
        return await _page(request, principal, problem=t("form.expired"), status=403)
    try:
        body = StateUpdate.model_validate({"name": typed.get("name", "")})
        async with request.app.state.pool.connection() as conn:
            state = await update_row(conn, principal, STATES, state_id, body.model_dump())
    except ValidationError as exc:
        return await _page(
            request, principal, problem=_problem(request, exc, typed, kind="state"), status=422
        )
    except CloudError as exc:
        return await _page(request, principal, problem=str(exc), status=exc.status_code)
    return RedirectResponse(
        f"/dashboard/boards?done=state_renamed&code={state['code']}", status_code=303
    )


@router.post("/states/{state_id}/delete", response_class=HTMLResponse)
async def remove_state(request: Request, state_id: int) -> Response:
    principal = await viewer(request)
    if refused := _state_manager(principal, request):
        return refused
    typed = await _form(request, ("csrf",))
    t = words(request)
    if not csrf_ok(request, typed.get("csrf", "")):
        return await _page(request, principal, problem=t("form.expired"), status=403)
    try:
        async with request.app.state.pool.connection() as conn:
            state = await delete_row(conn, principal, STATES, state_id)
    except CloudError as exc:
        return await _page(request, principal, problem=str(exc), status=exc.status_code)
    return RedirectResponse(
        f"/dashboard/boards?done=state_removed&code={state['code']}", status_code=303
    )
