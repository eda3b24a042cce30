"""The tariffs page, for staff: each of a board's tariffs (one per consumer category) with the
version in force today explained — how energy is priced (one rate, slabs, schedules chosen by
consumption, time-of-day periods), fixed charges, taxes — its earlier and later versions, the
board's holidays, and the temporary overrides: in force, scheduled, ended or taken off, with a
form that sets one for a window that ends by itself and a button that takes one off early.
The forms go through the same service as the API (scope, validation, audit); a refused form
shows the page again with what was wrong and everything the person typed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ..access import Permission, Principal
from ..billing.tariff import EnergyCharge, TariffSpec
from ..errors import CloudError
from ..formats import typed_decimal
from ..services import tariff_overrides, tariffs
from ..services.scoped import BOARDS, TARIFFS, list_rows
from .web import csrf_ok, int_or_none, not_allowed, render, viewer, words

router = APIRouter(prefix="/dashboard/tariffs", include_in_schema=False)
FIELDS = ("csrf", "board_id", "category", "kind", "value", "starts_on", "last_day", "reason")
MAX_FIELD = 500
KINDS = ("energy_rate", "multiplier")


def _slabs(charge: EnergyCharge, scale: Decimal = Decimal(1)) -> list[dict[str, Any]]:
    rows, lower = [], Decimal(0)
    for slab in charge.slabs or []:
        up_to = None if slab.up_to is None else slab.up_to * scale
        rows.append({"from_kwh": lower, "up_to_kwh": up_to, "rate": slab.rate})
        lower = up_to if up_to is not None else lower
    return rows


def _charge(charge: EnergyCharge, today: date) -> dict[str, Any]:
    return {
        "mode": charge.mode,
        "rate": charge.rate,
        "slabs": _slabs(charge),
        "periods": [
            {
                "name": name,
                "rate": rate,
                "weekday": tariffs.hours_by_period(charge.weekday, today).get(name, []),
                "weekend": tariffs.hours_by_period(charge.weekend, today).get(name, []),
            }
            for name, rate in (charge.rates or {}).items()
        ]
        if charge.mode == "time_of_day" and charge.weekday and charge.weekend
        else [],
    }


def explain(spec: TariffSpec, today: date) -> dict[str, Any]:
    """A version's spec as the page shows it: every energy charge (with the consumption range
    that chooses it when there are schedules), fixed charges, adjustments and taxes."""
    if spec.schedules is not None:
        charges, above = [], None
        for schedule in spec.schedules:
            charges.append(
                {**_charge(schedule.energy, today), "above": above, "up_to": schedule.up_to}
            )
            above = schedule.up_to
    else:
        assert spec.energy is not None
        charges = [{**_charge(spec.energy, today), "above": None, "up_to": None}]
    return {
        "currency": spec.currency,
        "energy_unit": spec.energy_unit,
        "limits_per": spec.limits_per,
        "charges": charges,
        "scheduled": spec.schedules is not None,
        "fixed": spec.fixed,
        "fuel_adjustment_per_unit": spec.fuel_adjustment_per_unit,
        "taxes": spec.taxes,
        "minimum_charge": spec.minimum_charge,
        "dynamic": spec.dynamic,
        "net_metering": spec.net_metering,
        "settlement_month": (
            date(2000, spec.net_metering.settlement_month, 1) if spec.net_metering else None
        ),
    }


async def _emails(conn, overrides: list[dict[str, Any]]) -> dict[str, str]:
    """The e-mail of each user who set or took off one of `overrides`, by actor ("user:7")."""
    ids = {
        actor.split(":", 1)[1]
        for o in overrides
        for actor in (o["created_by"], o["removed_by"])
        if actor and actor.startswith("user:")
    }
    cursor = await conn.execute(
        "SELECT id::text, email FROM users WHERE id::text = ANY(%s)", (sorted(ids),)
    )
    return {f"user:{row['id']}": row["email"] for row in await cursor.fetchall()}


async def _form(request: Request) -> dict[str, str]:
    """The form's fields, each cut one past its longest (so too long is said, not stored)."""
    form = await request.form()
    return {
        k: str(v)[: MAX_FIELD + 1] for k, v in form.items() if k in FIELDS and isinstance(v, str)
    }


async def _page(
    request: Request,
    principal: Principal,
    board_id: int | None,
    *,
    error: str | None = None,
    typed: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    t = words(request)
    async with request.app.state.pool.connection() as conn:
        boards, _ = await list_rows(
            conn, principal, BOARDS, filters={}, sort="code", descending=False, limit=500, offset=0
        )
        board = next((b for b in boards if b["id"] == board_id), None)
        board = board or next((b for b in boards if b["id"] == principal.board_id), None)
        board = board or (boards[0] if boards else None)
        if board is None:
            return render(request, "tariffs.html", principal, title=t("tariffs.title"), board=None)
        tz = ZoneInfo(board["time_zone"])
        today = datetime.now(UTC).astimezone(tz).date()
        rows, _ = await list_rows(
            conn,
            principal,
            TARIFFS,
            filters={"board_id": board["id"]},
            sort="category",
            descending=False,
            limit=100,
            offset=0,
        )
        shown = []
        for row in rows:
            versions = await tariffs.versions(conn, principal, row["id"])
            current = next(
                (
                    v
                    for v in versions
                    if v["effective_from"] <= today
                    and (v["effective_to"] is None or today < v["effective_to"])
                ),
                None,
            )
            for version in versions:
                version["last_day"] = (
                    version["effective_to"] - timedelta(days=1) if version["effective_to"] else None
                )
                version["state"] = (
                    "current"
                    if version is current
                    else "future"
                    if version["effective_from"] > today
                    else "past"
                )
            shown.append(
                {
                    **row,
                    "versions": list(reversed(versions)),
                    "current": current,
                    "explained": (
                        explain(TariffSpec.model_validate(current["spec"]), today)
                        if current
                        else None
                    ),
                }
            )
        overrides = await tariff_overrides.list_for_board(conn, principal, board["id"])
        people = await _emails(conn, overrides)
        overrides = [
            {
                **o,
                "last_day": o["ends_on"] - timedelta(days=1),
                "set_by": people.get(o["created_by"], o["created_by"]),
                "taken_off_by": people.get(o["removed_by"], o["removed_by"]),
            }
            for o in overrides
        ]
        holidays = await tariffs.holidays(conn, principal, board["id"])
    return render(
        request,
        "tariffs.html",
        principal,
        status=status,
        page="tariffs",
        title=t("tariffs.title"),
        boards=boards,
        board=board,
        today=today,
        tariffs=shown,
        overrides=overrides,
        holidays=[h for h in holidays if h["day"] >= today.replace(day=1)][:20],
        kinds=KINDS,
        max_reason=MAX_FIELD,
        max_days=tariff_overrides.MAX_WINDOW_DAYS,
        added=int_or_none(request.query_params.get("added")) if not error else None,
        removed=int_or_none(request.query_params.get("removed")) if not error else None,
        error=error,
        typed=typed or {},
    )


@router.get("", response_class=HTMLResponse)
async def tariffs_page(request: Request, principal: Principal = Depends(viewer)) -> Response:
    if not principal.may(Permission.BILLING_READ) or principal.role == "CONSUMER":
        return not_allowed(request, principal, Permission.BILLING_READ)
    return await _page(request, principal, int_or_none(request.query_params.get("board_id")))


def _read(form: dict[str, str], t) -> tuple[dict[str, Any] | None, str | None]:
    """The override the form describes, or the first thing wrong with it, in words."""
    if form.get("kind") not in KINDS:
        return None, t("tariffs.error_kind")
    value = typed_decimal(form.get("value", ""))
    if value is None or value > Decimal("1e6"):
        return None, t("tariffs.error_value", value=form.get("value", ""))
    days = {}
    for name in ("starts_on", "last_day"):
        try:
            days[name] = date.fromisoformat(form.get(name, ""))
        except ValueError:
            return None, t("tariffs.error_day", field=t("tariffs." + name))
    if days["last_day"] < days["starts_on"]:
        return None, t("tariffs.error_order")
    # people name the last day; the service takes the first day it no longer applies
    days["ends_on"] = days.pop("last_day") + timedelta(days=1)
    reason = form.get("reason", "").strip()
    if not reason:
        return None, t("tariffs.error_reason")
    if len(reason) > MAX_FIELD:
        return None, t("tariffs.error_reason_long", n=MAX_FIELD)
    return {
        "category": form.get("category", ""),
        "kind": form["kind"],
        "value": value,
        "reason": reason,
        **days,
    }, None


@router.post("/overrides")
async def add_override(request: Request, principal: Principal = Depends(viewer)) -> Response:
    if not principal.may(Permission.TARIFF_MANAGE):
        return not_allowed(request, principal, Permission.TARIFF_MANAGE)
    form = await _form(request)
    t = words(request)
    board_id = int_or_none(form.get("board_id"))
    if not csrf_ok(request, form.get("csrf", "")):
        return await _page(
            request, principal, board_id, error=t("form.expired"), typed=form, status=403
        )
    override, problem = _read(form, t)
    if board_id is None:
        problem = t("hint.board_id")
    if problem or override is None:
        return await _page(request, principal, board_id, error=problem, typed=form, status=422)
    try:
        async with request.app.state.pool.connection() as conn:
            row = await tariff_overrides.create(conn, principal, board_id=board_id, **override)
    except CloudError as exc:
        return await _page(
            request, principal, board_id, error=str(exc), typed=form, status=exc.status_code
        )
    return RedirectResponse(
        f"/dashboard/tariffs?board_id={board_id}&added={row['id']}#overrides", status_code=303
    )


@router.post("/overrides/{override_id}/remove")
async def remove_override(
    request: Request, override_id: int, principal: Principal = Depends(viewer)
) -> Response:
    if not principal.may(Permission.TARIFF_MANAGE):
        return not_allowed(request, principal, Permission.TARIFF_MANAGE)
    form = await _form(request)
    t = words(request)
    board_id = int_or_none(form.get("board_id"))
    if not csrf_ok(request, form.get("csrf", "")):
        return await _page(request, principal, board_id, error=t("form.expired"), status=403)
    try:
        async with request.app.state.pool.connection() as conn:
            row = await tariff_overrides.remove(conn, principal, override_id)
    except CloudError as exc:
        return await _page(request, principal, board_id, error=str(exc), status=exc.status_code)
    return RedirectResponse(
        f"/dashboard/tariffs?board_id={row['board_id']}&removed={override_id}#overrides",
        status_code=303,
    )
