"""A gateway's settings page: what it runs and the newest version's fate (pending, applied,
rejected or rolled back, with the gateway's reason), the settings as TOML — the same sections a
technician writes in edge.toml — to edit and send as a new version, the versions before, and the
meters technicians' scans found, each given to a consumer (by account number) in one step."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import tomli_w
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from shared import GatewaySettings, describe_validation_error, line_of, toml_problem

from ..access import Permission, Principal
from ..errors import CloudError, NotFound
from ..services import gateway_configs, listings
from .web import csrf_ok, not_allowed, not_found, render, viewer, words

router = APIRouter(prefix="/dashboard", include_in_schema=False)
MAX_TOML = 200_000
_INNER = re.compile(r"(?P<where>meters\.\d+(?:\.\w+)*): (?P<message>.+)", re.DOTALL)


def as_toml(settings: dict[str, Any] | None) -> str:
    """Settings as the TOML a technician knows from edge.toml: `[[buses]]` each followed by its
    `[[buses.meters]]`, then `[checks]`, `[store]` and `[sync]` (defaults left out)."""
    if not settings:
        return ""
    model = GatewaySettings.model_validate(settings)
    data = model.model_dump(mode="json", exclude_defaults=True, exclude_none=True)

    def table(header: str, values: dict[str, Any]) -> list[str]:
        return [header, *(tomli_w.dumps({key: value}).strip() for key, value in values.items())]

    lines: list[str] = []
    for bus, full in zip(data.get("buses", []), model.buses, strict=True):
        meters = bus.pop("meters", [])
        lines += [*table("[[buses]]", {"name": full.name, "kind": full.kind, **bus}), ""]
        for meter in meters:
            lines += [*table("[[buses.meters]]", meter), ""]
    for section in ("checks", "store", "sync"):
        if data.get(section):
            lines += [*table(f"[{section}]", data[section]), ""]
    return "\n".join(lines)


def _describe(settings_dict: dict[str, Any], exc: ValidationError, text: str) -> list[str]:
    """Each problem by where it is: the line of the text, and the bus and meter named as the
    text names them."""
    problems = []
    for where, said in describe_validation_error(exc):
        message = said
        inner = _INNER.match(message)
        if inner and where.count(".") == 1:  # a bus's check naming one of its meters
            where, message = f"{where}.{inner['where']}", inner["message"]
        parts = where.split(".")
        named = where
        if len(parts) >= 2 and parts[0] == "buses" and parts[1].isdigit():
            buses = settings_dict.get("buses") or []
            index = int(parts[1])
            if index < len(buses) and isinstance(buses[index], dict):
                named = f"bus {buses[index].get('name', index + 1)}"
                if len(parts) >= 4 and parts[2] == "meters" and parts[3].isdigit():
                    meters = buses[index].get("meters") or []
                    m = int(parts[3])
                    if m < len(meters) and isinstance(meters[m], dict):
                        named += f", meter {meters[m].get('id', m + 1)}"
                    named += (": " + ".".join(parts[4:])) if parts[4:] else ""
                else:
                    named += (": " + ".".join(parts[2:])) if parts[2:] else ""
        loc = tuple(int(part) if part.isdigit() else part for part in where.split("."))
        line = line_of(text, loc) if where != "(body)" else None
        problems.append(f"line {line}: {named}: {message}" if line else f"{named}: {message}")
    return problems


async def _page(
    request: Request,
    principal: Principal,
    gateway_id: int,
    *,
    error: str | None = None,
    problems: list[str] | None = None,
    typed: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    t = words(request)
    async with request.app.state.pool.connection() as conn:
        found = await listings.gateways(conn, principal, gateway_id=gateway_id, limit=1)
        if not found.rows:
            return not_found(request, principal, t("gateway.what", id=gateway_id))
        gateway = found.rows[0]
        overview = await gateway_configs.overview(conn, principal, gateway_id)
        discoveries = await gateway_configs.discoveries(conn, principal, gateway_id)
        base = await gateway_configs.base_settings(conn, gateway_id)
    typed = typed or {}
    return render(
        request,
        "gateway_config.html",
        principal,
        status=status,
        title=t("config.title", code=gateway["gateway_code"]),
        gateway=gateway,
        overview=overview,
        discoveries=discoveries,
        text=typed.get("toml", as_toml(base.model_dump(mode="json"))),
        comment=typed.get("comment", ""),
        error=error,
        problems=problems or [],
        typed=typed,
    )


@router.get("/gateways/{gateway_id}/config", response_class=HTMLResponse)
async def config_page(
    request: Request, gateway_id: int, principal: Principal = Depends(viewer)
) -> Response:
    if not principal.may(Permission.GATEWAY_READ):
        return not_allowed(request, principal, Permission.GATEWAY_READ)
    return await _page(request, principal, gateway_id)


@router.post("/gateways/{gateway_id}/config")
async def send_config(
    request: Request, gateway_id: int, principal: Principal = Depends(viewer)
) -> Response:
    form = {k: str(v)[:MAX_TOML] for k, v in (await request.form()).items() if isinstance(v, str)}
    here = f"/dashboard/gateways/{gateway_id}/config"
    if not csrf_ok(request, form.get("csrf", "")):
        return RedirectResponse(here, status_code=303)
    if not principal.may(Permission.GATEWAY_CONFIGURE):
        return not_allowed(request, principal, Permission.GATEWAY_CONFIGURE)
    t = words(request)
    typed = {"toml": form.get("toml", ""), "comment": form.get("comment", "")[:500]}
    try:
        data = tomllib.loads(typed["toml"])
    except tomllib.TOMLDecodeError as exc:
        return await _page(
            request,
            principal,
            gateway_id,
            error=t("config.not_toml", why=toml_problem(exc)),
            typed=typed,
            status=422,
        )
    try:
        settings = GatewaySettings.model_validate(data)
    except ValidationError as exc:
        return await _page(
            request,
            principal,
            gateway_id,
            error=t("config.invalid"),
            problems=_describe(data, exc, typed["toml"]),
            typed=typed,
            status=422,
        )
    try:
        async with request.app.state.pool.connection() as conn:
            await gateway_configs.propose(
                conn, principal, gateway_id, settings, comment=typed["comment"] or None
            )
    except NotFound:
        return not_found(request, principal, t("gateway.what", id=gateway_id))
    except CloudError as exc:
        return await _page(
            request, principal, gateway_id, error=str(exc), typed=typed, status=exc.status_code
        )
    return RedirectResponse(here + "?sent=1", status_code=303)


@router.post("/gateway-discoveries/{discovery_id}/assign")
async def assign_found(
    request: Request, discovery_id: int, principal: Principal = Depends(viewer)
) -> Response:
    form = {k: str(v)[:200] for k, v in (await request.form()).items() if isinstance(v, str)}
    try:
        gateway_id = int(form.get("gateway_id", ""))
    except ValueError:
        return RedirectResponse("/dashboard/gateways", status_code=303)
    here = f"/dashboard/gateways/{gateway_id}/config"
    if not csrf_ok(request, form.get("csrf", "")):
        return RedirectResponse(here, status_code=303)
    if not principal.may(Permission.GATEWAY_CONFIGURE):
        return not_allowed(request, principal, Permission.GATEWAY_CONFIGURE)
    t = words(request)
    account = form.get("account_no", "").strip()
    try:
        async with request.app.state.pool.connection() as conn:
            found = await listings.gateways(conn, principal, gateway_id=gateway_id, limit=1)
            if not found.rows:
                raise NotFound(f"no gateway {gateway_id}")
            cursor = await conn.execute(
                "SELECT id FROM consumers WHERE board_id = %s AND account_no = %s",
                (found.rows[0]["board_id"], account),
            )
            consumer = await cursor.fetchone()
            if consumer is None:
                return await _page(
                    request,
                    principal,
                    gateway_id,
                    error=t("config.no_account", account=account or "—"),
                    status=422,
                )
            await gateway_configs.assign(
                conn,
                principal,
                discovery_id,
                consumer_id=consumer["id"],
                external_id=form.get("meter", "").strip() or None,
                fast_s=10.0,
                slow_s=900.0,
            )
    except NotFound:
        return not_found(request, principal, t("gateway.what", id=gateway_id))
    except CloudError as exc:
        return await _page(request, principal, gateway_id, error=str(exc), status=exc.status_code)
    return RedirectResponse(here + "?sent=1", status_code=303)
