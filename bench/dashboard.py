"""The web app on a board of real size: 2,000 consumers with 60 days of 15-minute readings of
three quantities (energy register, power, voltage: about 35 million readings), a month billed,
alerts open, twenty gateways.

Fills a fresh database (GRIDGATE_BENCH_DATABASE_URL's server, else an embedded PostgreSQL) in
time order, as gateways deliver (not timed), computes the console's aggregates (timed: the
backfill, and one pass over today as the job does every minute), starts `gridgate cloud serve`
in its own process, signs in a board admin and a consumer, then times each console page and
chart API request, first one after another, then with 8 people at once. Prints JSON lines:

    <request>_p50_ms, <request>_p95_ms    sequential, then `concurrent: 8`
        targets: pages p95 < 200 ms; a meter's chart data over 7 days < 100 ms;
                 the board overview < 300 ms

Run: python bench/dashboard.py [--consumers 2000] [--days 60] [--requests 30] [--users 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import psycopg
from psycopg.rows import dict_row

sys.path.insert(0, str(Path(__file__).parent))
from cloud_ingest import cloud_server, fresh_database

from cloud.access import Principal
from cloud.billing.examples import DELHI_DOMESTIC_2015
from cloud.billing.tariff import TariffSpec
from cloud.migrate import migrate
from cloud.services import aggregates, auth, billing_runs, fleet

PASSWORD = "correct horse battery"
ADMIN, CONSUMER = "admin@bench.example.in", "consumer@bench.example.in"
INDIA = ZoneInfo("Asia/Kolkata")


def emit(figure: str, value: float, unit: str, **extra: object) -> None:
    line = {"bench": "dashboard", "figure": figure, "value": round(value, 2), "unit": unit}
    print(json.dumps({**line, **extra}), flush=True)


async def fill(url: str, consumers: int, days: int) -> dict:
    """The board, its people and fleet, `days` of readings ending now, a billed month."""
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        await migrate(conn)
        await fleet.create_state(conn, code="BD", name="Bench", actor="bench")
        board = await fleet.create_board(
            conn,
            state_code="BD",
            code="DASH",
            name="Bench board",
            actor="bench",
            capacity_kw=20_000,
        )
        board_id = board["id"]
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO gateways (board_id, gateway_code, public_key, last_seen_at,"
                " backlog_readings, clock_synced, software_version)"
                " SELECT %s, 'gw-' || n, 'k', now(), n * 10, true, '0.1.0'"
                " FROM generate_series(1, 20) n",
                (board_id,),
            )
            await conn.execute(
                "INSERT INTO consumers (board_id, account_no, name, category, sanctioned_load_kw)"
                " SELECT %s, 'AC' || n, 'Consumer ' || n,"
                " CASE WHEN n %% 10 = 0 THEN 'commercial' ELSE 'domestic' END, 1 + n %% 8"
                " FROM generate_series(1, %s) n",
                (board_id, consumers),
            )
            await conn.execute(
                "INSERT INTO meters (board_id, external_id, consumer_id, gateway_id, model,"
                " phases, confirmed_at)"
                " SELECT c.board_id, 'm-' || c.id, c.id,"
                " (SELECT min(id) FROM gateways) + c.id %% 20, 'sdm120', 1, now()"
                " FROM consumers c WHERE c.board_id = %s",
                (board_id,),
            )
            for category in ("domestic", "commercial"):
                cursor = await conn.execute(
                    "INSERT INTO tariffs (board_id, category, name) VALUES (%s, %s, %s)"
                    " RETURNING id",
                    (board_id, category, category.title()),
                )
                await conn.execute(
                    "INSERT INTO tariff_versions (tariff_id, effective_from, spec)"
                    " VALUES (%s, '2020-01-01', %s)",
                    (
                        (await cursor.fetchone())["id"],
                        TariffSpec.model_validate(DELHI_DOMESTIC_2015).model_dump_json(),
                    ),
                )
            await conn.execute(
                "INSERT INTO alerts (board_id, meter_id, subject, kind, severity, source,"
                " message, opened_at, last_seen_at)"
                " SELECT %s, m.id, 'meter:' || m.id, 'voltage_sag',"
                " (ARRAY['high', 'medium', 'low'])[1 + m.id %% 3], 'edge', 'L1 at 201 V',"
                " now() - (m.id %% 7) * interval '1 day', now()"
                " FROM meters m WHERE m.board_id = %s AND m.id %% 10 = 0",
                (board_id, board_id),
            )
            consumer = (
                await (
                    await conn.execute(
                        "SELECT id FROM consumers WHERE board_id = %s ORDER BY id LIMIT 1",
                        (board_id,),
                    )
                ).fetchone()
            )["id"]
            await auth.create_user(
                conn,
                email=ADMIN,
                password=PASSWORD,
                role="BOARD_ADMIN",
                board_code="DASH",
                actor="bench",
            )
            await auth.create_user(
                conn,
                email=CONSUMER,
                password=PASSWORD,
                role="CONSUMER",
                consumer_id=consumer,
                actor="bench",
            )
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        now -= timedelta(minutes=now.minute % 15)
        first = now - timedelta(days=days)
        month = first.date().replace(day=1)
        while month <= now.date():
            await conn.execute("SELECT ensure_readings_partition(%s)", (month,))
            month = (month + timedelta(days=32)).replace(day=1)
        await conn.commit()
        started = time.perf_counter()
        day = first
        while day <= now:  # a day at a time, in time order, as gateways deliver
            await conn.execute(
                """
                INSERT INTO readings (meter_id, quantity, ts, value, quality, gateway_id)
                SELECT m.id, q.quantity, t,
                       CASE q.quantity
                         WHEN '1.8.0' THEN 1000 + (m.id %% 13)
                           + extract(epoch FROM t - %(first)s) / 900.0
                             * (0.05 + (m.id %% 17) / 40.0)
                         WHEN '1.7.0' THEN (0.2 + (m.id %% 17) / 10.0)
                           * (1 + 0.5 * sin(extract(epoch FROM t) / 13750.0))
                         ELSE 230 + 6 * sin(extract(epoch FROM t) / 3600.0 + m.id)
                       END,
                       'ok', m.gateway_id
                FROM generate_series(%(day)s::timestamptz, %(end)s, '15 minutes') t
                CROSS JOIN meters m
                CROSS JOIN (VALUES ('1.8.0'), ('1.7.0'), ('32.7.0')) q(quantity)
                WHERE m.board_id = %(board)s
                ORDER BY t, m.id, q.quantity
                """,
                {
                    "first": first,
                    "day": day,
                    "end": min(now, day + timedelta(days=1, minutes=-15)),
                    "board": board_id,
                },
            )
            await conn.commit()
            day += timedelta(days=1)
        await conn.execute(
            "UPDATE meters SET last_reading_at = %s WHERE board_id = %s", (now, board_id)
        )
        await conn.commit()
        await conn.set_autocommit(True)
        await conn.execute("VACUUM (ANALYZE) readings")
        await conn.set_autocommit(False)
        count = (await (await conn.execute("SELECT count(*) AS n FROM readings")).fetchone())["n"]
        emit("fill_s", time.perf_counter() - started, "s", readings=count, note="setup")
        started = time.perf_counter()
        await aggregates.mark_dirty(conn, board_id, "Asia/Kolkata", first, now, now=now)
        await conn.commit()
        board_days = await aggregates.refresh(conn, max_days=10_000)
        emit("aggregate_backfill_s", time.perf_counter() - started, "s", board_days=board_days)
        started = time.perf_counter()
        await aggregates.mark_dirty(conn, board_id, "Asia/Kolkata", now, now, now=now)
        await conn.commit()
        await aggregates.refresh(conn)
        emit(
            "aggregate_today_s",
            time.perf_counter() - started,
            "s",
            note="what the job pays each pass while today's readings arrive",
        )
        today = datetime.now(INDIA).date()
        end = today.replace(day=1)
        start = (end - timedelta(days=1)).replace(day=1)
        started = time.perf_counter()
        operator = Principal(0, "SUPER_ADMIN", None, None, None)
        summary = await billing_runs.run(
            conn, operator, board_id=board_id, period_start=start, period_end=end
        )
        await conn.execute(
            "UPDATE invoices SET status = 'issued', issued_at = now()"
            " WHERE board_id = %s AND id %% 3 <> 0",
            (board_id,),
        )
        await conn.commit()
        emit(
            "billing_s",
            time.perf_counter() - started,
            "s",
            created=summary["created"],
            note="setup",
        )
        meters = [
            r["id"]
            for r in await (
                await conn.execute("SELECT id FROM meters WHERE board_id = %s", (board_id,))
            ).fetchall()
        ]
        invoices = [
            r["id"]
            for r in await (
                await conn.execute("SELECT id FROM invoices WHERE board_id = %s", (board_id,))
            ).fetchall()
        ]
        return {"board_id": board_id, "meters": meters, "invoices": invoices, "month": start}


def requests(world: dict) -> dict[str, callable]:
    """name -> (who, path maker): the console's pages and chart data."""
    board = world["board_id"]

    def week() -> dict[str, str]:
        now = datetime.now(UTC)
        return {"from": (now - timedelta(days=7)).isoformat(), "to": now.isoformat()}

    def meter_chart(quantity: str, interval: str):
        return lambda: (
            f"/api/v1/meters/{random.choice(world['meters'])}/readings",
            {"quantity": quantity, "interval": interval, **week()},
        )

    return {
        "page_overview": ("admin", lambda: ("/dashboard", {})),
        "page_meters": ("admin", lambda: ("/dashboard/meters", {"q": str(random.randint(1, 99))})),
        "page_meter": (
            "admin",
            lambda: (f"/dashboard/meters/{random.choice(world['meters'])}", {}),
        ),
        "page_billing": ("admin", lambda: ("/dashboard/billing", {})),
        "page_invoice": (
            "admin",
            lambda: (f"/dashboard/invoices/{random.choice(world['invoices'])}", {}),
        ),
        "page_alerts": ("admin", lambda: ("/dashboard/alerts", {})),
        "page_analytics": ("admin", lambda: ("/dashboard/analytics", {})),
        "page_consumers": ("admin", lambda: ("/dashboard/consumers", {})),
        "page_consumer_home": ("consumer", lambda: ("/dashboard/home", {})),
        "api_board_overview": (
            "admin",
            lambda: ("/api/v1/analytics/overview", {"board_id": board}),
        ),
        "api_board_load_7d": (
            "admin",
            lambda: ("/api/v1/analytics/load", {"board_id": board, "interval": "15min", **week()}),
        ),
        "api_board_load_30d": (
            "admin",
            lambda: (
                "/api/v1/analytics/load",
                {
                    "board_id": board,
                    "interval": "hour",
                    "from": (datetime.now(UTC) - timedelta(days=30)).isoformat(),
                    "to": datetime.now(UTC).isoformat(),
                },
            ),
        ),
        "api_consumption_by_consumer": (
            "admin",
            lambda: (
                "/api/v1/analytics/consumption",
                {
                    "board_id": board,
                    "group_by": "consumer",
                    "from": (date.today() - timedelta(days=30)).isoformat(),
                    "to": date.today().isoformat(),
                },
            ),
        ),
        "api_meter_power_7d": ("admin", meter_chart("1.7.0", "hour")),
        "api_meter_voltage_7d": ("admin", meter_chart("32.7.0", "hour")),
        "api_meter_energy_7d": ("admin", meter_chart("1.8.0", "day")),
        "api_meter_power_raw_1d": (
            "admin",
            lambda: (
                f"/api/v1/meters/{random.choice(world['meters'])}/readings",
                {
                    "quantity": "1.7.0",
                    "interval": "raw",
                    "from": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
                    "to": datetime.now(UTC).isoformat(),
                },
            ),
        ),
    }


TARGETS = {"page": "< 200", "api_meter": "< 100", "api_board_overview": "< 300"}


def target(name: str) -> str | None:
    return next((v for k, v in TARGETS.items() if name.startswith(k)), None)


async def timed(client: httpx.AsyncClient, make) -> float:
    path, params = make()
    started = time.perf_counter()
    response = await client.get(path, params=params)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{path}: {response.status_code} {response.text[:200]}")
    return elapsed


async def main(consumers: int, days: int, count: int, users: int) -> None:
    with tempfile.TemporaryDirectory() as folder, fresh_database(Path(folder)) as url:
        world = await fill(url, consumers, days)
        async with cloud_server(url, Path(folder), jobs_interval_s="0", pool_max_size="20") as base:
            clients = {}
            for who, email in (("admin", ADMIN), ("consumer", CONSUMER)):
                client = httpx.AsyncClient(base_url=base, timeout=120)
                login = await client.post(
                    "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
                )
                token = login.json()["access_token"]
                client.headers["Authorization"] = f"Bearer {token}"
                client.cookies.set("gg_access", token)
                clients[who] = client
            plan = requests(world)
            for who, make in plan.values():  # warm each once
                await timed(clients[who], make)
            for name, (who, make) in plan.items():
                times = [await timed(clients[who], make) for _ in range(count)]
                emit(f"{name}_p50_ms", statistics.median(times) * 1000, "ms")
                emit(
                    f"{name}_p95_ms",
                    statistics.quantiles(times, n=20)[18] * 1000,
                    "ms",
                    target=target(name),
                    concurrent=1,
                )
            for name, (who, make) in plan.items():

                async def person(who=who, make=make) -> list[float]:
                    async with httpx.AsyncClient(
                        base_url=base,
                        timeout=120,
                        headers=clients[who].headers,
                        cookies=clients[who].cookies,
                    ) as own:
                        return [await timed(own, make) for _ in range(count)]

                times = [
                    t for ts in await asyncio.gather(*(person() for _ in range(users))) for t in ts
                ]
                emit(f"{name}_p50_ms", statistics.median(times) * 1000, "ms", concurrent=users)
                emit(
                    f"{name}_p95_ms",
                    statistics.quantiles(times, n=20)[18] * 1000,
                    "ms",
                    target=target(name),
                    concurrent=users,
                )
            for client in clients.values():
                await client.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--consumers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--users", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.consumers, args.days, args.requests, args.users))
