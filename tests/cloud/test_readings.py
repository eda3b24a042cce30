"""Readings queries: raw, energy per bucket from register deltas, min/avg/max; in scope only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cloud.services import auth
from shared import Batch, Reading, seal_batch
from tests.cloud.conftest import Cloud, EnrolledGateway

PASSWORD = "correct horse battery"
DAY = datetime(2026, 10, 10, tzinfo=UTC)  # 05:30 IST on the 10th


async def setup(cloud: Cloud, gateway: EnrolledGateway) -> tuple[dict[str, str], int]:
    """Two days of 15-minute energy reads (+0.25 kWh each) and voltage, for meter em-1."""
    readings = []
    seq = 1
    for step in range(2 * 96 + 1):
        ts = DAY + timedelta(minutes=15 * step)
        readings.append(
            Reading(seq=seq, meter_id="em-1", quantity="1.8.0", ts=ts, value=500 + 0.25 * step)
        )
        readings.append(
            Reading(seq=seq + 1, meter_id="em-1", quantity="32.7.0", ts=ts, value=220 + step % 20)
        )
        seq += 2
    batch = Batch(
        gateway_id=gateway.code,
        batch_id=__import__("uuid").uuid4(),
        first_seq=1,
        last_seq=seq - 1,
        sent_at=datetime.now(UTC),
        readings=readings,
    )
    sealed = seal_batch(batch, gateway.key)
    assert (
        await cloud.client.post(
            "/api/v1/ingest/batches", content=sealed.body, headers=sealed.headers
        )
    ).status_code == 200
    async with cloud.pool.connection() as conn:
        email = f"reader-{gateway.code}@example.in"
        await auth.create_user(
            conn,
            email=email,
            password=PASSWORD,
            role="SUPPORT_AGENT",
            board_code=gateway.board,
            actor="test",
        )
        cursor = await conn.execute(
            "SELECT id FROM meters WHERE external_id = 'em-1'"
            " AND gateway_id = (SELECT id FROM gateways"
            " WHERE gateway_code = %s)",
            (gateway.code,),
        )
        meter_id = (await cursor.fetchone())["id"]
    token = (
        await cloud.client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}, meter_id


def url(meter_id: int, quantity: str, start: datetime, end: datetime, interval: str) -> str:
    return (
        f"/api/v1/meters/{meter_id}/readings?quantity={quantity}&interval={interval}"
        f"&from={start.isoformat().replace('+00:00', 'Z')}"
        f"&to={end.isoformat().replace('+00:00', 'Z')}"
    )


async def test_daily_energy_in_the_boards_time_zone(cloud: Cloud, gateway: EnrolledGateway) -> None:
    headers, meter_id = await setup(cloud, gateway)
    # the IST day 11 Oct runs from 10 Oct 18:30 UTC to 11 Oct 18:30 UTC: 96 deltas of 0.25
    start = datetime(2026, 10, 10, 18, 30, tzinfo=UTC)
    response = await cloud.client.get(
        url(meter_id, "1.8.0", start, start + timedelta(days=1), "day"), headers=headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["time_zone"] == "Asia/Kolkata"
    [day] = body["points"]
    assert day["energy"] == pytest.approx(96 * 0.25)
    assert day["register_reset"] is False


async def test_hourly_energy_sums_to_the_register_difference(
    cloud: Cloud, gateway: EnrolledGateway
) -> None:
    headers, meter_id = await setup(cloud, gateway)
    # 08:00-20:00 IST: twelve whole local hours, each starting at :30 UTC
    start, end = DAY + timedelta(hours=2, minutes=30), DAY + timedelta(hours=14, minutes=30)
    hours = (
        await cloud.client.get(url(meter_id, "1.8.0", start, end, "hour"), headers=headers)
    ).json()["points"]
    assert len(hours) == 12
    assert hours[0]["bucket"] == "2026-10-10T02:30:00Z"
    assert all(h["energy"] == pytest.approx(1.0) for h in hours)
    assert sum(h["energy"] for h in hours) == pytest.approx(12 * 4 * 0.25)


async def test_instantaneous_min_avg_max_and_raw(cloud: Cloud, gateway: EnrolledGateway) -> None:
    headers, meter_id = await setup(cloud, gateway)
    start = DAY
    quarter = (
        await cloud.client.get(
            url(meter_id, "32.7.0", start, start + timedelta(hours=1), "15min"), headers=headers
        )
    ).json()["points"]
    assert [p["max"] for p in quarter] == [220, 221, 222, 223]
    raw = (
        await cloud.client.get(
            url(meter_id, "32.7.0", start, start + timedelta(hours=1), "raw"), headers=headers
        )
    ).json()
    assert [p["value"] for p in raw["points"]] == [220, 221, 222, 223]
    assert raw["unit"] == "V"


async def test_bad_queries_and_scope(cloud: Cloud, gateway: EnrolledGateway) -> None:
    headers, meter_id = await setup(cloud, gateway)
    naive = (
        f"/api/v1/meters/{meter_id}/readings?quantity=1.8.0&from=2026-10-10T00:00:00"
        "&to=2026-10-11T00:00:00Z"
    )
    assert (await cloud.client.get(naive, headers=headers)).status_code == 422
    backwards = url(meter_id, "1.8.0", DAY, DAY - timedelta(hours=1), "hour")
    assert (await cloud.client.get(backwards, headers=headers)).status_code == 422
    too_long = url(meter_id, "1.8.0", DAY, DAY + timedelta(days=40), "raw")
    assert (await cloud.client.get(too_long, headers=headers)).status_code == 422
    unknown = url(meter_id, "9.9.9", DAY, DAY + timedelta(hours=1), "hour")
    assert (await cloud.client.get(unknown, headers=headers)).status_code == 422
    elsewhere = url(meter_id + 10_000_000, "1.8.0", DAY, DAY + timedelta(hours=1), "hour")
    assert (await cloud.client.get(elsewhere, headers=headers)).status_code == 404
    anonymous = url(meter_id, "1.8.0", DAY, DAY + timedelta(hours=1), "hour")
    assert (await cloud.client.get(anonymous)).status_code == 401


async def test_a_boards_readings_add_up_its_meters(cloud: Cloud, gateway: EnrolledGateway) -> None:
    """Board energy is the sum of each meter's own deltas (a second meter with a register 10^6
    kWh higher must not create a jump); board power sums each meter's mean."""
    headers, _ = await setup(cloud, gateway)
    readings = []
    for step in range(2 * 96 + 1):
        ts = DAY + timedelta(minutes=15 * step)
        seq = 10_000 + 2 * step
        readings.append(
            Reading(seq=seq, meter_id="em-2", quantity="1.8.0", ts=ts, value=1e6 + 0.5 * step)
        )
        readings.append(
            Reading(seq=seq + 1, meter_id="em-2", quantity="1.7.0", ts=ts, value=2.0 + step % 2)
        )
        readings.append(
            Reading(seq=seq + 100_000, meter_id="em-1", quantity="1.7.0", ts=ts, value=1.0)
        )
    batch = Batch(
        gateway_id=gateway.code,
        batch_id=__import__("uuid").uuid4(),
        first_seq=10_000,
        last_seq=max(r.seq for r in readings),
        sent_at=datetime.now(UTC),
        readings=readings,
    )
    sealed = seal_batch(batch, gateway.key)
    response = await cloud.client.post(
        "/api/v1/ingest/batches", content=sealed.body, headers=sealed.headers
    )
    assert response.status_code == 200, response.text
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute("SELECT id FROM boards WHERE code = %s", (gateway.board,))
        board_id = (await cursor.fetchone())["id"]
    start = datetime(2026, 10, 10, 18, 30, tzinfo=UTC)  # the IST day of 11 Oct
    base = f"/api/v1/boards/{board_id}/readings?from={start.isoformat()}".replace("+00:00", "Z")
    end = (start + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    energy = await cloud.client.get(f"{base}&to={end}&quantity=1.8.0&interval=day", headers=headers)
    assert energy.status_code == 200, energy.text
    [day] = energy.json()["points"]
    assert day["energy"] == pytest.approx(96 * 0.25 + 96 * 0.5)
    assert day["meters"] == 2
    power = await cloud.client.get(f"{base}&to={end}&quantity=1.7.0&interval=hour", headers=headers)
    hours = power.json()["points"]
    assert len(hours) == 24
    # em-1 draws 1 kW, em-2 alternates 2 and 3 kW: the board draws 3.5 kW on average
    assert all(h["sum"] == pytest.approx(3.5) and h["meters"] == 2 for h in hours)
    assert all((h["min"], h["max"]) == (1.0, 3.0) for h in hours)
    raw = await cloud.client.get(f"{base}&to={end}&quantity=1.7.0&interval=raw", headers=headers)
    assert raw.status_code == 422
    elsewhere = await cloud.client.get(
        f"/api/v1/boards/{board_id + 10_000_000}/readings?quantity=1.8.0&interval=day"
        "&from=2026-10-10T00:00Z&to=2026-10-11T00:00Z",
        headers=headers,
    )
    assert elsewhere.status_code == 404
