"""A world of tenants for authorization tests: two states, three boards, and on each board one of
everything a route can name — with spares, so that every write a role may make has an object of
its own to succeed on once.

Sites (where the objects sit, relative to the caller):
- `own`: board A in state S1 — the board of the board roles, inside the state admin's state S1;
  its consumer `consumer` is the CONSUMER's own;
- `sibling`: another consumer of board A, with its own meter, invoices and alert (a consumer's
  neighbour);
- `other_board`: board B, also in S1;
- `other_state`: board C in state S2.

Every object records where it sits (state, board, consumer), so a test can say from that alone
whether a caller should reach it.
"""

from __future__ import annotations

import functools
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from psycopg import AsyncConnection

from cloud.billing.tariff import TariffSpec
from cloud.services.passwords import hash_password_blocking
from shared import generate_private_key, public_key_text

PASSWORD = "correct horse battery"
SITES = ("own", "sibling", "other_board", "other_state")
FLAT_TARIFF = {"energy": {"mode": "flat", "rate": "5.00"}}


@functools.cache
def _password_hash() -> str:
    return hash_password_blocking(PASSWORD)


@dataclass(frozen=True)
class Obj:
    """An object and where it sits."""

    id: int
    state: int | None
    board: int | None
    consumer: int | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass
class Site:
    name: str
    objects: dict[str, Obj] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Obj:
        try:
            return self.objects[name]
        except KeyError:
            raise AttributeError(name) from None


@dataclass
class World:
    tag: str
    states: dict[str, int]  # S1, S2
    boards: dict[str, int]  # A, B, C
    sites: dict[str, Site]
    users: dict[str, Obj] = field(default_factory=dict)  # role -> the acting user
    free_state_codes: list[str] = field(default_factory=list)  # for creating states

    def site(self, name: str) -> Site:
        return self.sites[name]


class _Builder:
    def __init__(self, conn: AsyncConnection, tag: str) -> None:
        self.conn = conn
        self.tag = tag
        self.counter = 0

    def unique(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.tag}-{self.counter}"

    async def insert(self, table: str, **values: Any) -> int:
        columns = ", ".join(values)
        marks = ", ".join(["%s"] * len(values))
        cursor = await self.conn.execute(
            f"INSERT INTO {table} ({columns}) VALUES ({marks}) RETURNING id",
            list(values.values()),
        )
        return (await cursor.fetchone())["id"]


async def _state(b: _Builder) -> int:
    """A state with a code no other state has (codes are two or three letters: few enough that
    random ones collide across a test session's many worlds)."""
    while True:
        code = "".join(chr(ord("A") + int(c, 16) % 26) for c in uuid.uuid4().hex[:3])
        cursor = await b.conn.execute(
            "INSERT INTO states (code, name) VALUES (%s, %s) ON CONFLICT (code) DO NOTHING"
            " RETURNING id",
            (code, f"State {code}"),
        )
        row = await cursor.fetchone()
        if row is not None:
            return row["id"]


async def free_state_code(conn: AsyncConnection) -> str:
    """A state code no state has yet."""
    while True:
        code = "".join(chr(ord("A") + int(c, 16) % 26) for c in uuid.uuid4().hex[:3])
        cursor = await conn.execute("SELECT 1 FROM states WHERE code = %s", (code,))
        if await cursor.fetchone() is None:
            return code


async def _board_objects(
    b: _Builder, site: Site, state: int, board: int, *, with_board_spares: bool
) -> None:
    """Everything of one site: the consumer side (consumer, meter, invoices, alert) and, for
    board sites, the board side (gateways, spares, tariff, report, users)."""
    o = site.objects

    def at(obj_id: int, consumer: int | None = None, **extra: Any) -> Obj:
        return Obj(obj_id, state, board, consumer, extra)

    consumer = await b.insert(
        "consumers", board_id=board, account_no=b.unique("acct"), name=f"Consumer {site.name}"
    )
    o["consumer"] = at(consumer, consumer)
    # the household's online account, which allowed its usage to be used for the ways to pay
    # less (without it the engine works none out, whoever asks)
    household = await b.insert(
        "users",
        email=f"{b.unique('household')}@example.in".lower(),
        password_hash=_password_hash(),
        role="CONSUMER",
        consumer_id=consumer,
    )
    await b.insert(
        "consents", user_id=household, consumer_id=consumer, kind="usage_insights", granted=True
    )
    if with_board_spares:
        o["gateway"] = at(
            await b.insert(
                "gateways",
                board_id=board,
                gateway_code=b.unique("gw"),
                public_key=public_key_text(generate_private_key()),
            )
        )
    gateway = o["gateway"].id if "gateway" in o else None
    meter = await b.insert(
        "meters",
        board_id=board,
        external_id=b.unique("m"),
        consumer_id=consumer,
        gateway_id=gateway,
        model="sdm630",
        confirmed_at="2026-01-01T00:00:00Z",
    )
    o["meter"] = at(meter, consumer)
    for name, kind in (
        ("recommendation", "cut_standby"),
        ("recommendation_answer", "shift_to_off_peak"),
    ):
        o[name] = at(  # advice of a past period: generating now leaves it be
            await b.insert(
                "recommendations",
                board_id=board,
                consumer_id=consumer,
                kind=kind,
                category="energy_saving",
                period_start="2026-09-01",
                period_end="2026-10-01",
                currency="INR",
                energy_unit="kWh",
                saving="42.00",
                units="30",
                units_per_day="1",
                assumption="A quarter of the standing load switched off.",
                as_of="2026-09-15T00:00:00Z",
            ),
            consumer,
        )
    # forty days of register reads, so this month's estimate has something to go on
    await b.conn.execute(
        "SELECT ensure_readings_partition(d::date) FROM generate_series("
        " date_trunc('month', now() - interval '40 days'), now(), interval '1 month') d"
    )
    await b.conn.execute(
        "INSERT INTO readings (meter_id, quantity, ts, value, quality, gateway_id)"
        " SELECT %s, '1.8.0', t, 1000 + extract(epoch FROM t - (now() - interval '40 days'))"
        " / 3600 * 0.5, 'ok', coalesce(%s, 0) FROM generate_series(now() - interval '40 days',"
        " now(), interval '6 hours') t",
        (meter, gateway),
    )
    for name, status in (
        ("invoice_draft", "draft"),
        ("invoice_cancel", "draft"),
        ("invoice_pay", "issued"),
        ("invoice_dispute", "issued"),
        ("invoice_disputed", "disputed"),
        ("invoice_overdue", "issued"),
        ("invoice_bulk", "draft"),
    ):
        invoice = await b.insert(
            "invoices",
            board_id=board,
            consumer_id=consumer,
            period_start="2026-01-01",
            period_end="2026-02-01",
            version=len([k for k in o if k.startswith("invoice")]) + 1,
            status=status,
            currency="INR",
            units=100,
            total=500,
            amount_due=500,
            estimated=False,
            due_date="2026-02-20",
        )
        o[name] = at(invoice, consumer, status=status)
        if status == "disputed":
            await b.conn.execute(
                "INSERT INTO disputes (invoice_id, reason, opened_by) VALUES (%s, 'too high', 't')",
                (invoice,),
            )
    for name in ("alert", "alert_ack", "alert_resolve"):
        o[name] = at(
            await b.insert(
                "alerts",
                board_id=board,
                meter_id=meter,
                subject=f"meter:{meter}:{name}",
                kind="outage",
                severity="high",
                source="edge",
                message="no power",
                opened_at="2026-10-01T00:00:00Z",
                last_seen_at="2026-10-01T00:00:00Z",
            ),
            consumer,
        )
    await _support_queries(b, o, consumer, at)
    if not with_board_spares:
        return
    for name, done in (("command", True), ("command_cancel", False)):
        finished = {
            "status": "succeeded",
            "finished_at": "2026-10-01T00:00:05Z",
            "detail": "1 of 2 checks found a problem",
            "result": json.dumps(
                {
                    "findings": [
                        {"check": "clock", "ok": True, "detail": "synchronised", "fix": ""},
                        {
                            "check": "disk",
                            "ok": False,
                            "detail": "40 MB free for a 512 MB budget",
                            "fix": "free space, or lower [store] disk_budget_mb",
                        },
                    ]
                }
            ),
        }
        o[name] = at(
            await b.insert(
                "gateway_commands",
                gateway_id=o["gateway"].id,
                board_id=board,
                kind="doctor",
                expires_at="2099-01-01T00:00:00Z",
                **(finished if done else {}),
            )
        )
    bus = {"name": "rs485-1", "kind": "modbus-rtu", "port": "/dev/ttyUSB0"}
    o["discovery"] = at(  # a meter a scan found, given to the site's consumer already
        await b.insert(
            "gateway_discoveries",
            gateway_id=o["gateway"].id,
            board_id=board,
            bus=json.dumps(bus),
            bus_name="rs485-1",
            unit=7,
            model="sdm120",
            serial="70007",
            found_at="2026-10-01T00:00:00Z",
            meter_id=meter,
            assigned_at="2026-10-01T00:10:00Z",
        )
    )
    read_at = "2026-10-01T00:00:05+00:00"
    await b.insert(  # a meter read on demand, as the gateway page shows it
        "gateway_commands",
        gateway_id=o["gateway"].id,
        board_id=board,
        kind="read_now",
        meter_id=meter,
        expires_at="2099-01-01T00:00:00Z",
        status="succeeded",
        finished_at="2026-10-01T00:00:06Z",
        detail="3 values read",
        result=json.dumps(
            {
                "values": {"1.8.0": 1480.25, "32.7.0": 231.4, "14.7.0": 49.98},
                "at": {"1.8.0": read_at, "32.7.0": read_at, "14.7.0": read_at},
            }
        ),
    )
    o["gateway_revoke"] = at(
        await b.insert(
            "gateways",
            board_id=board,
            gateway_code=b.unique("gw"),
            public_key=public_key_text(generate_private_key()),
        )
    )
    o["consumer_spare"] = at(
        await b.insert(
            "consumers", board_id=board, account_no=b.unique("spare"), name="Spare consumer"
        )
    )
    for name, values in (
        ("meter_free", {}),
        ("meter_spare", {}),
        ("meter_replace", {"consumer_id": consumer, "gateway_id": gateway}),
        ("meter_discovered", {"gateway_id": gateway, "confirmed_at": None}),
        ("meter_status", {}),  # its status is changed (and its consumer's bills left alone)
    ):
        values = {"confirmed_at": "2026-01-01T00:00:00Z", **values}
        o[name] = at(
            await b.insert("meters", board_id=board, external_id=b.unique("m"), **values),
            values.get("consumer_id"),
        )
    code = await b.conn.execute("SELECT gateway_code FROM gateways WHERE id = %s", (gateway,))
    o["audit_entry"] = at(  # what the site's gateway did: in scope where the gateway is
        await b.insert(
            "audit_log",
            actor=f"gateway:{(await code.fetchone())['gateway_code']}",
            action="update",
            entity="gateway",
            entity_id=str(gateway),
            before=json.dumps({"version": "1.0"}),
            after=json.dumps({"version": "1.1"}),
        )
    )
    tariff = await b.insert("tariffs", board_id=board, category="domestic", name="Domestic")
    o["tariff"] = at(tariff)
    o["version"] = at(
        await b.insert(
            "tariff_versions",
            tariff_id=tariff,
            effective_from="2020-01-01",
            effective_to="2021-01-01",
            spec=TariffSpec.model_validate(FLAT_TARIFF).model_dump_json(),
        ),
        tariff=tariff,
    )
    o["tariff_override"] = at(
        await b.insert(
            "tariff_overrides",
            board_id=board,
            category="domestic",
            kind="multiplier",
            value="1.1",
            starts_at="2026-11-01T00:00:00Z",
            ends_at="2027-01-01T00:00:00Z",
            reason="matrix",
            created_by="test",
        )
    )
    await b.insert(  # in force now, so estimates have a price
        "tariff_versions",
        tariff_id=tariff,
        effective_from="2023-01-01",
        spec=TariffSpec.model_validate(FLAT_TARIFF).model_dump_json(),
    )
    await b.conn.execute(
        "INSERT INTO holidays (board_id, day, name) VALUES (%s, '2026-01-26', 'Republic Day')",
        (board,),
    )
    o["billing_run"] = at(
        await b.insert(
            "billing_runs",
            board_id=board,
            period_start="2026-09-01",
            period_end="2026-10-01",
            actor="test",
            consumers=1,
            measured=1,
            created=1,
        )
    )
    for name in ("report", "report_delete"):
        o[name] = at(
            await b.insert(
                "reports",
                board_id=board,
                kind="alerts",
                format="csv",
                granularity="daily",
                period_start="2026-10-01",
                period_end="2026-11-01",
                status="done",
                storage_key=f"test/{b.unique('report').lower()}.csv",
                size_bytes=5,
                rows=1,
                created_by="test",
            )
        )
    for name in ("user", "user_patch", "user_delete"):
        o[name] = at(
            await b.insert(
                "users",
                email=f"{b.unique('tech')}@example.in".lower(),
                password_hash=_password_hash(),
                role="TECHNICIAN",
                state_id=state,
                board_id=board,
            )
        )
    for name in ("report_format", "report_format_delete"):
        o[name] = at(
            await b.insert(
                "report_formats",
                board_id=board,
                name=b.unique("format"),
                kind="consumption",
                file_type="csv",
                columns=json.dumps([{"column": "meter"}, {"column": "energy_kwh"}]),
                created_by="test",
            )
        )
    for name in ("report_schedule", "report_schedule_delete"):
        o[name] = at(
            await b.insert(
                "report_schedules",
                board_id=board,
                name=b.unique("schedule"),
                kind="alerts",
                file_type="csv",
                cadence="weekly",
                weekday=0,
                at_time="07:00",
                user_ids=[o["user"].id],
                created_by="test",
            )
        )


async def _support_queries(b: _Builder, o: dict[str, Obj], consumer: int, at: Any) -> None:
    """The consumer's queries, one per route that changes one, opened by a consumer user who
    consented to automated processing."""
    opener = await b.insert(
        "users",
        email=f"{b.unique('opener')}@example.in".lower(),
        password_hash=_password_hash(),
        role="CONSUMER",
        consumer_id=consumer,
    )
    await b.insert(
        "consents", user_id=opener, consumer_id=consumer, kind="automated_support", granted=True
    )
    board = (
        await (
            await b.conn.execute("SELECT board_id FROM consumers WHERE id = %s", (consumer,))
        ).fetchone()
    )["board_id"]
    for name in (
        "support_query",
        "query_reply",
        "query_answer",
        "query_patch",
        "query_escalate",
        "query_delete",
        "query_classify",
        "query_draft",
        "query_send",
    ):
        query = await b.insert(
            "support_queries",
            board_id=board,
            consumer_id=consumer,
            opened_by=opener,
            subject="Why is my bill so high?",
            category="high_bill",
            category_source="consumer",
            status="open",
            draft="Dear consumer, your bill ...",
            sla_started_at="2026-10-01T00:00:00Z",
            sla_due_at="2026-10-04T00:00:00Z",
        )
        await b.insert(
            "support_messages",
            query_id=query,
            author_id=opener,
            author_kind="consumer",
            body="Why is my bill so high this month?",
        )
        o[name] = at(query, consumer)


MATRIX_RELEASE = "0.0.1+matrix"


async def build_world(conn: AsyncConnection) -> World:
    """The world, committed. Codes carry a random tag, so worlds of many tests coexist."""
    tag = uuid.uuid4().hex[:10].upper()  # 6 hex digits collided once in a CI session
    b = _Builder(conn, tag)
    states = {"S1": await _state(b), "S2": await _state(b)}
    boards = {
        name: await b.insert(
            "boards", state_id=states[state], code=f"{name}-{tag}", name=f"Board {name}"
        )
        for name, state in (("A", "S1"), ("B", "S1"), ("C", "S2"))
    }
    sites = {name: Site(name) for name in SITES}
    await _board_objects(b, sites["own"], states["S1"], boards["A"], with_board_spares=True)
    sites["sibling"].objects["gateway"] = sites["own"].gateway
    await _board_objects(b, sites["sibling"], states["S1"], boards["A"], with_board_spares=False)
    await _board_objects(b, sites["other_board"], states["S1"], boards["B"], with_board_spares=True)
    await _board_objects(b, sites["other_state"], states["S2"], boards["C"], with_board_spares=True)
    for site, state in (("own", "S1"), ("other_board", "S1"), ("other_state", "S2")):
        s = sites[site]
        s.objects["state"] = Obj(states[state], states[state], None)
        s.objects["board"] = Obj(s.consumer.board, states[state], s.consumer.board)
        empty = await b.insert(
            "boards", state_id=states[state], code=b.unique("E").upper(), name="Empty board"
        )
        s.objects["board_empty"] = Obj(empty, states[state], empty)
        s.objects["state_spare"] = Obj(await _state(b), None, None)
    # a release every world may target (releases belong to no tenant)
    await conn.execute(
        "INSERT INTO software_releases (version, source) VALUES (%s, 'index')"
        " ON CONFLICT (version) DO NOTHING",
        (MATRIX_RELEASE,),
    )
    world = World(tag, states, boards, sites)
    world.free_state_codes = [await free_state_code(conn) for _ in range(4)]
    await conn.commit()
    return world


async def add_actor(conn: AsyncConnection, world: World, role: str) -> str:
    """The user who acts as `role` (scoped to board A / state S1 / the own consumer); its
    e-mail, to log in with."""
    email = f"{role.lower()}-{world.tag}@example.in".lower()
    own = world.site("own")
    scope = {
        "SUPER_ADMIN": {},
        "STATE_ADMIN": {"state_id": world.states["S1"]},
        "CONSUMER": {"consumer_id": own.consumer.id},
    }.get(role, {"state_id": world.states["S1"], "board_id": world.boards["A"]})
    user_id = (
        await (
            await conn.execute(
                "INSERT INTO users (email, password_hash, role, state_id, board_id, consumer_id)"
                " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (
                    email,
                    _password_hash(),
                    role,
                    scope.get("state_id"),
                    scope.get("board_id"),
                    scope.get("consumer_id"),
                ),
            )
        ).fetchone()
    )["id"]
    await conn.commit()
    world.users[role] = Obj(
        user_id, scope.get("state_id"), scope.get("board_id"), scope.get("consumer_id")
    )
    return email
