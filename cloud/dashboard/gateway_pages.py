"""One gateway's page: its health, buses and meters, its software (what it runs, its target and
where that comes from, its updates and how each ended; a super admin sets or clears the
gateway's own target), and the commands sent to it — a form to send one (read a meter now, fill
a range from a DLMS meter's load profile, set a DLMS meter's clock, run the doctor, fetch its
log, restart) and what each came back with, in words and units. A backfill's range is typed in
the board's local time. Plain forms with the session's CSRF token call the same service the API
does."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from shared import QUANTITIES

from ..access import Permission, Principal
from ..errors import CloudError, NotFound
from ..services import gateway_control, ingest, listings, software
from .fleet_pages import meter_view
from .web import csrf_ok, int_or_none, not_allowed, not_found, render, viewer, words

router = APIRouter(prefix="/dashboard", include_in_schema=False)
KINDS = ("read_now", "backfill", "set_clock", "doctor", "upload_log", "restart")
METER_KINDS = ("read_now", "backfill", "set_clock")


def _local(text: str | None, zone: str) -> datetime | None:
    """A `datetime-local` field's value (no zone) as the instant it names in `zone`."""
    try:
        return datetime.fromisoformat(text or "").replace(tzinfo=ZoneInfo(zone))
    except ValueError:
        return None


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text else None
    except ValueError:
        return None


async def _page(
    request: Request,
    principal: Principal,
    gateway_id: int,
    *,
    error: str | None = None,
    typed: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    t = words(request)
    async with request.app.state.pool.connection() as conn:
        found = await listings.gateways(conn, principal, gateway_id=gateway_id, limit=1)
        if not found.rows:
            return not_found(request, principal, t("gateway.what", id=gateway_id))
        gateway = found.rows[0]
        commands = await gateway_control.of_gateway(conn, principal, gateway_id, limit=30, offset=0)
        cursor = await conn.execute(
            "SELECT id, external_id, model, last_reading_at FROM meters"
            " WHERE gateway_id = %s AND replaced_at IS NULL ORDER BY external_id LIMIT 500",
            (gateway_id,),
        )
        meters = await cursor.fetchall()
        history = await ingest.health_history(
            conn, gateway_id, since=datetime.now(UTC) - timedelta(days=1)
        )
        software_now = await software.gateway_software(conn, principal, gateway_id)
        releases = (
            (await software.releases(conn, limit=100, offset=0))["items"]
            if principal.may(Permission.GATEWAY_UPDATE)
            else []
        )
    heard = {m["meter_id"]: m for m in gateway["meter_health"] or []}
    for meter in meters:
        health = heard.get(meter["external_id"], {})
        meter["failures_in_row"] = health.get("failures_in_row", 0)
        meter["last_error"] = health.get("last_error")
        good = health.get("last_good_read")
        meter["last_good_read"] = datetime.fromisoformat(good) if good else None
    for command in commands["items"]:
        lines = (command.get("result") or {}).get("lines")
        if command["kind"] == "upload_log" and isinstance(lines, list):
            command["log"] = [_log_line(line) for line in lines if isinstance(line, str)]
        # the times a meter's values were read, as instants
        taken = (command.get("result") or {}).get("at")
        if isinstance(taken, dict):
            command["result"]["at"] = {
                q: datetime.fromisoformat(v) for q, v in taken.items() if isinstance(v, str)
            }
        if command["kind"] == "backfill":  # the range asked for, as instants
            command["range"] = [
                datetime.fromisoformat(v)
                for v in (command["args"].get("start"), command["args"].get("end"))
                if isinstance(v, str)
            ]
    return render(
        request,
        "gateway.html",
        principal,
        status=status,
        title=t("gateway.title", code=gateway["gateway_code"]),
        gateway=gateway,
        meters=meters,
        commands=commands["items"],
        history=history[-24:],
        software=software_now,
        releases=releases,
        once=uuid.uuid4().hex,  # this form's key: sent twice (a double click), queued once
        quantities=QUANTITIES,
        kinds=KINDS,
        local_now=datetime.now(UTC).astimezone(ZoneInfo(gateway["time_zone"])),
        error=error,
        typed=typed or {},
    )


def _log_line(line: str) -> dict[str, Any]:
    """A JSON log line as its parts: when, how bad, what happened, and the rest as key=value."""
    try:
        entry = json.loads(line)
    except ValueError:
        return {"at": None, "level": "", "event": line, "rest": ""}
    if not isinstance(entry, dict):
        return {"at": None, "level": "", "event": line, "rest": ""}
    at = entry.pop("timestamp", None)
    try:
        moment = datetime.fromisoformat(at) if isinstance(at, str) else None
    except ValueError:
        moment = None
    level = str(entry.pop("level", ""))
    event = str(entry.pop("event", ""))
    entry.pop("logger", None)
    # what the line does not know (meter=None) says nothing: left out
    rest = " ".join(f"{key}={value}" for key, value in entry.items() if value is not None)
    return {"at": moment, "level": level, "event": event, "rest": rest}


@router.get("/gateways/{gateway_id}", response_class=HTMLResponse)
async def gateway_page(
    request: Request, gateway_id: int, principal: Principal = Depends(viewer)
) -> Response:
    if not principal.may(Permission.GATEWAY_READ):
        return not_allowed(request, principal, Permission.GATEWAY_READ)
    return await _page(request, principal, gateway_id)


@router.get("/gateways/{gateway_id}/commands", include_in_schema=False)
async def back_to_gateway(gateway_id: int) -> Response:
    """A refused form's page reloaded (its address is the form's): back to the gateway."""
    return RedirectResponse(f"/dashboard/gateways/{gateway_id}", status_code=303)


@router.post("/gateways/{gateway_id}/commands")
async def send_command(
    request: Request, gateway_id: int, principal: Principal = Depends(viewer)
) -> Response:
    form = {k: str(v)[:600] for k, v in (await request.form()).items() if isinstance(v, str)}
    here = f"/dashboard/gateways/{gateway_id}"
    if not csrf_ok(request, form.get("csrf", "")):
        return RedirectResponse(here, status_code=303)
    if not principal.may(Permission.GATEWAY_COMMAND):
        return not_allowed(request, principal, Permission.GATEWAY_COMMAND)
    t = words(request)
    kind = form.get("kind", "")
    if kind not in KINDS:
        return await _page(
            request, principal, gateway_id, error=t("gateway.error_kind"), typed=form, status=422
        )
    lines = int_or_none(form.get("lines"))
    try:
        async with request.app.state.pool.connection() as conn:
            found = await listings.gateways(conn, principal, gateway_id=gateway_id, limit=1)
            if not found.rows:
                raise NotFound(f"no gateway {gateway_id}")
            zone = found.rows[0]["time_zone"]
            await gateway_control.queue(
                conn,
                principal,
                gateway_id,
                kind=kind,
                meter_id=int_or_none(form.get("meter_id")) if kind in METER_KINDS else None,
                quantities=None,
                lines=min(max(lines, 1), 2000) if lines else None,
                reason=form.get("reason", "").strip()[:500] or None,
                expires_in=timedelta(days=7),
                client_key=f"form:{form['once'][:64]}" if form.get("once") else None,
                start=_local(form.get("start"), zone),
                end=_local(form.get("end"), zone),
                max_drift_s=_number(form.get("max_drift_s")),
            )
    except NotFound:
        return not_found(request, principal, t("gateway.what", id=gateway_id))
    except CloudError as exc:
        return await _page(
            request, principal, gateway_id, error=str(exc), typed=form, status=exc.status_code
        )
    return RedirectResponse(f"{here}#commands", status_code=303)


@router.post("/gateways/{gateway_id}/commands/{command_id}/cancel")
async def cancel_command(
    request: Request, gateway_id: int, command_id: int, principal: Principal = Depends(viewer)
) -> Response:
    form = await request.form()
    here = f"/dashboard/gateways/{gateway_id}"
    if not csrf_ok(request, str(form.get("csrf", ""))[:100]):
        return RedirectResponse(here, status_code=303)
    if not principal.may(Permission.GATEWAY_COMMAND):
        return not_allowed(request, principal, Permission.GATEWAY_COMMAND)
    try:
        async with request.app.state.pool.connection() as conn:
            await gateway_control.cancel(conn, principal, command_id)
    except NotFound:
        return not_found(request, principal, words(request)("gateway.command", id=command_id))
    except CloudError as exc:
        return await _page(request, principal, gateway_id, error=str(exc), status=exc.status_code)
    return RedirectResponse(f"{here}#commands", status_code=303)


@router.post("/gateways/{gateway_id}/software")
async def set_software_target(
    request: Request, gateway_id: int, principal: Principal = Depends(viewer)
) -> Response:
    """This gateway's own target (a registered release), or none: it follows its board."""
    form = {k: str(v)[:200] for k, v in (await request.form()).items() if isinstance(v, str)}
    here = f"/dashboard/gateways/{gateway_id}"
    if not csrf_ok(request, form.get("csrf", "")):
        return RedirectResponse(here, status_code=303)
    if not principal.may(Permission.GATEWAY_UPDATE):
        return not_allowed(request, principal, Permission.GATEWAY_UPDATE)
    version = form.get("version", "").strip()
    try:
        async with request.app.state.pool.connection() as conn:
            await software.set_gateway_target(
                conn,
                principal,
                gateway_id,
                version=software.checked_version(version) if version else None,
            )
    except NotFound:
        return not_found(request, principal, words(request)("gateway.what", id=gateway_id))
    except CloudError as exc:
        return await _page(request, principal, gateway_id, error=str(exc), status=exc.status_code)
    return RedirectResponse(f"{here}#software", status_code=303)


@router.get("/gateways/{gateway_id}/software", include_in_schema=False)
async def back_from_software(gateway_id: int) -> Response:
    """A refused form's page reloaded (its address is the form's): back to the gateway."""
    return RedirectResponse(f"/dashboard/gateways/{gateway_id}#software", status_code=303)


@router.post("/meters/{meter_id}/supply")
async def switch_supply(
    request: Request, meter_id: int, principal: Principal = Depends(viewer)
) -> Response:
    """The meter page's supply form: disconnect or reconnect, with a reason; the command's
    progress shows on the gateway's page."""
    form = {k: str(v)[:600] for k, v in (await request.form()).items() if isinstance(v, str)}
    here = f"/dashboard/meters/{meter_id}"
    if not csrf_ok(request, form.get("csrf", "")):
        return RedirectResponse(here, status_code=303)
    if not principal.may(Permission.METER_DISCONNECT):
        return not_allowed(request, principal, Permission.METER_DISCONNECT)
    t = words(request)
    action = form.get("action")
    if action not in ("disconnect", "reconnect"):
        return RedirectResponse(f"{here}?supply_error=action", status_code=303)
    try:
        async with request.app.state.pool.connection() as conn:
            command = await gateway_control.switch_supply(
                conn,
                principal,
                meter_id,
                connect=action == "reconnect",
                reason=form.get("reason", "")[:500],
            )
    except NotFound:
        return not_found(request, principal, t("what.meter", id=meter_id))
    except CloudError as exc:  # the page again, the form open with what was typed and why
        supply = {
            "action": action,
            "reason": form.get("reason", "")[:500],
            "error": "reason" if "reason" in str(exc) else "refused",
            "detail": str(exc),
        }
        return await meter_view(request, principal, meter_id, supply=supply, status=exc.status_code)
    return RedirectResponse(
        f"/dashboard/gateways/{command['gateway_id']}#commands", status_code=303
    )
