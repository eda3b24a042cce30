"""The cloud's checks of the DLMS commands, at the API: a backfill needs a bounded range in the
past, a set_clock a sensible drift limit, both a meter of that gateway; what passes is queued
with its arguments as the gateway will read them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.cloud.conftest import Cloud, EnrolledGateway, staff_headers


async def setup(cloud: Cloud, gateway: EnrolledGateway) -> tuple[str, int, int]:
    """The gateway's commands address, a meter on it and a meter on no gateway."""
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT id, board_id FROM gateways WHERE gateway_code = %s", (gateway.code,)
        )
        found = await cursor.fetchone()
        cursor = await conn.execute(
            "INSERT INTO meters (board_id, gateway_id, external_id, model)"
            " VALUES (%s, %s, 'dlms-9', 'dlms') RETURNING id",
            (found["board_id"], found["id"]),
        )
        mine = (await cursor.fetchone())["id"]
        cursor = await conn.execute(
            "INSERT INTO meters (board_id, external_id, model) VALUES (%s, 'loose-9', 'dlms')"
            " RETURNING id",
            (found["board_id"],),
        )
        loose = (await cursor.fetchone())["id"]
        await conn.commit()
    return f"/api/v1/gateways/{found['id']}/commands", mine, loose


NOW = datetime.now(UTC)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"start": (NOW - timedelta(days=1)).isoformat()}, "a start and an end"),
        (
            {
                "start": (NOW - timedelta(hours=1)).isoformat(),
                "end": (NOW - timedelta(hours=2)).isoformat(),
            },
            "at or after its end",
        ),
        (
            {
                "start": (NOW - timedelta(days=100)).isoformat(),
                "end": (NOW - timedelta(days=5)).isoformat(),
            },
            "at most 90 days",
        ),
        (
            {
                "start": (NOW - timedelta(hours=1)).isoformat(),
                "end": (NOW + timedelta(days=1)).isoformat(),
            },
            "ends in the future",
        ),
        ({"start": "2026-01-01T00:00:00", "end": "2026-01-02T00:00:00"}, "timezone"),
    ],
)
async def test_a_backfill_range_is_checked(
    cloud: Cloud, board: str, gateway: EnrolledGateway, body: dict[str, Any], says: str
) -> None:
    url, meter, _ = await setup(cloud, gateway)
    admin = await staff_headers(cloud, board)
    response = await cloud.client.post(
        url, json={"kind": "backfill", "meter_id": meter, **body}, headers=admin
    )
    assert response.status_code == 422, response.text
    assert says in response.json()["detail"]


async def test_dlms_commands_are_queued_with_their_arguments(
    cloud: Cloud, board: str, gateway: EnrolledGateway
) -> None:
    url, meter, loose = await setup(cloud, gateway)
    admin = await staff_headers(cloud, board)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=90)  # the longest range allowed
    response = await cloud.client.post(
        url,
        json={
            "kind": "backfill",
            "meter_id": meter,
            "start": start.isoformat(),
            "end": (end.astimezone(tz=None)).isoformat(),
        },
        headers=admin,
    )
    assert response.status_code == 201, response.text
    assert response.json()["args"] == {
        "start": "2026-01-01T00:00:00Z",
        "end": "2026-04-01T00:00:00Z",
    }
    response = await cloud.client.post(
        url, json={"kind": "set_clock", "meter_id": meter, "max_drift_s": 5}, headers=admin
    )
    assert response.status_code == 201, response.text
    assert response.json()["args"] == {"max_drift_s": 5.0}
    response = await cloud.client.post(
        url, json={"kind": "set_clock", "meter_id": meter}, headers=admin
    )
    assert response.json()["args"] == {}  # the gateway's default limit, 30 s

    for bad in ({"max_drift_s": 0}, {"max_drift_s": 7200}, {}, {"meter_id": loose}):
        body = {"kind": "set_clock", "meter_id": meter} | bad
        if not bad:
            del body["meter_id"]
        response = await cloud.client.post(url, json=body, headers=admin)
        assert response.status_code == 422, (bad, response.text)
    response = await cloud.client.post(
        url, json={"kind": "set_clock", "meter_id": loose}, headers=admin
    )
    assert "is not read by gateway" in response.json()["detail"]
