"""Thirty days offline: 16 meters read every minute, the cloud unreachable, a disk budget smaller
than the raw data. After reconnection each meter's daily energy in the cloud equals the
simulator's truth, and the store never grew past its budget."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from edge.config import load_config
from edge.daemon import Daemon
from edge.store import Store
from edge.sync import Syncer
from firmware_sim.clock import ManualClock
from firmware_sim.fleet import physics_for
from shared import Quality, Sample, read_private_key, write_private_key
from tests.cloud.conftest import Cloud, EnrolledGateway
from tests.support.cloud_link import link

START = datetime(2026, 9, 30, 18, 30, tzinfo=UTC)  # 1 October, 00:00 in India
DAYS = 30
METERS = 16
BUDGET_MB = 8


def write_config(tmp_path: Path, gateway: EnrolledGateway) -> Path:
    write_private_key(tmp_path / "data" / "gateway.key", gateway.key)
    path = tmp_path / "edge.toml"
    path.write_text(
        f"""
[gateway]
id = "{gateway.code}"

[cloud]
url = "http://cloud"
batch_readings = 10000
retry_max_s = 1

[store]
disk_budget_mb = {BUDGET_MB}

[clock]
require_ntp = false
"""
    )
    return path


@pytest.mark.slow
async def test_thirty_days_offline_lose_no_energy(
    cloud: Cloud, gateway: EnrolledGateway, tmp_path: Path
) -> None:
    config = load_config(write_config(tmp_path, gateway))
    daemon = Daemon(config)
    daemon._open_store()
    daemon._synced = True
    clock = ManualClock(START)
    # one-minute load slots: the physics integrates exactly, at a cost this test can afford
    meters = [
        replace(physics_for(seed, 3 if seed % 2 else 1, clock), slot_s=60.0)
        for seed in range(METERS)
    ]
    truth: dict[tuple[int, int], float] = {}  # (meter, day) -> register at the day's start
    budget = BUDGET_MB * 1024 * 1024
    largest = 0
    raw_rows = 0
    t0 = START.timestamp()
    for minute in range(DAYS * 1440 + 1):
        t = t0 + 60 * minute
        ts = START + timedelta(minutes=minute)
        for index, physics in enumerate(meters):
            physics.advance_to(t)
            energy = physics.registers()["1.8.0"]
            power, _, _ = physics._slot_power(math.floor(t / physics.slot_s))
            if minute % 1440 == 0:
                truth[(index, minute // 1440)] = energy
            await daemon.on_samples(
                f"m{index:02d}",
                [
                    Sample.model_construct(
                        meter_id=f"m{index:02d}",
                        quantity="1.8.0",
                        ts=ts,
                        value=energy,
                        quality=Quality.OK,
                        unit="kWh",
                    ),
                    Sample.model_construct(
                        meter_id=f"m{index:02d}",
                        quantity="1.7.0",
                        ts=ts,
                        value=max(power, 0.0),
                        quality=Quality.OK,
                        unit="kW",
                    ),
                ],
                False,
            )
            raw_rows += 2
        if minute % 60 == 0:  # the writer's cycle, compressed in time
            await daemon._flush()
            largest = max(largest, await daemon.store(Store.size_bytes))
    await daemon._flush()
    largest = max(largest, await daemon.store(Store.size_bytes))
    assert largest <= budget, f"store grew to {largest} bytes, over the {budget} budget"
    events = await daemon.store(Store.recent_events, 1_000_000)
    assert any(e.kind == "disk_budget_downsampled" for e in events)

    # the cloud is back: drain the backlog at full (remaining) resolution
    sync = Syncer(
        gateway_id=config.gateway.id,
        config=config.cloud,
        key=read_private_key(config.key_path),
        store_call=daemon.store,
        clock_state=lambda: (True, 0.0),
        transport=link(httpx.ASGITransport(app=cloud.client._transport.app)),
    )
    await sync.drain()
    await sync.close()
    assert (await daemon.store(Store.backlog))[0] == 0
    daemon.store.shutdown()

    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) AS n FROM readings r JOIN gateways g ON g.id = r.gateway_id"
            " WHERE g.gateway_code = %s",
            (gateway.code,),
        )
        arrived = (await cursor.fetchone())["n"]
        assert arrived < raw_rows, "the raw data did not fit: it was downsampled"
        for index in range(METERS):
            cursor = await conn.execute(
                "SELECT r.ts, r.value FROM readings r JOIN meters m ON m.id = r.meter_id"
                " JOIN gateways g ON g.id = m.gateway_id WHERE g.gateway_code = %s"
                " AND m.external_id = %s AND r.quantity = '1.8.0' AND r.ts = ANY(%s)",
                (
                    gateway.code,
                    f"m{index:02d}",
                    [START + timedelta(days=d) for d in range(DAYS + 1)],
                ),
            )
            boundary = {row["ts"]: row["value"] for row in await cursor.fetchall()}
            for day in range(DAYS):
                start = boundary[START + timedelta(days=day)]
                end = boundary[START + timedelta(days=day + 1)]
                expected = truth[(index, day + 1)] - truth[(index, day)]
                assert end - start == expected, (index, day)  # bit for bit
