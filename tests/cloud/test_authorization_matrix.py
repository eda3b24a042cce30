"""The authorization matrix, generated from the route table: every operation of the OpenAPI
document × every role × every target (the caller's own object, one of another board, one of
another state, and for consumer-level objects a sibling consumer's), reads, writes and deletes.

Every role calls once with its session and once with each of two API keys of its own: one
carrying every permission a key may carry (it must answer as the session does, except where keys
are never allowed: managing keys and users), and one carrying every other of them (403 where
the permission is missing). A key never reaches beyond its owner's scope.

Each answer must match the permission map (403 without the permission) and the scope rule
(404 outside the scope, whatever the verb), a refused request must leave no audit row, and after
all of a role's requests the rows outside its scope must be exactly as they were. The scope rule
here is written out from the roles' definitions (`reaches`), not taken from `cloud.access`.

A route added later without an entry in `EXPECTATIONS` fails `test_every_route_has_an_entry`,
and an id parameter that is not typed to be resolved in scope fails `test_every_id_is_scoped`.
"""

from __future__ import annotations

import hashlib
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from psycopg_pool import AsyncConnectionPool

from cloud.access import ROLE_PERMISSIONS, Permission, allowed
from cloud.api.scoped_route import id_slots
from cloud.app import create_app
from cloud.billing import urdb
from cloud.billing.tariff import TariffSpec
from cloud.settings import CloudSettings
from tests.cloud.conftest import Served
from tests.cloud.world import (
    FLAT_TARIFF,
    MATRIX_RELEASE,
    PASSWORD,
    Obj,
    Site,
    World,
    add_actor,
    build_world,
)

P = Permission
PUBLIC = "public"
SIGNED_IN = "signed in"
BOARD_SITES = ("own", "other_board", "other_state")
CONSUMER_SITES = ("own", "sibling", "other_board", "other_state")
STATE_SITES = ("own", "other_state")
KEYS = "/api/v1/users/me/api-keys"
CREDENTIALS = ("session", "key", "partial key")
READINGS = {
    "quantity": "1.8.0",
    "interval": "day",
    "from": "2026-10-01T00:00Z",
    "to": "2026-10-03T00:00Z",
}


@dataclass(frozen=True)
class Req:
    path: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None  # a raw body instead of JSON


@dataclass(frozen=True)
class Expect:
    """How a route answers: `permission` (or PUBLIC / SIGNED_IN), the kind of the object whose
    scope decides (`entity`, with the site object `obj` it names), how to build a request for a
    site, which sites to try, and the status of success."""

    permission: Permission | str
    entity: str | None = None
    obj: str | None = None
    build: Callable[[World, Site], Req] = lambda w, s: Req()
    sites: tuple[str, ...] = BOARD_SITES
    ok: int = 200
    in_person: bool = False  # refused (403) to API keys: only the owner signed in may


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def letters(n: int) -> str:
    return "".join(chr(ord("A") + int(c, 16) % 26) for c in uuid.uuid4().hex[:n])


def by_id(obj: str, name: str | None = None, **extra: Any) -> Callable[[World, Site], Req]:
    """A request naming the site's `obj` in the path (as `name`, default `<obj>_id`)."""
    key = name or f"{obj.split('_')[0]}_id"
    return lambda w, s: Req(path={key: s.objects[obj].id}, **extra)


def in_a_week() -> str:
    return (datetime.now(UTC) + timedelta(days=7)).isoformat()


def urdb_version() -> dict:
    return urdb.to_urdb(TariffSpec.model_validate(FLAT_TARIFF))


REPORT_FORMAT = {
    "kind": "consumption",
    "file_type": "csv",
    "columns": [{"column": "period", "label": "Day"}, {"column": "energy_kwh"}],
    "group_by": "week",
}
REPORT_SCHEDULE = {
    "kind": "alerts",
    "file_type": "csv",
    "cadence": "weekly",
    "weekday": 4,
    "at_time": "18:30",
    "emails": ["finance@example.org"],
}


E = Expect
EXPECTATIONS: dict[tuple[str, str], Expect] = {
    # alerts
    ("GET", "/api/v1/alerts"): E(
        P.ALERT_READ,
        "meter",
        "meter",
        lambda w, s: Req(query={"meter_id": s.meter.id}),
        CONSUMER_SITES,
    ),
    ("POST", "/api/v1/alerts/checks"): E(P.JOBS_RUN),
    ("GET", "/api/v1/alerts/statistics"): E(
        P.ALERT_READ, "board", "board", lambda w, s: Req(query={"board_id": s.board.id})
    ),
    ("GET", "/api/v1/alerts/stream"): E(P.ALERT_READ),
    ("GET", "/api/v1/alerts/{alert_id}"): E(
        P.ALERT_READ, "alert", "alert", by_id("alert"), CONSUMER_SITES
    ),
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge"): E(
        P.ALERT_MANAGE,
        "alert",
        "alert_ack",
        lambda w, s: Req(path={"alert_id": s.alert_ack.id}, json={"note": "on it"}),
        CONSUMER_SITES,
    ),
    ("POST", "/api/v1/alerts/{alert_id}/resolve"): E(
        P.ALERT_MANAGE,
        "alert",
        "alert_resolve",
        lambda w, s: Req(path={"alert_id": s.alert_resolve.id}, json={"note": "fixed"}),
        CONSUMER_SITES,
    ),
    ("GET", "/api/v1/audit"): E(
        P.AUDIT_READ,
        build=lambda w, s: Req(
            query={"actor_contains": "gateway:", "entity": "gateway", "from": "2026-01-01T00:00Z"}
        ),
    ),
    ("GET", "/api/v1/audit/export.csv"): E(
        P.AUDIT_READ, build=lambda w, s: Req(query={"entity": "gateway", "action": "update"})
    ),
    ("GET", "/api/v1/audit/{entry_id}"): E(
        P.AUDIT_READ, "audit_entry", "audit_entry", by_id("audit_entry", "entry_id")
    ),
    # the caller's own API keys (their own tests: test_api_keys)
    ("GET", KEYS): E(SIGNED_IN),
    ("POST", KEYS): E(
        SIGNED_IN,
        build=lambda w, s: Req(
            json={"name": "matrix", "permissions": ["meter:read"], "expires_at": in_a_week()}
        ),
        ok=201,
    ),
    ("DELETE", KEYS + "/{key_id}"): E(SIGNED_IN, "api_key", "api_key", by_id("api_key", "key_id")),
    # sessions (their own tests: test_auth, test_login_limits, test_sessions)
    ("POST", "/api/v1/auth/login"): E(PUBLIC),
    ("POST", "/api/v1/auth/logout"): E(PUBLIC),
    ("POST", "/api/v1/auth/refresh"): E(PUBLIC),
    ("GET", "/api/v1/auth/me"): E(SIGNED_IN),
    # billing
    ("POST", "/api/v1/billing/overdue"): E(
        P.BILLING_GENERATE, "board", "board", lambda w, s: Req(query={"board_id": s.board.id})
    ),
    ("POST", "/api/v1/billing/runs"): E(
        P.BILLING_GENERATE,
        "board",
        "board",
        lambda w, s: Req(
            json={
                "board_id": s.board.id,
                "period_start": "2026-09-01",
                "period_end": "2026-10-01",
                "consumer_ids": [s.consumer.id],
            }
        ),
    ),
    # states and boards
    ("GET", "/api/v1/states"): E(P.BOARD_READ),
    ("POST", "/api/v1/states"): E(
        P.STATE_MANAGE,
        build=lambda w, s: Req(json={"code": letters(3), "name": "New state"}),
        ok=201,
    ),
    ("GET", "/api/v1/states/{state_id}"): E(
        P.BOARD_READ, "state", "state", by_id("state"), STATE_SITES
    ),
    ("PATCH", "/api/v1/states/{state_id}"): E(
        P.STATE_MANAGE, "state", "state", by_id("state", json={"name": "Renamed"}), STATE_SITES
    ),
    ("DELETE", "/api/v1/states/{state_id}"): E(
        P.STATE_MANAGE, "state", "state_spare", by_id("state_spare", "state_id"), STATE_SITES
    ),
    ("GET", "/api/v1/boards"): E(
        P.BOARD_READ,
        "state",
        "state",
        lambda w, s: Req(query={"state_id": s.state.id}),
        STATE_SITES,
    ),
    ("POST", "/api/v1/boards"): E(
        P.BOARD_MANAGE,
        "state",
        "state",
        lambda w, s: Req(
            json={"state_id": s.state.id, "code": f"N-{letters(6)}", "name": "New board"}
        ),
        STATE_SITES,
        ok=201,
    ),
    ("GET", "/api/v1/boards/{board_id}"): E(P.BOARD_READ, "board", "board", by_id("board")),
    ("PATCH", "/api/v1/boards/{board_id}"): E(
        P.BOARD_MANAGE, "board", "board", by_id("board", json={"capacity_kw": "5000"})
    ),
    ("DELETE", "/api/v1/boards/{board_id}"): E(
        P.BOARD_MANAGE, "board", "board_empty", by_id("board_empty", "board_id")
    ),
    ("GET", "/api/v1/boards/{board_id}/billing-cycle"): E(
        P.BILLING_READ, "board", "board", by_id("board")
    ),
    ("PUT", "/api/v1/boards/{board_id}/billing-cycle"): E(
        P.BILLING_GENERATE,
        "board",
        "board",
        lambda w, s: Req(
            path={"board_id": s.board.id},
            json={"cycle_day": 5, "cycle": "bimonthly", "auto_issue": False, "enabled": False},
        ),
    ),
    ("GET", "/api/v1/boards/{board_id}/holidays"): E(
        P.BILLING_READ, "board", "board", by_id("board")
    ),
    ("PUT", "/api/v1/boards/{board_id}/holidays/{day}"): E(
        P.TARIFF_MANAGE,
        "board",
        "board",
        lambda w, s: Req(
            path={"board_id": s.board.id, "day": "2026-08-15"}, json={"name": "Independence Day"}
        ),
        ok=204,
    ),
    ("DELETE", "/api/v1/boards/{board_id}/holidays/{day}"): E(
        P.TARIFF_MANAGE,
        "board",
        "board",
        lambda w, s: Req(path={"board_id": s.board.id, "day": "2026-01-26"}),
        ok=204,
    ),
    ("GET", "/api/v1/boards/{board_id}/readings"): E(
        P.READING_READ, "board", "board", by_id("board", query=READINGS)
    ),
    ("GET", "/api/v1/boards/{board_id}/retention"): E(
        P.BOARD_READ, "board", "board", by_id("board")
    ),
    ("PATCH", "/api/v1/boards/{board_id}/retention"): E(
        P.BOARD_MANAGE, "board", "board", by_id("board", json={"alerts_days": 400})
    ),
    ("GET", "/api/v1/states/{state_id}/retention"): E(
        P.BOARD_READ, "state", "state", by_id("state"), STATE_SITES
    ),
    ("PATCH", "/api/v1/states/{state_id}/retention"): E(
        P.BOARD_MANAGE, "state", "state", by_id("state", json={"alerts_days": 500}), STATE_SITES
    ),
    ("POST", "/api/v1/retention/run"): E(P.JOBS_RUN),
    # consumers
    ("GET", "/api/v1/consumers"): E(
        P.CONSUMER_READ, "board", "board", lambda w, s: Req(query={"board_id": s.board.id})
    ),
    ("POST", "/api/v1/consumers"): E(
        P.CONSUMER_CREATE,
        "board",
        "board",
        lambda w, s: Req(
            json={"board_id": s.board.id, "account_no": unique("NEW"), "name": "New consumer"}
        ),
        ok=201,
    ),
    ("GET", "/api/v1/consumers/{consumer_id}"): E(
        P.CONSUMER_READ, "consumer", "consumer", by_id("consumer"), CONSUMER_SITES
    ),
    ("PATCH", "/api/v1/consumers/{consumer_id}"): E(
        P.CONSUMER_UPDATE,
        "consumer",
        "consumer",
        by_id("consumer", json={"name": "Renamed"}),
        CONSUMER_SITES,
    ),
    ("DELETE", "/api/v1/consumers/{consumer_id}"): E(
        P.CONSUMER_DELETE, "consumer", "consumer_spare", by_id("consumer_spare", "consumer_id")
    ),
    ("GET", "/api/v1/consumers/{consumer_id}/estimate"): E(
        P.BILLING_READ, "consumer", "consumer", by_id("consumer"), CONSUMER_SITES
    ),
    ("GET", "/api/v1/consumers/{consumer_id}/forecast"): E(
        P.BILLING_READ, "consumer", "consumer", by_id("consumer"), CONSUMER_SITES
    ),
    ("GET", "/api/v1/consumers/{consumer_id}/recommendations"): E(
        P.BILLING_READ, "consumer", "consumer", by_id("consumer"), CONSUMER_SITES
    ),
    ("POST", "/api/v1/consumers/{consumer_id}/recommendations/generate"): E(
        P.RECOMMENDATION_GENERATE,
        "consumer",
        "consumer",
        by_id("consumer", json={}),
        CONSUMER_SITES,
    ),
    ("GET", "/api/v1/recommendations/{recommendation_id}"): E(
        P.BILLING_READ, "recommendation", "recommendation", by_id("recommendation"), CONSUMER_SITES
    ),
    ("PATCH", "/api/v1/recommendations/{recommendation_id}"): E(
        P.RECOMMENDATION_RESPOND,
        "recommendation",
        "recommendation_answer",
        by_id("recommendation_answer", "recommendation_id", json={"status": "done"}),
        CONSUMER_SITES,
    ),
    ("GET", "/api/v1/consumers/{consumer_id}/payments"): E(
        P.BILLING_READ, "consumer", "consumer", by_id("consumer"), CONSUMER_SITES
    ),
    # gateways and ingest
    ("GET", "/api/v1/gateways"): E(
        P.GATEWAY_READ, "board", "board", lambda w, s: Req(query={"board_id": s.board.id})
    ),
    ("POST", "/api/v1/gateways/enroll"): E(PUBLIC),
    ("POST", "/api/v1/gateways/enrollment-tokens"): E(
        P.GATEWAY_ENROLL,
        "board",
        "board",
        lambda w, s: Req(json={"board_id": s.board.id, "ttl_s": 600, "gateway_id": s.gateway.id}),
        ok=201,
    ),
    ("GET", "/api/v1/gateways/{gateway_id}"): E(
        P.GATEWAY_READ, "gateway", "gateway", by_id("gateway")
    ),
    ("POST", "/api/v1/gateways/{gateway_id}/revoke"): E(
        P.GATEWAY_REVOKE, "gateway", "gateway_revoke", by_id("gateway_revoke", "gateway_id")
    ),
    ("POST", "/api/v1/ingest/batches"): E(PUBLIC),
    # payments a provider reports (their own tests: test_payments)
    ("POST", "/api/v1/payments/webhook"): E(PUBLIC),
    ("GET", "/api/v1/payments/unmatched"): E(
        P.BILLING_COLLECT, "board", "board", lambda w, s: Req(query={"board_id": s.board.id})
    ),
    # invoices
    ("GET", "/api/v1/invoices"): E(
        P.BILLING_READ,
        "consumer",
        "consumer",
        lambda w, s: Req(query={"consumer_id": s.consumer.id, "status": "issued"}),
        CONSUMER_SITES,
    ),
    ("GET", "/api/v1/invoices/{invoice_id}"): E(
        P.BILLING_READ,
        "invoice",
        "invoice_draft",
        by_id("invoice_draft", "invoice_id"),
        CONSUMER_SITES,
    ),
    ("GET", "/api/v1/invoices/{invoice_id}/pdf"): E(
        P.BILLING_READ,
        "invoice",
        "invoice_pay",
        by_id("invoice_pay", "invoice_id"),
        CONSUMER_SITES,
    ),
    ("GET", "/api/v1/invoices/{invoice_id}/export.csv"): E(
        P.BILLING_READ,
        "invoice",
        "invoice_pay",
        by_id("invoice_pay", "invoice_id"),
        CONSUMER_SITES,
    ),
    ("POST", "/api/v1/invoices/{invoice_id}/issue"): E(
        P.BILLING_GENERATE,
        "invoice",
        "invoice_draft",
        by_id("invoice_draft", "invoice_id"),
        CONSUMER_SITES,
    ),
    ("POST", "/api/v1/invoices/{invoice_id}/cancel"): E(
        P.BILLING_RECALCULATE,
        "invoice",
        "invoice_cancel",
        by_id("invoice_cancel", "invoice_id"),
        CONSUMER_SITES,
    ),
    ("POST", "/api/v1/invoices/{invoice_id}/payments"): E(
        P.BILLING_COLLECT,
        "invoice",
        "invoice_pay",
        by_id("invoice_pay", "invoice_id", json={"amount": "10.00", "reference": "UPI-1"}),
        CONSUMER_SITES,
        ok=201,
    ),
    ("POST", "/api/v1/invoices/{invoice_id}/disputes"): E(
        P.BILLING_DISPUTE,
        "invoice",
        "invoice_dispute",
        by_id("invoice_dispute", "invoice_id", json={"reason": "The reading looks wrong"}),
        CONSUMER_SITES,
        ok=201,
    ),
    ("POST", "/api/v1/invoices/{invoice_id}/disputes/resolve"): E(
        P.BILLING_RECALCULATE,
        "invoice",
        "invoice_disputed",
        by_id("invoice_disputed", "invoice_id", json={"upheld": False, "resolution": "Checked"}),
        CONSUMER_SITES,
    ),
    # meters
    ("GET", "/api/v1/meters"): E(
        P.METER_READ,
        "consumer",
        "consumer",
        lambda w, s: Req(query={"consumer_id": s.consumer.id}),
        CONSUMER_SITES,
    ),
    ("POST", "/api/v1/meters"): E(
        P.METER_CREATE,
        "board",
        "board",
        lambda w, s: Req(json={"board_id": s.board.id, "external_id": unique("new"), "phases": 3}),
        ok=201,
    ),
    ("GET", "/api/v1/meters/{meter_id}"): E(
        P.METER_READ, "meter", "meter", by_id("meter"), CONSUMER_SITES
    ),
    ("PATCH", "/api/v1/meters/{meter_id}"): E(
        P.METER_UPDATE,
        "meter",
        "meter",
        by_id("meter", json={"ct_ratio": "40"}),
        CONSUMER_SITES,
    ),
    ("DELETE", "/api/v1/meters/{meter_id}"): E(
        P.METER_DELETE, "meter", "meter_spare", by_id("meter_spare", "meter_id")
    ),
    ("POST", "/api/v1/meters/{meter_id}/assign"): E(
        P.METER_ASSIGN,
        "meter",
        "meter_free",
        lambda w, s: Req(
            path={"meter_id": s.meter_free.id},
            json={"consumer_id": s.consumer.id, "gateway_id": s.gateway.id},
        ),
    ),
    ("POST", "/api/v1/meters/{meter_id}/status"): E(
        P.METER_UPDATE,
        "meter",
        "meter_status",
        lambda w, s: Req(
            path={"meter_id": s.meter_status.id},
            json={"status": "under_maintenance", "reason": unique("CT check")},
        ),
    ),
    ("POST", "/api/v1/meters/{meter_id}/confirm"): E(
        P.METER_ASSIGN, "meter", "meter_discovered", by_id("meter_discovered", "meter_id")
    ),
    ("POST", "/api/v1/meters/{meter_id}/replace"): E(
        P.METER_ASSIGN,
        "meter",
        "meter_replace",
        lambda w, s: Req(
            path={"meter_id": s.meter_replace.id},
            json={"external_id": unique("repl"), "replaced_at": "2026-11-01T00:00:00Z"},
        ),
        ok=201,
    ),
    ("GET", "/api/v1/meters/{meter_id}/history"): E(
        P.METER_READ, "meter", "meter", by_id("meter"), CONSUMER_SITES
    ),
    ("GET", "/api/v1/meters/{meter_id}/readings"): E(
        P.READING_READ, "meter", "meter", by_id("meter", query=READINGS), CONSUMER_SITES
    ),
    # reports
    ("GET", "/api/v1/reports"): E(
        P.REPORT_READ, "board", "board", lambda w, s: Req(query={"board_id": s.board.id})
    ),
    ("POST", "/api/v1/reports"): E(
        P.REPORT_GENERATE,
        "board",
        "board",
        lambda w, s: Req(
            json={
                "kind": "alerts",
                "format": "csv",
                "board_id": s.board.id,
                "period_start": "2026-10-01",
                "period_end": "2026-10-02",
            }
        ),
        ok=202,
    ),
    ("GET", "/api/v1/reports/{report_id}"): E(P.REPORT_READ, "report", "report", by_id("report")),
    ("GET", "/api/v1/reports/{report_id}/download"): E(
        P.REPORT_READ, "report", "report", by_id("report")
    ),
    ("DELETE", "/api/v1/reports/{report_id}"): E(
        P.REPORT_GENERATE, "report", "report_delete", by_id("report_delete", "report_id"), ok=204
    ),
    # report formats and schedules (their own tests: test_report_formats, test_report_schedules)
    ("GET", "/api/v1/report-columns"): E(P.REPORT_READ),
    ("GET", "/api/v1/boards/{board_id}/report-formats"): E(
        P.REPORT_READ, "board", "board", by_id("board")
    ),
    ("POST", "/api/v1/boards/{board_id}/report-formats"): E(
        P.REPORT_GENERATE,
        "board",
        "board",
        lambda w, s: Req(
            path={"board_id": s.board.id},
            json={**REPORT_FORMAT, "name": unique("matrix format")},
        ),
        ok=201,
    ),
    ("GET", "/api/v1/report-formats/{format_id}"): E(
        P.REPORT_READ, "report_format", "report_format", by_id("report_format", "format_id")
    ),
    ("PUT", "/api/v1/report-formats/{format_id}"): E(
        P.REPORT_GENERATE,
        "report_format",
        "report_format",
        by_id("report_format", "format_id", json={**REPORT_FORMAT, "name": "Matrix put"}),
    ),
    ("DELETE", "/api/v1/report-formats/{format_id}"): E(
        P.REPORT_GENERATE,
        "report_format",
        "report_format_delete",
        by_id("report_format_delete", "format_id"),
        ok=204,
    ),
    ("GET", "/api/v1/boards/{board_id}/report-schedules"): E(
        P.REPORT_READ, "board", "board", by_id("board")
    ),
    ("POST", "/api/v1/boards/{board_id}/report-schedules"): E(
        P.REPORT_GENERATE,
        "board",
        "board",
        lambda w, s: Req(
            path={"board_id": s.board.id},
            json={**REPORT_SCHEDULE, "name": unique("matrix"), "user_ids": [s.user.id]},
        ),
        ok=201,
    ),
    ("GET", "/api/v1/report-schedules/{schedule_id}"): E(
        P.REPORT_READ,
        "report_schedule",
        "report_schedule",
        by_id("report_schedule", "schedule_id"),
    ),
    ("PUT", "/api/v1/report-schedules/{schedule_id}"): E(
        P.REPORT_GENERATE,
        "report_schedule",
        "report_schedule",
        lambda w, s: Req(
            path={"schedule_id": s.report_schedule.id},
            json={**REPORT_SCHEDULE, "name": "Matrix put", "user_ids": [s.user.id]},
        ),
    ),
    ("DELETE", "/api/v1/report-schedules/{schedule_id}"): E(
        P.REPORT_GENERATE,
        "report_schedule",
        "report_schedule_delete",
        by_id("report_schedule_delete", "schedule_id"),
        ok=204,
    ),
    ("GET", "/api/v1/report-links/{token}"): E(PUBLIC),
    # tariffs
    ("GET", "/api/v1/tariffs"): E(
        P.BILLING_READ, "board", "board", lambda w, s: Req(query={"board_id": s.board.id})
    ),
    ("POST", "/api/v1/tariffs"): E(
        P.TARIFF_MANAGE,
        "board",
        "board",
        lambda w, s: Req(
            json={"board_id": s.board.id, "category": "commercial", "name": "Commercial"}
        ),
        ok=201,
    ),
    ("GET", "/api/v1/tariffs/{tariff_id}"): E(P.BILLING_READ, "tariff", "tariff", by_id("tariff")),
    ("POST", "/api/v1/tariffs/{tariff_id}/versions"): E(
        P.TARIFF_MANAGE,
        "tariff",
        "tariff",
        by_id(
            "tariff",
            json={
                "effective_from": "2021-01-01",
                "effective_to": "2022-01-01",
                "spec": FLAT_TARIFF,
            },
        ),
        ok=201,
    ),
    ("POST", "/api/v1/tariffs/{tariff_id}/versions/urdb"): E(
        P.TARIFF_MANAGE,
        "tariff",
        "tariff",
        lambda w, s: Req(
            path={"tariff_id": s.tariff.id},
            json={
                "effective_from": "2022-01-01",
                "effective_to": "2023-01-01",
                "urdb": urdb_version(),
            },
        ),
        ok=201,
    ),
    ("PATCH", "/api/v1/tariffs/{tariff_id}/versions/{version_id}"): E(
        P.TARIFF_MANAGE,
        "tariff",
        "version",
        lambda w, s: Req(
            path={"tariff_id": s.tariff.id, "version_id": s.version.id},
            json={"effective_to": "2020-12-31"},
        ),
    ),
    ("GET", "/api/v1/tariffs/{tariff_id}/versions/{version_id}/urdb"): E(
        P.BILLING_READ,
        "tariff",
        "version",
        lambda w, s: Req(path={"tariff_id": s.tariff.id, "version_id": s.version.id}),
    ),
    # temporary tariff overrides
    ("POST", "/api/v1/boards/{board_id}/tariff-overrides"): E(
        P.TARIFF_MANAGE,
        "board",
        "board",
        by_id(
            "board",
            json={
                "category": "domestic",
                "kind": "energy_rate",
                "value": "2.50",
                "starts_on": "2027-03-01",
                "ends_on": "2027-03-10",
                "reason": "matrix",
            },
        ),
        ok=201,
    ),
    ("GET", "/api/v1/boards/{board_id}/tariff-overrides"): E(
        P.BILLING_READ, "board", "board", by_id("board")
    ),
    ("DELETE", "/api/v1/tariff-overrides/{override_id}"): E(
        P.TARIFF_MANAGE,
        "tariff_override",
        "tariff_override",
        lambda w, s: Req(path={"override_id": s.tariff_override.id}),
    ),
    # users
    ("GET", "/api/v1/users"): E(
        P.USER_READ, "board", "board", lambda w, s: Req(query={"board_id": s.board.id})
    ),
    ("POST", "/api/v1/users"): E(
        P.USER_MANAGE,
        "board",
        "board",
        lambda w, s: Req(
            json={
                "email": f"{unique('new')}@example.in",
                "name": "Nikhil Rao",
                "role": "TECHNICIAN",
                "board_id": s.board.id,
            }
        ),
        ok=201,
    ),
    ("GET", "/api/v1/users/{user_id}"): E(P.USER_READ, "user", "user", by_id("user")),
    ("PATCH", "/api/v1/users/{user_id}"): E(
        P.USER_MANAGE,
        "user",
        "user_patch",
        by_id("user_patch", "user_id", json={"role": "SUPPORT_AGENT"}),
    ),
    ("DELETE", "/api/v1/users/{user_id}"): E(
        P.USER_MANAGE, "user", "user_delete", by_id("user_delete", "user_id")
    ),
    # an invitation again for a user who chose a password already: 409 in scope
    ("POST", "/api/v1/users/{user_id}/invitation"): E(
        P.USER_MANAGE, "user", "user_patch", by_id("user_patch", "user_id"), ok=409
    ),
    ("POST", "/api/v1/users/{user_id}/password-reset"): E(
        P.USER_MANAGE, "user", "user_patch", by_id("user_patch", "user_id"), ok=202
    ),
    # accounts run by their owners (their own tests: test_accounts)
    ("POST", "/api/v1/auth/signup"): E(PUBLIC),
    ("POST", "/api/v1/auth/signup/complete"): E(PUBLIC),
    ("POST", "/api/v1/auth/password/forgot"): E(PUBLIC),
    ("POST", "/api/v1/auth/password/reset"): E(PUBLIC),
    ("POST", "/api/v1/auth/invitation/accept"): E(PUBLIC),
    ("POST", "/api/v1/users/me/email/confirm"): E(PUBLIC),
    ("GET", "/api/v1/users/me"): E(SIGNED_IN),
    ("PATCH", "/api/v1/users/me"): E(
        SIGNED_IN, build=lambda w, s: Req(json={"language": "en"}), in_person=True
    ),
    ("GET", "/api/v1/notifications"): E(SIGNED_IN),
    ("GET", "/api/v1/notifications/stream"): E(SIGNED_IN),
    ("POST", "/api/v1/notifications/read-all"): E(SIGNED_IN),
    ("POST", "/api/v1/notifications/{notification_id}/read"): E(
        SIGNED_IN, "notification", "notification", by_id("notification")
    ),
    ("DELETE", "/api/v1/notifications/{notification_id}"): E(
        SIGNED_IN,
        "notification",
        "notification_delete",
        by_id("notification_delete", "notification_id"),
        ok=204,
    ),
    ("GET", "/api/v1/users/me/consents"): E(SIGNED_IN),
    ("POST", "/api/v1/users/me/consents"): E(
        SIGNED_IN,
        build=lambda w, s: Req(json={"kind": "energy_tracking", "granted": True}),
        in_person=True,
    ),
    ("GET", "/api/v1/users/me/preferences"): E(SIGNED_IN),
    ("PUT", "/api/v1/users/me/preferences"): E(
        SIGNED_IN, build=lambda w, s: Req(json={"channels": ["email"]}), in_person=True
    ),
    # a real change would end the caller's own sessions mid-run: a refused one proves the rest
    ("POST", "/api/v1/users/me/password"): E(
        SIGNED_IN,
        build=lambda w, s: Req(json={"current_password": "x", "new_password": ""}),
        ok=422,
        in_person=True,
    ),
    ("GET", "/health"): E(PUBLIC),
    # the console's figures
    ("GET", "/api/v1/analytics/overview"): E(
        P.BOARD_READ, "board", "board", lambda w, s: Req(query={"board_id": s.board.id})
    ),
    ("GET", "/api/v1/analytics/boards"): E(P.BOARD_READ),
    ("GET", "/api/v1/analytics/load"): E(
        P.READING_READ,
        "board",
        "board",
        lambda w, s: Req(
            query={
                "board_id": s.board.id,
                "from": "2026-10-01T00:00Z",
                "to": "2026-10-08T00:00Z",
                "interval": "hour",
            }
        ),
    ),
    ("GET", "/api/v1/analytics/consumption"): E(
        P.READING_READ,
        "board",
        "board",
        lambda w, s: Req(
            query={
                "board_id": s.board.id,
                "from": "2026-10-01",
                "to": "2026-11-01",
                "group_by": "category",
            }
        ),
    ),
    ("GET", "/api/v1/analytics/profile"): E(
        P.READING_READ,
        "board",
        "board",
        lambda w, s: Req(query={"board_id": s.board.id, "from": "2026-10-01", "to": "2026-11-01"}),
    ),
    ("GET", "/api/v1/consumers/{consumer_id}/usage"): E(
        P.READING_READ, "consumer", "consumer", by_id("consumer"), CONSUMER_SITES
    ),
    ("GET", "/api/v1/consumers/{consumer_id}/energy-balance"): E(
        P.READING_READ,
        "consumer",
        "consumer",
        by_id("consumer", query={"from": "2026-10-01", "to": "2026-10-08"}),
        CONSUMER_SITES,
    ),
    ("GET", "/api/v1/consumers/{consumer_id}/tariff"): E(
        P.BILLING_READ, "consumer", "consumer", by_id("consumer"), CONSUMER_SITES
    ),
    ("GET", "/api/v1/meters/{meter_id}/latest"): E(
        P.READING_READ, "meter", "meter", by_id("meter"), CONSUMER_SITES
    ),
    ("GET", "/api/v1/billing/runs"): E(
        P.BILLING_READ, "board", "board", lambda w, s: Req(query={"board_id": s.board.id})
    ),
    ("GET", "/api/v1/billing/runs/{run_id}"): E(
        P.BILLING_READ, "billing_run", "billing_run", by_id("billing_run", "run_id")
    ),
    ("GET", "/api/v1/billing/aging"): E(
        P.BILLING_READ, "board", "board", lambda w, s: Req(query={"board_id": s.board.id})
    ),
    # commands to gateways
    ("POST", "/api/v1/gateways/{gateway_id}/commands"): E(
        P.GATEWAY_COMMAND,
        "gateway",
        "gateway",
        by_id("gateway", json={"kind": "doctor", "reason": "matrix"}),
        ok=201,
    ),
    ("GET", "/api/v1/gateways/{gateway_id}/commands"): E(
        P.GATEWAY_READ, "gateway", "gateway", by_id("gateway")
    ),
    ("GET", "/api/v1/gateway-commands/{command_id}"): E(
        P.GATEWAY_READ, "gateway_command", "command", by_id("command", "command_id")
    ),
    ("POST", "/api/v1/gateway-commands/{command_id}/cancel"): E(
        P.GATEWAY_COMMAND,
        "gateway_command",
        "command_cancel",
        by_id("command_cancel", "command_id"),
    ),
    ("POST", "/api/v1/meters/{meter_id}/supply"): E(
        P.METER_DISCONNECT,
        "meter",
        "meter",
        by_id("meter", json={"action": "reconnect", "reason": "matrix check"}),
        CONSUMER_SITES,
        ok=201,
    ),
    ("POST", "/api/v1/control/exchange"): E(PUBLIC),
    ("GET", "/api/v1/control/cloud-key"): E(PUBLIC),
    # gateways' settings, and the meters their scans found
    ("GET", "/api/v1/gateways/{gateway_id}/config"): E(
        P.GATEWAY_READ, "gateway", "gateway", by_id("gateway")
    ),
    ("PUT", "/api/v1/gateways/{gateway_id}/config"): E(
        P.GATEWAY_CONFIGURE,
        "gateway",
        "gateway",
        # settings never sent before, so every allowed call makes a version
        lambda w, s: Req(
            path={"gateway_id": s.gateway.id},
            json={"settings": {"checks": {"min_samples": uuid.uuid4().int % 10**9 + 1}}},
        ),
        ok=201,
    ),
    ("GET", "/api/v1/gateways/{gateway_id}/discoveries"): E(
        P.GATEWAY_READ, "gateway", "gateway", by_id("gateway")
    ),
    # the found meter was given to a consumer already: 409 for whoever may reach it
    ("POST", "/api/v1/gateway-discoveries/{discovery_id}/assign"): E(
        P.GATEWAY_CONFIGURE,
        "gateway_discovery",
        "discovery",
        lambda w, s: Req(
            path={"discovery_id": s.discovery.id}, json={"consumer_id": s.consumer.id}
        ),
        ok=409,
    ),
    ("POST", "/api/v1/control/discoveries"): E(PUBLIC),
    # software updates: releases belong to no tenant; targets to a board or a gateway
    ("GET", "/api/v1/software/releases"): E(P.GATEWAY_UPDATE),
    ("POST", "/api/v1/software/releases"): E(
        P.GATEWAY_UPDATE,
        build=lambda w, s: Req(json={"version": f"0.0.{uuid.uuid4().int % 10**9}"}),
        ok=201,
    ),
    ("POST", "/api/v1/software/wheels"): E(
        P.GATEWAY_UPDATE,
        build=lambda w, s: Req(
            query={"filename": f"gridgate-0.1.{uuid.uuid4().int % 10**9}-py3-none-any.whl"},
            content=b"PK\x03\x04 a wheel for the matrix",
        ),
        ok=201,
    ),
    ("GET", "/api/v1/boards/{board_id}/software"): E(
        P.GATEWAY_READ, "board", "board", by_id("board")
    ),
    ("PUT", "/api/v1/boards/{board_id}/software"): E(
        P.GATEWAY_UPDATE,
        "board",
        "board",
        by_id("board", json={"version": MATRIX_RELEASE, "percent": 10}),
    ),
    ("DELETE", "/api/v1/boards/{board_id}/software"): E(
        P.GATEWAY_UPDATE, "board", "board", by_id("board")
    ),
    ("GET", "/api/v1/gateways/{gateway_id}/software"): E(
        P.GATEWAY_READ, "gateway", "gateway", by_id("gateway")
    ),
    ("PUT", "/api/v1/gateways/{gateway_id}/software"): E(
        P.GATEWAY_UPDATE,
        "gateway",
        "gateway",
        by_id("gateway", json={"version": MATRIX_RELEASE}),
    ),
    ("POST", "/api/v1/control/software/wheel"): E(PUBLIC),
    ("POST", "/api/v1/control/software/report"): E(PUBLIC),
    # the support desk
    ("POST", "/api/v1/support/queries"): E(
        P.QUERY_OPEN,
        "meter",
        "meter",
        lambda w, s: Req(json={"text": "My meter display is blank", "meter_id": s.meter.id}),
        CONSUMER_SITES,
        ok=201,
    ),
    ("GET", "/api/v1/support/queries"): E(
        P.QUERY_READ,
        "consumer",
        "consumer",
        lambda w, s: Req(query={"consumer_id": s.consumer.id}),
        CONSUMER_SITES,
    ),
    ("GET", "/api/v1/support/pending"): E(
        P.QUERY_MANAGE, "board", "board", lambda w, s: Req(query={"board_id": s.board.id})
    ),
    ("GET", "/api/v1/support/queries/{query_id}"): E(
        P.QUERY_READ,
        "support_query",
        "support_query",
        by_id("support_query", "query_id"),
        CONSUMER_SITES,
    ),
    ("POST", "/api/v1/support/queries/{query_id}/messages"): E(
        P.QUERY_OPEN,
        "support_query",
        "query_reply",
        by_id("query_reply", "query_id", json={"body": "Any news?"}),
        CONSUMER_SITES,
    ),
    ("POST", "/api/v1/support/queries/{query_id}/answers"): E(
        P.QUERY_MANAGE,
        "support_query",
        "query_answer",
        by_id("query_answer", "query_id", json={"body": "We are on it."}),
        CONSUMER_SITES,
    ),
    ("POST", "/api/v1/support/queries/{query_id}/escalate"): E(
        P.QUERY_OPEN,
        "support_query",
        "query_escalate",
        by_id("query_escalate", "query_id"),
        CONSUMER_SITES,
    ),
    ("PATCH", "/api/v1/support/queries/{query_id}"): E(
        P.QUERY_MANAGE,
        "support_query",
        "query_patch",
        by_id("query_patch", "query_id", json={"priority": "high"}),
        CONSUMER_SITES,
    ),
    ("DELETE", "/api/v1/support/queries/{query_id}"): E(
        P.QUERY_DELETE,
        "support_query",
        "query_delete",
        by_id("query_delete", "query_id"),
        CONSUMER_SITES,
        ok=204,
    ),
    ("POST", "/api/v1/support/queries/{query_id}/classify"): E(
        P.QUERY_MANAGE,
        "support_query",
        "query_classify",
        by_id("query_classify", "query_id"),
        CONSUMER_SITES,
    ),
    ("POST", "/api/v1/support/queries/{query_id}/draft"): E(
        P.QUERY_MANAGE,
        "support_query",
        "query_draft",
        by_id("query_draft", "query_id"),
        CONSUMER_SITES,
    ),
    ("POST", "/api/v1/support/queries/{query_id}/draft/send"): E(
        P.QUERY_MANAGE,
        "support_query",
        "query_send",
        by_id("query_send", "query_id", json={}),
        CONSUMER_SITES,
    ),
    # broadcasts, and what became of the messages sent to a consumer
    ("POST", "/api/v1/broadcasts"): E(
        P.NOTIFICATION_BROADCAST,
        "board",
        "board",
        lambda w, s: Req(
            json={
                "board_id": s.board.id,
                "audience": "consumers",
                "title": "Planned outage",
                "body": "Supply is off on Sunday from 10:00 to 12:00.",
            }
        ),
        ok=201,
    ),
    ("GET", "/api/v1/broadcasts"): E(
        P.NOTIFICATION_BROADCAST,
        "board",
        "board",
        lambda w, s: Req(query={"board_id": s.board.id}),
    ),
    ("GET", "/api/v1/consumers/{consumer_id}/notifications"): E(
        P.NOTIFICATION_MANAGE, "consumer", "consumer", by_id("consumer"), CONSUMER_SITES
    ),
    ("POST", "/api/v1/invoices/issue"): E(
        P.BILLING_GENERATE,
        "invoice",
        "invoice_bulk",
        lambda w, s: Req(json={"invoice_ids": [s.invoice_bulk.id]}),
        CONSUMER_SITES,
    ),
}

# what an anonymous request to each public route gets (its behaviour is tested elsewhere)
PUBLIC_CALLS: dict[tuple[str, str], tuple[Req, int]] = {
    ("POST", "/api/v1/auth/login"): (Req(json={"email": "x@y.in", "password": "wrong"}), 401),
    ("POST", "/api/v1/auth/logout"): (Req(json={"refresh_token": "x" * 32}), 204),
    ("POST", "/api/v1/auth/refresh"): (Req(json={"refresh_token": "x" * 32}), 401),
    ("POST", "/api/v1/gateways/enroll"): (
        Req(json={"token": "x" * 32, "gateway_id": "gw-x", "public_key": "A" * 43 + "="}),
        401,
    ),
    ("POST", "/api/v1/ingest/batches"): (Req(json={}), 401),
    # the served app has no webhook secret: the webhook says it is not set up
    ("POST", "/api/v1/payments/webhook"): (Req(json={}), 503),
    ("GET", "/health"): (Req(), 200),
    ("POST", "/api/v1/control/exchange"): (Req(json={}), 401),
    ("GET", "/api/v1/control/cloud-key"): (Req(), 200),
    ("POST", "/api/v1/control/discoveries"): (Req(json={}), 401),
    ("POST", "/api/v1/control/software/wheel"): (Req(json={}), 401),
    ("POST", "/api/v1/control/software/report"): (Req(json={}), 401),
    ("POST", "/api/v1/auth/signup"): (Req(json={"account_no": "A-1", "email": "x@y.in"}), 202),
    ("POST", "/api/v1/auth/signup/complete"): (
        Req(json={"account_no": "A-1", "email": "x@y.in", "code": "123456", "password": "p"}),
        422,
    ),
    ("POST", "/api/v1/auth/password/forgot"): (Req(json={"email": "x@y.in"}), 202),
    ("POST", "/api/v1/auth/password/reset"): (Req(json={"token": "x" * 43, "password": "p"}), 422),
    ("POST", "/api/v1/auth/invitation/accept"): (
        Req(json={"token": "x" * 43, "password": "p"}),
        422,
    ),
    ("POST", "/api/v1/users/me/email/confirm"): (Req(json={"token": "x" * 43}), 422),
    ("GET", "/api/v1/report-links/{token}"): (Req(path={"token": "x" * 43}), 404),
}


def reaches(role: str, actor: Obj, entity: str, obj: Obj, world: World) -> bool:
    """The scope rule, from the roles' definitions: a super admin reaches everything; a state
    admin what lies in its state; the board roles what lies on their board (and read their
    state); a consumer its own consumer record, meters, issued bills and their alerts, its own
    account, its state, and its board's tariff for its category (with its overrides)."""
    if entity in ("api_key", "notification"):  # its owner's alone, whatever the role
        return obj.extra["owner"] == actor.id
    if role == "SUPER_ADMIN":
        return True
    own_state = world.states["S1"]
    if entity == "state":
        return obj.state == own_state
    if role == "CONSUMER":
        if entity == "user":
            return obj.id == actor.id
        if entity == "invoice" and obj.extra.get("status") == "draft":
            return False  # a consumer's bills are theirs once issued
        if entity in ("tariff", "tariff_override"):  # their board's, for their category
            return obj.board == world.boards["A"]  # (every tariff of the world is domestic)
        return (
            entity in ("consumer", "meter", "invoice", "alert", "support_query", "recommendation")
            and obj.consumer == actor.consumer
        )
    if role == "STATE_ADMIN":
        return obj.state == own_state
    return obj.board == world.boards["A"]


def expected(
    role: str,
    world: World,
    expect: Expect,
    site: Site,
    template: str = "",
    carried: frozenset[Permission] | None = None,
) -> int:
    """The answer for `role` (calling with a key that carries `carried`, when given)."""
    never_by_key = (
        template.startswith(KEYS) or expect.in_person or expect.permission == P.USER_MANAGE
    )
    if carried is not None and never_by_key:
        return 403  # keys manage neither keys, nor users, nor their owner's account
    if expect.permission != SIGNED_IN:
        if not allowed(role, expect.permission):
            return 403
        if carried is not None and expect.permission not in carried:
            return 403
    if expect.entity is None:
        return expect.ok
    visible = reaches(role, world.users[role], expect.entity, site.objects[expect.obj], world)
    return expect.ok if visible else 404


TABLES_BY_BOARD = (
    "consumers",
    "meters",
    "gateways",
    "invoices",
    "tariffs",
    "tariff_overrides",
    "alerts",
    "reports",
    "report_formats",
    "report_schedules",
    "holidays",
    "billing_cycles",
    "billing_cycle_runs",
    "retention_policies",
    "enrollment_tokens",
    "support_queries",
    "gateway_commands",
    "broadcasts",
    "gateway_configs",
    "gateway_discoveries",
    "recommendations",
)


async def digest(pool: AsyncConnectionPool, boards: list[int], consumers: list[int]) -> str:
    """A fingerprint of every row on `boards` or of `consumers` (and of their states when a
    whole state is outside), to prove no write landed there."""
    parts = []
    async with pool.connection() as conn:
        for table in TABLES_BY_BOARD:
            consumer_clause = (
                " OR t.consumer_id = ANY(%(c)s)"
                if table in ("meters", "invoices", "recommendations")
                else ""
            )
            if table == "consumers":
                consumer_clause = " OR t.id = ANY(%(c)s)"
            cursor = await conn.execute(
                f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS h"
                f" FROM {table} t WHERE t.board_id = ANY(%(b)s){consumer_clause}",
                {"b": boards, "c": consumers},
            )
            parts.append((await cursor.fetchone())["h"])
        for query in (
            "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS h FROM boards t"
            " WHERE t.id = ANY(%(b)s)",
            "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS h"
            " FROM tariff_versions t JOIN tariffs f ON f.id = t.tariff_id"
            " WHERE f.board_id = ANY(%(b)s)",
            "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS h"
            " FROM users t WHERE t.board_id = ANY(%(b)s) OR t.consumer_id = ANY(%(c)s)",
            "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS h"
            " FROM payments t JOIN invoices i ON i.id = t.invoice_id"
            " WHERE i.board_id = ANY(%(b)s) OR i.consumer_id = ANY(%(c)s)",
            "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS h"
            " FROM disputes t JOIN invoices i ON i.id = t.invoice_id"
            " WHERE i.board_id = ANY(%(b)s) OR i.consumer_id = ANY(%(c)s)",
        ):
            cursor = await conn.execute(query, {"b": boards, "c": consumers})
            parts.append((await cursor.fetchone())["h"])
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def outside(role: str, world: World) -> tuple[list[int], list[int]]:
    """(boards, consumers) whose rows the role may not change."""
    b = world.boards
    if role == "SUPER_ADMIN":
        return [], []
    if role == "STATE_ADMIN":
        return [b["C"], world.site("other_state").board_empty.id], []
    sibling = [world.site("sibling").consumer.id]
    boards = [b["B"], b["C"]] + [
        world.site(s).board_empty.id for s in ("other_board", "other_state")
    ]
    return boards, sibling if role == "CONSUMER" else []


async def last_audit_id(pool: AsyncConnectionPool) -> int:
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT coalesce(max(id), 0) AS n FROM audit_log")
        return (await cursor.fetchone())["n"]


def fill(template: str, path: dict[str, Any]) -> str:
    return template.format(**path)


async def send(client: httpx.AsyncClient, method: str, url: str, req: Req, headers: dict) -> int:
    if url.endswith(("/alerts/stream", "/notifications/stream")):
        async with client.stream("GET", url, headers=headers) as stream:
            return stream.status_code  # a stream never ends: its answer's status is enough
    response = await client.request(
        method, url, params=req.query or None, json=req.json, content=req.content, headers=headers
    )
    return response.status_code


COUNTS: dict[str, int] = {"requests": 0, "pairs": 0}


def carried_by(role: str, credential: str) -> frozenset[Permission] | None:
    """What a key of the role carries: everything a key may, or every other of those."""
    if credential == "session":
        return None
    grantable = sorted(ROLE_PERMISSIONS[role] - {P.USER_MANAGE})
    return frozenset(grantable if credential == "key" else grantable[::2])


async def add_keys(conn, world: World) -> None:
    """An API key on each board site: the actor's own on `own`, a user's of that board on the
    others (rows straight into the table: these are targets, never used to call)."""
    actor = next(iter(world.users.values()))
    for site_name in BOARD_SITES:
        site = world.site(site_name)
        owner = actor.id if site_name == "own" else site.user.id
        cursor = await conn.execute(
            "INSERT INTO api_keys (user_id, public_id, name, permissions, secret_hash, expires_at)"
            " VALUES (%s, %s, 'target', '{meter:read}', %s, now() + interval '1 day')"
            " RETURNING id",
            (owner, uuid.uuid4().hex[:16], hashlib.sha256(uuid.uuid4().bytes).digest()),
        )
        key_id = (await cursor.fetchone())["id"]
        site.objects["api_key"] = Obj(key_id, None, None, extra={"owner": owner})
    await conn.commit()


async def add_notifications(conn, world: World) -> None:
    """Two notifications on each board site, the actor's own on `own` and a user's of that board
    on the others: one to read, one to delete."""
    actor = next(iter(world.users.values()))
    for site_name in BOARD_SITES:
        site = world.site(site_name)
        owner = actor.id if site_name == "own" else site.user.id
        for name in ("notification", "notification_delete"):
            cursor = await conn.execute(
                "INSERT INTO notifications (user_id, kind, title, body, event_key)"
                " VALUES (%s, 'bill_issued', 'A bill', 'Your bill is ready.', %s) RETURNING id",
                (owner, uuid.uuid4().hex),
            )
            row = await cursor.fetchone()
            site.objects[name] = Obj(row["id"], None, None, extra={"owner": owner})
    await conn.commit()


async def credential_headers(
    client: httpx.AsyncClient, token: str, carried: frozenset[Permission] | None
) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if carried is None:
        return headers
    response = await client.post(
        KEYS,
        headers=headers,
        json={
            "name": "matrix caller",
            "permissions": sorted(p.value for p in carried),
            "expires_at": in_a_week(),
        },
    )
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['key']}"}


@pytest.mark.parametrize("credential", CREDENTIALS)
@pytest.mark.parametrize("role", list(ROLE_PERMISSIONS))
async def test_every_route_every_role_every_target(
    served_app: Served, role: str, credential: str
) -> None:
    async with served_app.pool.connection() as conn:
        world = await build_world(conn)
        email = await add_actor(conn, world, role)
        await add_keys(conn, world)
        await add_notifications(conn, world)
    storage = served_app.app.state.report_storage
    for site in world.sites.values():
        for name in ("report", "report_delete"):
            if name in site.objects:
                async with served_app.pool.connection() as conn:
                    cursor = await conn.execute(
                        "SELECT storage_key FROM reports WHERE id = %s", (site.objects[name].id,)
                    )
                    storage.put((await cursor.fetchone())["storage_key"], b"a,b\n1,2\n")
    login = await served_app.client.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert login.status_code == 200, login.text
    carried = carried_by(role, credential)
    headers = await credential_headers(served_app.client, login.json()["access_token"], carried)
    protected_boards, protected_consumers = outside(role, world)
    before = await digest(served_app.pool, protected_boards, protected_consumers)
    mismatches = []
    narrowed = 0  # requests the owner may make and this key may not
    for (method, template), expect in EXPECTATIONS.items():
        if expect.permission == PUBLIC:
            continue
        sites = expect.sites if expect.entity else ("own",)
        COUNTS["pairs"] += 1
        for site_name in sites:
            site = world.site(site_name)
            req = expect.build(world, site)
            want = expected(role, world, expect, site, template, carried)
            narrowed += want == 403 != expected(role, world, expect, site)
            audit_before = await last_audit_id(served_app.pool)
            got = await send(served_app.client, method, fill(template, req.path), req, headers)
            COUNTS["requests"] += 1
            if got != want:
                mismatches.append((method, template, site_name, want, got))
            if got >= 400 and await last_audit_id(served_app.pool) != audit_before:
                mismatches.append((method, template, site_name, "no audit row", "audited"))
    assert not mismatches, "\n".join(map(str, mismatches))
    if credential == "partial key":
        assert narrowed, "the partial key was refused nothing its owner may do"
    after = await digest(served_app.pool, protected_boards, protected_consumers)
    assert after == before, f"a write by {role} landed outside its scope"


async def test_public_routes_answer_without_a_token(served_app: Served) -> None:
    for (method, template), (req, status) in PUBLIC_CALLS.items():
        response = await served_app.client.request(method, fill(template, req.path), json=req.json)
        assert response.status_code == status, (method, template, response.text)


def _operations(app) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }


def test_every_route_has_an_entry(tmp_path: Path) -> None:
    app = create_app(CloudSettings(data_dir=tmp_path), "postgresql://unused")
    operations = _operations(app)
    assert operations - set(EXPECTATIONS) == set(), "routes without an entry in EXPECTATIONS"
    assert set(EXPECTATIONS) - operations == set(), "entries for routes that no longer exist"
    public = {key for key, expect in EXPECTATIONS.items() if expect.permission == PUBLIC}
    assert public == set(PUBLIC_CALLS)
    for key, expect in EXPECTATIONS.items():
        if expect.permission not in (PUBLIC, SIGNED_IN):
            assert isinstance(expect.permission, Permission), key


def _int_ids(route: APIRoute) -> set[str]:
    """Parameters and body fields that carry integer ids (`*_id`, `*_ids`)."""
    found = set()
    hints = typing.get_type_hints(route.endpoint, include_extras=True)
    for name, hint in hints.items():
        if name.endswith(("_id", "_ids")) and "int" in str(hint):
            found.add(name)
        base = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
        fields = getattr(base, "model_fields", {})
        for field_name, info in fields.items():
            text = f"{info.annotation} {info.metadata}"
            if field_name.endswith(("_id", "_ids")) and "int" in text:
                found.add(f"{name}.{field_name}")
    return found


def test_every_id_is_scoped(tmp_path: Path) -> None:
    """Every integer id a route takes is typed to be resolved in the caller's scope."""
    app = create_app(CloudSettings(data_dir=tmp_path), "postgresql://unused")
    missing = []
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.path.startswith("/api/"):
            continue
        scoped = {slot.name for slot in id_slots(route.endpoint)}
        missing += [f"{route.path}: {name}" for name in _int_ids(route) - scoped]
    assert not missing, missing


def test_the_counts(capsys: pytest.CaptureFixture[str]) -> None:
    """Prints how much the matrix covers (after the matrix has run in this session)."""
    routes = len(EXPECTATIONS)
    roles = len(ROLE_PERMISSIONS)
    with capsys.disabled():
        print(
            f"\nauthorization matrix: {routes} operations x {roles} roles;"
            f" {COUNTS['pairs']} role-route pairs, {COUNTS['requests']} requests"
        )
