"""`gridgate demo`: the whole system on one machine, with nothing else installed.

    simulated meters ──RS-485 pty──┐
    (SDM630, SDM120, EM24, iEM3000) ├─> edge daemon ──signed batches──> cloud ──> dashboard
    DLMS meter ───────TCP wrapper──┤    (store, checks,    (HTTP)         (embedded PostgreSQL
    MQTT plug ──embedded broker────┘     store-and-forward)                unless one is set)

The first run creates a demo board, its users, a tariff and the consumers, enrolls the gateway
with a one-time token, and keeps everything in the data directory; later runs reuse it.
`--speed` runs the meters' physics faster, so energy (and so bills and charts) grows in minutes.
`--offline-for` cuts the gateway's link to the cloud for a while: readings pile up in the
gateway's store and drain when the link is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import psycopg
import uvicorn
from psycopg.rows import dict_row
from rich.console import Console
from rich.live import Live

from cloud.access import Principal
from cloud.app import create_app
from cloud.billing.examples import DELHI_DOMESTIC_2015
from cloud.billing.tariff import TariffSpec
from cloud.db import database_url
from cloud.mail.maildrop import maildrop
from cloud.migrate import migrate
from cloud.services import aggregates, audit, auth, billing_runs, enrollment, fleet, invoices
from cloud.settings import CloudSettings
from edge.cloud_http import Answer, CloudUnreachable, Connection, Writer
from edge.config import load_config
from edge.daemon import Daemon
from edge.refusal import CommandRefused
from firmware_sim.clock import SimClock
from firmware_sim.dlms_line import DlmsTcpServer
from firmware_sim.dlms_meter import SimulatedDlmsMeter, register_table
from firmware_sim.fleet import (
    MeterSpec,
    build_modbus_meters,
    generation_physics_for,
    physics_for,
)
from firmware_sim.modbus_meter import SimulatedModbusMeter
from firmware_sim.mqtt_meter import MqttMeterSettings, SimulatedMqttMeter
from firmware_sim.physics import MeterPhysics
from firmware_sim.rtu_bus import RtuBus
from protocols.errors import ProtocolError
from protocols.modbus.profile import get_profile
from protocols.modbus.timing import LineSettings
from protocols.mqtt.embedded_broker import embedded_broker_thread, free_port
from protocols.mqtt.profile import get_mqtt_profile
from shared import generate_private_key, public_key_text, write_private_key

BOARD = "DEMO"
GATEWAY = "gw-demo"
ROOT = ("root@demo.gridgate.in", "demo-root-password")
ADMIN = ("admin@demo.gridgate.in", "demo-admin-password")
SUPPORT = ("support@demo.gridgate.in", "demo-support-password")
CONSUMER = ("consumer@demo.gridgate.in", "demo-consumer-password")
# a household with no online account yet, whose record holds this address: sign up as it
SIGNUP = ("DEMO-002", "household2@demo.gridgate.in")
MODBUS = [(1, "sdm630"), (2, "sdm120"), (3, "em24"), (4, "iem3000")]
# DEMO-005 (the DLMS meter) has 3 kWp of rooftop solar and is net metered; its panels' output
# is measured by a generation meter on the RS-485 bus (billed to no one: its export register
# is the generation)
SOLAR_ACCOUNT, SOLAR_SEED, SOLAR_KWP = "DEMO-005", 5, 3.0
GENERATION_METER = (5, "sdm120")
GENERATION_ID = f"pv-{GENERATION_METER[0]}-{GENERATION_METER[1]}"
# Delhi's domestic tariff with net-metering terms (DERC Net Metering Regulations 2014: the bank
# settled at the financial year's end, March, at a feed-in rate)
NET_METERING = {"feed_in_rate": "3.00", "settlement_month": 3, "surplus": "carry"}


class CableTransport:
    """The gateway's network link, which the demo can unplug: the daemon's own HTTP connection
    (`edge.cloud_http`), refusing while unplugged."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        self.inner = Connection(base_url, timeout_s)
        self.unplugged_until = 0.0

    async def exchange(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes, into: Writer | None
    ) -> Answer:
        if time.monotonic() < self.unplugged_until:
            await self.inner.aclose()
            raise CloudUnreachable("the demo unplugged the gateway's network")
        return await self.inner.exchange(method, path, headers, body, into)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Stack:
    cloud_url: str
    daemon: Daemon
    cable: CableTransport


async def _seed(url: str) -> None:
    """The demo's board, users, tariff and consumers; nothing is created twice."""
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        await migrate(conn)
        await conn.set_autocommit(False)
        cursor = await conn.execute("SELECT id FROM boards WHERE code = %s", (BOARD,))
        if await cursor.fetchone() is not None:
            await _ensure_staff(conn)
            await _ensure_contacts(conn)
            await _ensure_solar(conn)
            await conn.commit()
            return
        await fleet.create_state(conn, code="DM", name="Demo state", actor="demo")
        board = await fleet.create_board(
            conn, state_code="DM", code=BOARD, name="Demo power board", actor="demo"
        )
        async with conn.transaction():
            await conn.execute("UPDATE boards SET capacity_kw = 40 WHERE id = %s", (board["id"],))
            tariff = await (
                await conn.execute(
                    "INSERT INTO tariffs (board_id, category, name) VALUES (%s, 'domestic',"
                    " 'Domestic (DERC FY2015-16)') RETURNING id",
                    (board["id"],),
                )
            ).fetchone()
            await conn.execute(
                "INSERT INTO tariff_versions (tariff_id, effective_from, spec)"
                " VALUES (%s, '2015-04-01', %s)",
                (tariff["id"], TariffSpec.model_validate(DEMO_TARIFF).model_dump_json()),
            )
            meters = [  # (id, model, phases)
                *(
                    (_rtu_id(unit, model), _model_name(model), get_profile(model).phases)
                    for unit, model in MODBUS
                ),
                ("dlms-1", "DLMS/COSEM polyphase meter", 3),
                ("plug-1", "MQTT smart plug", 1),
            ]
            first = None
            for index, (external, model, phases) in enumerate(meters, start=1):
                consumer = await (
                    await conn.execute(
                        "INSERT INTO consumers (board_id, account_no, name, sanctioned_load_kw)"
                        " VALUES (%s, %s, %s, %s) RETURNING id",
                        (board["id"], f"DEMO-{index:03d}", f"Demo household {index}", Decimal(3)),
                    )
                ).fetchone()
                first = first or consumer["id"]
                await conn.execute(
                    "INSERT INTO meters (board_id, external_id, consumer_id, model, phases,"
                    " confirmed_at) VALUES (%s, %s, %s, %s, %s, now())",
                    (board["id"], external, consumer["id"], model, phases),
                )
        await auth.create_user(
            conn,
            email=ADMIN[0],
            password=ADMIN[1],
            role="BOARD_ADMIN",
            board_code=BOARD,
            actor="demo",
        )
        await auth.create_user(
            conn,
            email=CONSUMER[0],
            password=CONSUMER[1],
            role="CONSUMER",
            consumer_id=first,
            actor="demo",
        )
        await _ensure_staff(conn)
        await _ensure_contacts(conn)
        await _ensure_solar(conn)
        await conn.commit()


DEMO_TARIFF = {**DELHI_DOMESTIC_2015, "net_metering": NET_METERING}


async def _ensure_solar(conn: psycopg.AsyncConnection) -> None:
    """The solar household: its generation source and generation meter, and net-metering terms
    on the tariff (added to demos made before net metering)."""
    cursor = await conn.execute("SELECT id FROM boards WHERE code = %s", (BOARD,))
    board_id = (await cursor.fetchone())["id"]
    await conn.execute(
        "UPDATE tariff_versions SET spec = spec || jsonb_build_object('net_metering', %s::jsonb)"
        " WHERE NOT spec ? 'net_metering' AND tariff_id IN"
        " (SELECT id FROM tariffs WHERE board_id = %s AND category = 'domestic')",
        (json.dumps(NET_METERING), board_id),
    )
    await conn.execute(
        "INSERT INTO meters (board_id, external_id, model, phases, confirmed_at)"
        " VALUES (%s, %s, %s, 1, now()) ON CONFLICT (board_id, external_id) DO NOTHING",
        (board_id, GENERATION_ID, f"{_model_name(GENERATION_METER[1])} (solar generation)"),
    )
    await conn.execute(
        "UPDATE consumers SET generation_kind = 'rooftop_solar', generation_kwp = %s,"
        " generation_since = '2024-04-01', generation_meter_id = (SELECT id FROM meters"
        " WHERE board_id = %s AND external_id = %s)"
        " WHERE board_id = %s AND account_no = %s AND generation_kind IS NULL",
        (SOLAR_KWP, board_id, GENERATION_ID, board_id, SOLAR_ACCOUNT),
    )


async def _ensure_contacts(conn: psycopg.AsyncConnection) -> None:
    """Each demo household's e-mail on its record (DEMO-002: household2@...), so a person can
    claim an online account (added to demos made before consumer records held contacts)."""
    await conn.execute(
        "UPDATE consumers SET email = 'household' || ltrim(split_part(account_no, '-', 2), '0')"
        " || '@demo.gridgate.in'"
        " WHERE email IS NULL AND board_id = (SELECT id FROM boards WHERE code = %s)",
        (BOARD,),
    )


async def _ensure_staff(conn: psycopg.AsyncConnection) -> None:
    """The demo's super admin and support agent (added to demos made before they existed)."""
    for (email, password), role, scope in (
        (ROOT, "SUPER_ADMIN", {}),
        (SUPPORT, "SUPPORT_AGENT", {"board_code": BOARD}),
    ):
        cursor = await conn.execute("SELECT 1 FROM users WHERE email = %s", (email,))
        if await cursor.fetchone() is None:
            await auth.create_user(
                conn, email=email, password=password, role=role, actor="demo", **scope
            )


INDIA = ZoneInfo("Asia/Kolkata")  # the demo board's zone
LOG_FILE = "demo.log"  # in the data directory: what the demo's parts log, as JSON lines


def _shown(path: Path) -> Path:
    """`path` as a person types it here: relative to the working directory when inside it."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def _anchor(data_dir: Path) -> float:
    """When the demo meters' physics starts: two days before the last full month began (in the
    board's zone), so that month can be billed at once; kept in the data directory so every
    later run continues the same registers."""
    path = data_dir / "physics-start"
    if not path.exists():
        first_of_this_month = datetime.now(INDIA).date().replace(day=1)
        first_of_last_month = (first_of_this_month - timedelta(days=1)).replace(day=1)
        start = datetime.combine(
            first_of_last_month - timedelta(days=2), datetime.min.time(), INDIA
        )
        path.write_text(str(start.timestamp()))
    return float(path.read_text())


def _physics_clock(data_dir: Path, speed: float) -> SimClock:
    """The Modbus meters' clock: `speed` times the wall clock, from now or from where the last
    run left it if that is later (a faster run is ahead of the wall clock, and its registers must
    not fall back when the demo starts again)."""
    path = data_dir / "physics-now"
    now = datetime.now(UTC)
    with contextlib.suppress(FileNotFoundError, ValueError):
        now = max(now, datetime.fromtimestamp(float(path.read_text()), UTC))
    return SimClock(start=now, speed=speed)


def _remember_clock(data_dir: Path, clock: SimClock) -> None:
    path = data_dir / "physics-now"
    spare = path.with_suffix(".tmp")
    spare.write_text(repr(clock.now_s()))
    spare.replace(path)


def _rtu_id(unit: int, model: str) -> str:
    """The gateway's id of a Modbus meter on the demo's bus."""
    return f"rtu-{unit}-{model}"


async def _read_once_more(daemon: Daemon, meter_ids: list[str]) -> None:
    """Read each of `meter_ids` at once (as the cloud's read-now command does), stored and
    checked like a poll; a meter that does not answer within its bound keeps its last poll."""
    for meter_id in meter_ids:
        with contextlib.suppress(ProtocolError, CommandRefused, TimeoutError, OSError):
            await daemon.read_now(meter_id, None)


def _last_month(today: date) -> tuple[date, date]:
    end = today.replace(day=1)
    return (end - timedelta(days=1)).replace(day=1), end


# what the charts of a meter's page draw; history brings each that the meter reports
CHART_QUANTITIES = frozenset(
    {
        "1.8.0",
        "2.8.0",
        "1.7.0",
        "2.7.0",
        "16.7.0",
        "32.7.0",
        "52.7.0",
        "72.7.0",
        "31.7.0",
        "51.7.0",
        "71.7.0",
        "13.7.0",
        "33.7.0",
        "53.7.0",
        "73.7.0",
        "32.7.124",
        "52.7.124",
        "72.7.124",
        "31.7.124",
        "51.7.124",
        "71.7.124",
    }
)


def _model_name(model: str) -> str:
    """'Eastron SDM630 Modbus V2' for sdm630: the vendor and the profile's first words."""
    profile = get_profile(model)
    return f"{profile.vendor} {profile.description.split(',')[0]}"


def _reported(kind: str, phases: int) -> frozenset[str]:
    """The quantities a demo meter's reader reports: its register map's, or its protocol's."""
    if kind == "dlms":
        codes = {d.quantity for d in register_table(phases).values()}
    elif kind == "mqtt":
        codes = {f.quantity for f in get_mqtt_profile("tasmota").fields}
    else:
        codes = {r.quantity for r in get_profile(kind).registers}
    return frozenset(codes & CHART_QUANTITIES)


def _anchored(physics: MeterPhysics, start_s: float) -> MeterPhysics:
    # minute slots: five weeks of history integrate in a fraction of a second
    return replace(physics, start_s=start_s, slot_s=60.0)


async def _import_history(
    url: str,
    physics: dict[str, MeterPhysics],
    reported: dict[str, frozenset[str]],
    until: datetime,
) -> None:
    """On the first run: the meters' past (every 15 minutes from the physics' start), as a utility
    would import it from the system GridGate replaces, so charts have a past and last month can
    be billed at once. The same physics then drives the live meters, so history and live
    readings join up."""
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        cursor = await conn.execute(
            "SELECT m.id, m.external_id, g.id AS gateway_id FROM meters m"
            " JOIN boards b ON b.id = m.board_id JOIN gateways g ON g.gateway_code = %s"
            " WHERE b.code = %s",
            (GATEWAY, BOARD),
        )
        meters = {row["external_id"]: row for row in await cursor.fetchall()}
        cursor = await conn.execute(
            "SELECT 1 FROM readings WHERE meter_id = ANY(%s) LIMIT 1",
            ([m["id"] for m in meters.values()],),
        )
        first_run = await cursor.fetchone() is None
        rows = []
        for external, model in physics.items():
            step = datetime.fromtimestamp(model.start_s, UTC).replace(second=0, microsecond=0)
            step += timedelta(minutes=15 - step.minute % 15)
            while step < until:
                state = model.state_at(step.timestamp())  # also brings the live meter up to date
                if first_run:
                    for quantity in sorted(reported[external]):
                        if quantity in state.values:
                            rows.append(
                                (
                                    meters[external]["id"],
                                    quantity,
                                    step,
                                    state.values[quantity],
                                    "ok",
                                    meters[external]["gateway_id"],
                                )
                            )
                step += timedelta(minutes=15)
        if not rows:
            return
        for month in sorted({date(r[2].year, r[2].month, 1) for r in rows}):
            await conn.execute("SELECT ensure_readings_partition(%s)", (month,))
        async with (
            conn.cursor() as cur,
            cur.copy(
                "COPY readings (meter_id, quantity, ts, value, quality, gateway_id) FROM STDIN"
            ) as copy,
        ):
            for row in rows:
                await copy.write_row(row)
        await conn.execute(
            "UPDATE meters m SET last_reading_at = r.latest FROM (SELECT meter_id,"
            " max(ts) AS latest FROM readings WHERE meter_id = ANY(%s) GROUP BY 1) r"
            " WHERE m.id = r.meter_id",
            ([m["id"] for m in meters.values()],),
        )
        board = await (
            await conn.execute("SELECT id, time_zone FROM boards WHERE code = %s", (BOARD,))
        ).fetchone()
        await aggregates.mark_dirty(
            conn, board["id"], board["time_zone"], min(r[2] for r in rows), until
        )
        await conn.commit()
        await aggregates.refresh(conn)


async def _bill_last_month(url: str, cloud_url: str) -> dict:
    """Last month billed and its bills issued, as the board's staff would have done by now
    (idempotent: a later start finds every bill unchanged and nothing left to issue)."""
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        cursor = await conn.execute(
            "SELECT u.id, b.id AS board_id FROM users u, boards b"
            " WHERE u.email = %s AND b.code = %s",
            (ROOT[0], BOARD),
        )
        row = await cursor.fetchone()
        await conn.commit()
        operator = Principal(row["id"], "SUPER_ADMIN", None, None, None)
        start, end = _last_month(datetime.now(INDIA).date())
        summary = await billing_runs.run(
            conn, operator, board_id=row["board_id"], period_start=start, period_end=end
        )
        cursor = await conn.execute(
            "SELECT id FROM invoices WHERE board_id = %s AND period_start = %s"
            " AND status = 'draft'",
            (row["board_id"], start),
        )
        drafts = [r["id"] for r in await cursor.fetchall()]
        await conn.commit()
        issued = await invoices.issue_many(conn, operator, drafts, base_url=cloud_url)
        return {**summary, "issued": len(issued["issued"]), "month": start}


async def _ask_support(cloud_url: str) -> int:
    """The demo consumer, who allows automatic answers and suggestions from their usage (the
    ways to pay less on their home page), asks why last month's bill is what it is and reports a
    flickering meter display, through the API as the portal would: the first is answered at once
    from their bill, the second waits in the agent's queue with a draft. Asked once per demo;
    how many queries the desk holds."""
    async with httpx.AsyncClient(base_url=cloud_url, timeout=30) as client:
        login = await client.post(
            "/api/v1/auth/login", json={"email": CONSUMER[0], "password": CONSUMER[1]}
        )
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        consent = {"kind": "usage_insights", "granted": True}  # recorded once: a change only
        response = await client.post("/api/v1/users/me/consents", json=consent, headers=headers)
        response.raise_for_status()
        asked = await client.get("/api/v1/support/queries", headers=headers)
        asked.raise_for_status()
        if asked.json()["total"]:
            return asked.json()["total"]
        consent = {"kind": "automated_support", "granted": True}
        response = await client.post("/api/v1/users/me/consents", json=consent, headers=headers)
        response.raise_for_status()
        bills = await client.get(
            "/api/v1/invoices", params={"sort": "period_start", "order": "desc"}, headers=headers
        )
        latest = bills.json()["items"][0]["id"] if bills.json().get("items") else None
        for text, invoice in (
            ("Why is my bill so high this month? Please explain the charges.", latest),
            ("The display on my meter keeps flickering and goes blank at night.", None),
        ):
            response = await client.post(
                "/api/v1/support/queries",
                json={"text": text, "invoice_id": invoice},
                headers=headers,
            )
            response.raise_for_status()
        return 2


async def _enroll(url: str, cloud_url: str, key_path: Path) -> None:
    if await asyncio.to_thread(key_path.exists):
        return
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        token, _ = await enrollment.create_token(conn, board_code=BOARD, ttl_s=600, actor="demo")
    key = generate_private_key()
    async with httpx.AsyncClient(base_url=cloud_url, timeout=10) as client:
        response = await client.post(
            "/api/v1/gateways/enroll",
            json={"token": token, "gateway_id": GATEWAY, "public_key": public_key_text(key)},
        )
        response.raise_for_status()
    write_private_key(key_path, key)
    # the key the cloud signs its commands with, kept as `gridgate edge enroll` keeps it
    (key_path.parent / "cloud.pub").write_text(response.json()["cloud_public_key"] + "\n")


async def _assign_meters(url: str) -> None:
    """The demo's meters are read by its gateway: assign them to it, as an admin does after a
    gateway is installed (the cloud refuses readings of meters assigned to another gateway)."""
    async with (
        await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn,
        conn.transaction(),
    ):
        cursor = await conn.execute(
            "UPDATE meters m SET gateway_id = g.id FROM gateways g, boards b"
            " WHERE g.gateway_code = %s AND b.code = %s AND m.board_id = b.id"
            " AND m.gateway_id IS NULL AND m.replaced_at IS NULL RETURNING m.id",
            (GATEWAY, BOARD),
        )
        assigned = [row["id"] for row in await cursor.fetchall()]
        if assigned:
            await audit.record(
                conn,
                actor="demo",
                action="assign",
                entity="gateway",
                entity_id=GATEWAY,
                after={"meters": assigned},
            )


def _edge_config(
    folder: Path, cloud_url: str, link: Path, dlms_port: int, mqtt_port: int, speed: float
) -> Path:
    meters = "".join(
        f'\n[[buses.meters]]\nid = "{_rtu_id(unit, model)}"\nunit = {unit}\nprofile = "{model}"\n'
        f"phases = {1 if model == 'sdm120' else 3}\nfast_s = 5\nslow_s = 15\n"
        for unit, model in MODBUS
    )
    unit, model = GENERATION_METER
    meters += (
        f'\n[[buses.meters]]\nid = "{GENERATION_ID}"\nunit = {unit}\nprofile = "{model}"\n'
        "phases = 1\nfast_s = 5\nslow_s = 15\nexport_allowed = true  # its output is export\n"
    )
    path = folder / "edge.toml"
    path.write_text(
        f"""# written by gridgate demo
[gateway]
id = "{GATEWAY}"
data_dir = "data"

[cloud]
url = "{cloud_url}"
sync_interval_s = 2

[store]
disk_budget_mb = 256

[clock]
require_ntp = false

[checks]
# the Modbus meters' physics runs {speed:g} times faster than the wall clock, and so do their
# registers: what a register may rise in a second rises with it (not a tamper jump)
max_power_kw = {100 * max(speed, 1):g}
# households: a kettle or a pump doubles a home's load for minutes, and the demo's day of use
# passes in minutes at speed; a spike is three times the usual load, a drop a fifth of it
spike_ratio = 2.0
spike_high_ratio = 4.0
drop_ratio = 0.8
drop_medium_ratio = 0.9
min_samples = 30
# the meters' physics steps once a minute of its own time (five weeks of history integrate in
# moments that way): read every 5 s, a meter that shows whole numbers of tenths of a volt (the
# EM24) repeats a step's values up to 12 times; only more than that is a stuck meter
stale_reads = 15

[[buses]]
name = "rs485-1"
kind = "modbus-rtu"
port = "{link}"
baud = 9600
{meters}
[[buses]]
name = "dlms-1"
kind = "dlms-tcp"
host = "127.0.0.1"
tcp_port = {dlms_port}

[[buses.meters]]
id = "dlms-1"
export_allowed = true  # rooftop solar: exporting at noon is not a fault
fast_s = 15  # its physics steps once a minute: read any faster, it looks stuck
slow_s = 30
timeout_s = 2

[[buses]]
name = "mqtt-1"
kind = "mqtt"
host = "127.0.0.1"
tcp_port = {mqtt_port}
topic_prefix = "demo/"

[[buses.meters]]
id = "plug-1"
device = "plug-1"
phases = 1
"""
    )
    return path


LOG_WIDTH = 80  # the counts' line when the output is not a terminal: a log a person reads


@dataclass(frozen=True)
class DemoCounts:
    """What the demo's live line tells: readings taken and synced, the cloud's count, the
    alerts open, and whether the gateway's link to the cloud is up."""

    taken: int
    synced: int
    cloud_readings: int
    alerts_open: int
    link_online: bool


def describe_counts(counts: DemoCounts, width: int | None = None) -> str:
    """The demo's line of counts, in full words where `width` allows (or when no width is
    given: a log line), else in short ones; narrower still, wrapped between counts, never
    through one. The link's state ends it whatever the width: it is what `--offline-for` shows.
    """
    link = f"link {'online' if counts.link_online else 'OFFLINE'}"
    full = [
        f"readings taken {counts.taken:,}",
        f"synced {counts.synced:,} (cloud holds {counts.cloud_readings:,})",
        f"alerts open {counts.alerts_open}",
        link,
    ]
    short = [
        f"taken {counts.taken:,}",
        f"synced {counts.synced:,}",
        f"cloud {counts.cloud_readings:,}",
        f"alerts {counts.alerts_open}",
        link,
    ]
    for parts in (full, short):
        line = " · ".join(parts)
        if width is None or len(line) <= width:
            return line
    lines = [short[0]]
    for part in short[1:]:
        joined = f"{lines[-1]} · {part}"
        if len(joined) <= width:
            lines[-1] = joined
        else:
            lines.append(part)
    return "\n".join(lines)


async def _counts(url: str, daemon: Daemon, cable: CableTransport) -> DemoCounts:
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        row = await (
            await conn.execute(
                "SELECT (SELECT count(*) FROM readings r JOIN gateways g ON g.id = r.gateway_id"
                " WHERE g.gateway_code = %s) AS cloud_readings,"
                " (SELECT count(*) FROM alerts a JOIN boards b ON b.id = a.board_id"
                " WHERE b.code = %s AND a.state <> 'resolved') AS alerts",
                (GATEWAY, BOARD),
            )
        ).fetchone()
    sync = daemon.syncer.stats if daemon.syncer else None
    return DemoCounts(
        taken=daemon.taken,
        synced=sync.readings if sync else 0,
        cloud_readings=row["cloud_readings"],
        alerts_open=row["alerts"],
        link_online=time.monotonic() >= cable.unplugged_until,
    )


async def run(
    data_dir: Path,
    *,
    speed: float,
    offline_for_min: float,
    duration_s: float | None,
    port: int | None,
) -> None:
    console = Console(soft_wrap=True, highlight=False)
    (data_dir / "edge").mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    mail_dir = data_dir / "mail"
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    with maildrop(mail_dir) as smtp_url:
        settings = CloudSettings(
            data_dir=data_dir / "cloud",
            port=port,
            jobs_interval_s=30,
            smtp_url=smtp_url,
            public_url=f"http://127.0.0.1:{port}",
            notice=_notice(speed),
        )
        await _run(data_dir, settings, mail_dir, stop, speed, offline_for_min, duration_s)
    console.print("demo stopped; run it again to carry on where it left off")


def _notice(speed: float) -> str:
    """What every page of the demo's web app says at its top."""
    said = "A demonstration: simulated meters, households and bills."
    if speed != 1:
        said += (
            f" Its Modbus meters run {speed:g} times faster than life, so their loads and daily"
            f" energy read {speed:g} times what a home uses."
        )
    return said


async def _run(
    data_dir: Path,
    settings: CloudSettings,
    mail_dir: Path,
    stop: asyncio.Event,
    speed: float,
    offline_for_min: float,
    duration_s: float | None,
) -> None:
    console = Console(soft_wrap=True, highlight=False)
    with database_url(settings) as url, embedded_broker_thread() as mqtt_port:
        await _seed(url)
        app = create_app(settings, url)
        server = uvicorn.Server(
            uvicorn.Config(
                app, host="127.0.0.1", port=settings.port, log_level="warning", log_config=None
            )
        )
        serving = asyncio.create_task(server.serve())
        while not server.started:  # uvicorn offers no event to await
            if serving.done():
                await serving
            await asyncio.sleep(0.05)
        cloud_url = f"http://127.0.0.1:{settings.port}"
        clock = _physics_clock(data_dir, speed)
        real = SimClock()
        start_s = _anchor(data_dir)
        meters = build_modbus_meters(
            [MeterSpec(u, m) for u, m in MODBUS], clock, seed=42, turnaround_s=0.005
        )
        for meter in meters:
            meter.physics = _anchored(meter.physics, start_s)
        link = data_dir / "edge" / "rs485"
        dlms = DlmsTcpServer(
            SimulatedDlmsMeter(
                _anchored(physics_for(SOLAR_SEED, 3, real, solar=True), start_s),
                real,
                serial_number=5,
            ),
            "127.0.0.1",
            0,
        )
        # the solar household's generation meter: on the bus, but on the wall clock like the
        # household's own (DLMS) meter, so generation and export describe the same sunshine
        solar = SimulatedModbusMeter(
            GENERATION_METER[0],
            get_profile(GENERATION_METER[1]),
            _anchored(generation_physics_for(SOLAR_SEED, real, kwp=SOLAR_KWP), start_s),
            real,
            serial_number=21_000_000 + 42_000 + GENERATION_METER[0],
            turnaround_s=0.005,
            seed=SOLAR_SEED,
        )
        plug = SimulatedMqttMeter(
            MqttMeterSettings("127.0.0.1", mqtt_port, "plug-1", "demo/", 10),
            _anchored(physics_for(6, 1, real), start_s),
            real,
        )
        await _enroll(url, cloud_url, data_dir / "edge" / "data" / "gateway.key")
        await _assign_meters(url)
        await _import_history(
            url,
            {
                **{_rtu_id(m.unit_id, m.profile.model): m.physics for m in meters},
                "dlms-1": dlms.meter.physics,
                "plug-1": plug.physics,
                GENERATION_ID: solar.physics,
            },
            {
                **{
                    _rtu_id(m.unit_id, m.profile.model): _reported(m.profile.model, 3)
                    for m in meters
                },
                "dlms-1": _reported("dlms", 3),
                "plug-1": _reported("mqtt", 1),
                GENERATION_ID: _reported(GENERATION_METER[1], 1),
            },
            datetime.now(UTC) - timedelta(minutes=5),
        )
        billed = await _bill_last_month(url, cloud_url)
        queries = await _ask_support(cloud_url)
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(RtuBus([*meters, solar], LineSettings(9600), link=link))
            await dlms.start()
            stack.push_async_callback(dlms.stop)
            await plug.start()
            stack.push_async_callback(plug.stop)

            config = load_config(
                _edge_config(data_dir / "edge", cloud_url, link, dlms.port, mqtt_port, speed)
            )
            cable = CableTransport(cloud_url, config.cloud.timeout_s)
            if offline_for_min:
                cable.unplugged_until = time.monotonic() + offline_for_min * 60
            daemon = Daemon(config, transport=cable)
            running = asyncio.create_task(daemon.run())
            console.print(f"[bold]GridGate demo[/] — data in {_shown(data_dir)}")
            console.print(f"{'Dashboard:':15}{cloud_url}/dashboard")
            console.print(f"{'API docs:':15}{cloud_url}/docs")
            for label, (email, password) in (
                ("Super admin", ROOT),
                ("Board admin", ADMIN),
                ("Support agent", SUPPORT),
                ("Consumer", CONSUMER),
            ):
                console.print(f"{label + ':':15}{email} / {password}")
            console.print(
                f"Bills for {billed['month']:%B %Y}: {billed['created']} made,"
                f" {billed['unchanged']} unchanged, {billed['issued']} issued"
            )
            console.print(f"{'Meters:':15}4 Modbus RTU on {_shown(link)}")
            console.print(
                f"{'':15}a DLMS meter on 127.0.0.1:{dlms.port}, an MQTT plug on"
                f" 127.0.0.1:{mqtt_port}"
            )
            console.print(f"{'':15}and DEMO-005's solar panels' meter ({GENERATION_ID}) on the bus")
            console.print(
                f"{'':15}physics speed x{speed:g}"
                + (f"; link cut for {offline_for_min:g} min" if offline_for_min else "")
            )
            console.print(
                f"{'Support:':15}{queries} questions from the consumer (one answered by itself)"
            )
            console.print(f"{'E-mail:':15}kept in {_shown(mail_dir)} (one .txt per message)")
            console.print(f"{'Sign up:':15}{cloud_url}/dashboard/signup")
            console.print(f"{'':15}as account {SIGNUP[0]}, {SIGNUP[1]}")
            gateway_config = _shown(data_dir / "edge" / "edge.toml")
            console.print(f"{'Gateway:':15}{gateway_config}; what it is doing:")
            console.print(f"{'':15}gridgate edge status --config {gateway_config}")
            console.print(f"{'Log:':15}{_shown(data_dir / LOG_FILE)} (warnings shown here too)")
            console.print("Ctrl-C stops everything.")
            started = time.monotonic()
            # The live line's console wraps what it prints itself (no soft wrap), so Live knows
            # how many lines it drew and redraws them all; the line is made to fit the width.
            live = (
                Live(console=Console(highlight=False), refresh_per_second=2)
                if console.is_terminal
                else None
            )
            last_line = 0.0
            with live or contextlib.nullcontext():
                while not stop.is_set() and not running.done():
                    if duration_s is not None and time.monotonic() - started >= duration_s:
                        break
                    with contextlib.suppress(psycopg.Error):
                        counts = await _counts(url, daemon, cable)
                        if live is not None:
                            live.update(describe_counts(counts, live.console.width))
                        elif time.monotonic() - last_line >= 10:  # a log, not a live line
                            console.print(describe_counts(counts, LOG_WIDTH))
                            last_line = time.monotonic()
                    _remember_clock(data_dir, clock)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 2)
            # the Modbus meters' time runs at the wall clock's pace from here, and each is read
            # once more: the registers' last stored values are then those of that pace, and the
            # next run (its checks sized to its own speed) meets no register jump made of the
            # minutes that passed at this run's speed between the last poll and the stop
            clock.set_speed(1.0)
            await _read_once_more(daemon, [_rtu_id(m.unit_id, m.profile.model) for m in meters])
            daemon.stopping.set()
            await asyncio.wait_for(running, 20)
            _remember_clock(data_dir, clock)
            final = await _counts(url, daemon, cable)
            console.print(
                describe_counts(final, console.width if console.is_terminal else LOG_WIDTH)
            )
        server.should_exit = True
        await serving
