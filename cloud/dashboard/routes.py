"""The web app under `/dashboard`: the operator console and the consumer portal, one router made
of the page modules, and the static files (styles, scripts, the chart library) it serves itself.

Each page asks the same services the API uses, with the viewer as the principal, so it shows
exactly the viewer's scope; an object outside it is "not found", as in the API.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.staticfiles import StaticFiles

from . import (
    account_pages,
    admin_pages,
    api_key_pages,
    audit_pages,
    billing_pages,
    board_pages,
    broadcast_pages,
    config_pages,
    console_pages,
    fleet_pages,
    gateway_pages,
    inbox_pages,
    people_pages,
    report_pages,
    session_pages,
    software_pages,
    support_pages,
    tariff_pages,
)
from .web import HERE, LoginNeeded, script_json

__all__ = ["LoginNeeded", "router", "script_json", "static"]

router = APIRouter(include_in_schema=False)
for _module in (
    session_pages,
    account_pages,
    console_pages,
    fleet_pages,
    gateway_pages,
    config_pages,
    billing_pages,
    tariff_pages,
    people_pages,
    inbox_pages,
    admin_pages,
    board_pages,
    report_pages,
    audit_pages,
    api_key_pages,
    support_pages,
    broadcast_pages,
    software_pages,
):
    router.include_router(_module.router)
static = StaticFiles(directory=HERE / "static")
