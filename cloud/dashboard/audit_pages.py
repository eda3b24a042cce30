"""The audit log's pages: the log filtered (who, what, which action, which days) with each
entry named, and one entry with what it changed, key by key (old → new). The full CSV is the
API's streamed export, linked with the page's filters; `?format=csv` still downloads the page's
named rows (at most 10,000)."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from psycopg import sql

from .. import formats
from ..access import Permission, allowed
from ..errors import CloudError, NotFound
from ..services import audit
from .admin_pages import viewer_zone
from .i18n import client_strings, pick_language
from .web import csv_download, listing, not_allowed, not_found, render, viewer, wants_csv, words

router = APIRouter(prefix="/dashboard", include_in_schema=False)

FILTERS = ("actor", "who", "entity", "entity_id", "action", "from", "to")
EXPORT = "/api/v1/audit/export.csv"


def _day(text: str, name: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise CloudError(f"{name}: a date such as 2026-10-01") from exc


def _wanted(filters: dict[str, str], zone: str) -> audit.AuditFilter:
    """The page's filters as the service takes them: days in the viewer's zone, `to` included
    (up to the midnight after it)."""
    tz = ZoneInfo(zone)
    first, last = _day(filters["from"], "from"), _day(filters["to"], "to")
    return audit.AuditFilter(
        actor=filters["actor"] or None,
        actor_contains=filters["who"] or None,
        entity=filters["entity"] or None,
        entity_id=filters["entity_id"] or None,
        action=filters["action"] or None,
        start=datetime.combine(first, time(), tz) if first else None,
        end=datetime.combine(last + timedelta(days=1), time(), tz) if last else None,
    )


def export_link(wanted: audit.AuditFilter) -> str:
    """The API's streamed CSV with the same filters."""
    params = {
        "actor": wanted.actor,
        "actor_contains": wanted.actor_contains,
        "entity": wanted.entity,
        "entity_id": wanted.entity_id,
        "action": wanted.action,
        "from": wanted.start.isoformat() if wanted.start else None,
        "to": wanted.end.isoformat() if wanted.end else None,
    }
    query = urlencode({k: v for k, v in params.items() if v})
    return f"{EXPORT}?{query}" if query else EXPORT


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(request: Request) -> Response:
    principal = await viewer(request)
    if not allowed(principal.role, Permission.AUDIT_READ):
        return not_allowed(request, principal, Permission.AUDIT_READ)
    state = listing(
        request, sorts={"id": "id"}, default_sort="id", default_descending=True, filters=FILTERS
    )
    problem = None
    rows: list[dict[str, Any]] = []
    total = 0
    async with request.app.state.pool.connection() as conn:
        zone = await viewer_zone(conn, principal)
        try:
            wanted = _wanted(state.filters, zone)
            rows, total = await audit.entries(
                conn,
                principal,
                limit=10_000 if wants_csv(request) else state.per_page,
                offset=0 if wants_csv(request) else state.offset,
                wanted=wanted,
            )
        except CloudError as exc:
            problem, wanted = str(exc), audit.AuditFilter()
        await _name(conn, rows)
    if wants_csv(request):
        return csv_download(
            "audit",
            {"when_utc": "at", "who": "who", "action": "action", "kind": "entity", "what": "what"},
            rows,
        )
    # the kinds and actions the filters offer, in words, by what the catalog names (a code
    # from an address the catalog does not know is offered as itself, so the form says it)
    catalog = client_strings(pick_language(request.headers.get("accept-language")))
    for prefix, name in (("entity.", "entity"), ("event.", "action")):
        chosen = state.filters.get(name)
        if chosen and prefix + chosen not in catalog:
            catalog = {**catalog, prefix + chosen: chosen}
    return render(
        request,
        "audit.html",
        principal,
        title=words(request)("nav.audit"),
        kinds=sorted(
            ((k.removeprefix("entity."), w) for k, w in catalog.items() if k.startswith("entity.")),
            key=lambda pair: pair[1].lower(),
        ),
        actions=sorted(
            ((k.removeprefix("event."), w) for k, w in catalog.items() if k.startswith("event.")),
            key=lambda pair: pair[1].lower(),
        ),
        state=state,
        page_rows=rows,
        total=total,
        zone=zone,
        problem=problem,
        export=export_link(wanted),
    )


@router.get("/audit/{entry_id}", response_class=HTMLResponse)
async def audit_entry_page(request: Request, entry_id: int) -> Response:
    principal = await viewer(request)
    if not allowed(principal.role, Permission.AUDIT_READ):
        return not_allowed(request, principal, Permission.AUDIT_READ)
    t = words(request)
    async with request.app.state.pool.connection() as conn:
        try:
            entry = await audit.entry(conn, principal, entry_id) if entry_id < 2**62 else None
        except NotFound:
            entry = None
        if entry is None:
            return not_found(request, principal, t("audit.entry", id=entry_id))
        zone = await viewer_zone(conn, principal)
        await _name(conn, [entry])
        users = await _user_names(conn, entry["changes"])
    for change in entry["changes"]:
        key = change["key"]
        head, dot, name = key.rpartition(".")
        if name in _EXCLUSIVE_ENDS:  # stored as the first day no longer covered
            key = head + dot + _EXCLUSIVE_ENDS[name]
            change["old"], change["new"] = _day_before(change["old"]), _day_before(change["new"])
        change["field"] = key.replace("_", " ").replace(".", " › ").capitalize()
        change["old"] = _shown(change["old"], zone, users, t)
        change["new"] = _shown(change["new"], zone, users, t)
    return render(
        request,
        "audit_entry.html",
        principal,
        title=t("audit.entry", id=entry_id),
        entry=entry,
        zone=zone,
    )


# a window's end as the API takes it (the first day it no longer applies, as tariff overrides'
# `ends_on`), and the name of the day people read instead: the last day it applies
_EXCLUSIVE_ENDS = {"ends_on": "last_day"}
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:?\d{2}|Z)$")
_ACTOR = re.compile(r"^user:(\d+)$")


def _shown(value: Any, zone: str, users: dict[str, str], t: Any) -> str | None:
    """A value as a person reads it: yes or no, an instant in the viewer's zone, a user by
    address, a list of plain values as a list, other text as it is, anything else as compact
    JSON."""
    if value is None:
        return None
    if isinstance(value, bool):
        return t("audit.yes") if value else t("audit.no")
    if isinstance(value, str):
        if _INSTANT.match(value):
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return formats.local_time(moment, zone, seconds=True)
        if _DAY.match(value):
            with contextlib.suppress(ValueError):
                return formats.local_date(date.fromisoformat(value))
        if actor := _ACTOR.match(value):
            return users.get(actor.group(1), value)
        return value
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value) if value else "—"
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _day_before(value: Any) -> Any:
    """The day before a stored day (anything else as it is)."""
    if isinstance(value, str) and _DAY.match(value):
        with contextlib.suppress(ValueError):
            return (date.fromisoformat(value) - timedelta(days=1)).isoformat()
    return value


async def _user_names(conn, changes: list[dict[str, Any]]) -> dict[str, str]:
    """The e-mail of each user an entry's values name as `user:<id>` (created_by, ...)."""
    ids = {
        actor.group(1)
        for change in changes
        for value in (change["old"], change["new"])
        if isinstance(value, str) and (actor := _ACTOR.match(value))
    }
    return await _emails(conn, ids)


async def _emails(conn, ids: set[str]) -> dict[str, str]:
    """Each user's e-mail by id (as text, as `user:<id>` names them)."""
    if not ids:
        return {}
    cursor = await conn.execute(
        "SELECT id::text, email FROM users WHERE id::text = ANY(%s)", (sorted(ids),)
    )
    return {row["id"]: row["email"] for row in await cursor.fetchall()}


async def _name(conn, rows: list[dict[str, Any]]) -> None:
    """Give each row `who` (a user's e-mail, else the actor) and `what` (the object's name)."""
    users = {r["actor"].split(":", 1)[1] for r in rows if r["actor"].startswith("user:")}
    emails = await _emails(conn, users)
    named = await _entity_names(conn, rows)
    for row in rows:
        kind, _, who = row["actor"].partition(":")
        row["who"] = emails.get(who, row["actor"]) if kind == "user" else row["actor"]
        row["what"] = named.get((row["entity"], str(row["entity_id"])), row["entity_id"] or "")


# how an audited object is named: its table and the words for it
_NAMES = {
    "board": ("boards", "code || ' — ' || name"),
    "state": ("states", "code || ' — ' || name"),
    "consumer": ("consumers", "name || ' (' || account_no || ')'"),
    "meter": ("meters", "external_id"),
    "gateway": ("gateways", "gateway_code"),
    "user": ("users", "email"),
    "tariff": ("tariffs", "name"),
    "invoice": (
        "invoices i JOIN consumers c ON c.id = i.consumer_id",
        "c.name || ', ' || to_char(i.period_start, 'FMMonth YYYY')",
    ),
    "alert": (  # 'power spike on rtu-2 (Demo household 2)'
        "alerts i LEFT JOIN meters m ON m.id = i.meter_id"
        " LEFT JOIN consumers c ON c.id = m.consumer_id"
        " LEFT JOIN gateways g ON g.id = i.gateway_id",
        "replace(i.kind, '_', ' ') || coalesce(' on ' || m.external_id, ' on ' || g.gateway_code,"
        " '') || coalesce(' (' || c.name || ')', '')",
    ),
    "support_query": ("support_queries", "'“' || subject || '”'"),
    "tariff_override": ("tariff_overrides", "category || ': ' || reason"),
    "report_schedule": ("report_schedules", "name"),
    "report_format": ("report_formats", "name"),
    "api_key": ("api_keys", "name"),
    "broadcast": ("broadcasts", "title"),
    "software_release": ("software_releases", "version"),
    "recommendation": ("recommendations", "replace(kind, '_', ' ')"),
}


async def _entity_names(conn, rows: list[dict]) -> dict[tuple[str, str], str]:
    """The names of the objects audit rows are about (only the rows' own, already in scope);
    an id that names nothing any more keeps its number."""
    wanted: dict[str, set[int]] = {}
    for row in rows:
        if row["entity"] in _NAMES and str(row["entity_id"] or "").isdigit():
            wanted.setdefault(row["entity"], set()).add(int(row["entity_id"]))
    names = {}
    for entity, ids in wanted.items():
        table, label = _NAMES[entity]
        key = "i.id" if entity in ("invoice", "alert") else "id"
        cursor = await conn.execute(
            sql.SQL(
                "SELECT {key} AS id, {label} AS label FROM {table} WHERE {key} = ANY(%s)"
            ).format(key=sql.SQL(key), label=sql.SQL(label), table=sql.SQL(table)),
            (list(ids),),
        )
        names |= {(entity, str(row["id"])): row["label"] for row in await cursor.fetchall()}
    return names
