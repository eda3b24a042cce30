"""Temporary tariff overrides through the API: created, listed, taken off and audited; a billing
run prices the days inside the window under the override, to the paisa of a hand computation;
the estimate uses it too."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

from cloud.access import Principal
from cloud.services import estimates
from tests.cloud.billing.test_regulator_bills import bill_through_the_api, lines_of
from tests.cloud.conftest import Cloud, staff_headers

# telescopic: the first 100 units of a month at 3.00, the rest at 5.00; 60.00 a month fixed
SLABS = {
    "energy": {
        "mode": "telescopic",
        "slabs": [{"up_to": "100", "rate": "3.00"}, {"rate": "5.00"}],
    },
    "fixed": {"per_connection": "60"},
}
HEAT_WAVE = "heat wave relief"


async def test_a_run_prices_the_window_under_a_multiplier(cloud: Cloud, board: str) -> None:
    created: dict = {}

    async def override(board_id: int, admin: dict[str, str]) -> None:
        response = await cloud.client.post(
            f"/api/v1/boards/{board_id}/tariff-overrides",
            json={
                "category": "domestic",
                "kind": "multiplier",
                "value": "1.10",
                "starts_on": "2026-10-01",
                "ends_on": "2026-10-11",
                "reason": HEAT_WAVE,
            },
            headers=admin,
        )
        assert response.status_code == 201, response.text
        created.update(response.json())

    invoices = await bill_through_the_api(
        cloud, board, SLABS, ["310"], ("2026-10-01", "2026-11-01"), before_run=override
    )
    invoice = invoices["310"]
    # By hand. 310 units over 31 days; 1-10 Oct (10 days) under the override: 100 units,
    # limits 100 x 10/31 = 32.258064..., rates x 1.1 = 3.30 and 5.50:
    #   32.2580645 x 3.30 = 106.45;  67.7419355 x 5.50 = 372.58;  fixed 60 x 10/31 = 19.35
    # 11-31 Oct (21 days): 210 units, limit 100 x 21/31 = 67.741935...:
    #   67.7419355 x 3.00 = 203.23;  142.2580645 x 5.00 = 711.29;  fixed 60 x 21/31 = 40.65
    # (Without the override: 300 + 1050 + 60 = 1410.00; the override adds 10 % of the
    # energy of the 10 days: 1350 x 10/31 x 0.1 = 43.55.)
    window = f"override 1.1× from 1 to 10 Oct ({HEAT_WAVE})"
    limit_first, limit_rest = D(100) * 10 / 31, D(100) * 21 / 31

    def stored(value: D) -> D:  # quantities are kept to 6 places
        return value.quantize(D("0.000001"))

    assert lines_of(invoice) == [
        (
            f"Energy, slab 0 to 32.26 kWh (limits for 10 of 31 days of October) ({window})",
            stored(limit_first),
            D("3.300"),
            D("106.45"),
        ),
        (
            f"Energy, slab above 32.26 kWh (limits for 10 of 31 days of October) ({window})",
            stored(D(100) - limit_first),
            D("5.500"),
            D("372.58"),
        ),
        (f"Fixed charge per connection ({window})", stored(D(10) / 31), D(60), D("19.35")),
        (
            "Energy, slab 0 to 67.74 kWh (limits for 21 of 31 days of October) (11 Oct-31 Oct)",
            stored(limit_rest),
            D(3),
            D("203.23"),
        ),
        (
            "Energy, slab above 67.74 kWh (limits for 21 of 31 days of October) (11 Oct-31 Oct)",
            stored(D(210) - limit_rest),
            D(5),
            D("711.29"),
        ),
        ("Fixed charge per connection (11 Oct-31 Oct)", stored(D(21) / 31), D(60), D("40.65")),
    ]
    assert D(invoice["total"]) == D("1453.55") == D("1410.00") + D("43.55")
    segments = invoice["details"]["segments"]
    assert [s.get("tariff_override") for s in segments] == [created["id"], None]


async def test_an_energy_rate_replaces_the_slabs_and_the_estimate_uses_it(
    cloud: Cloud, board: str
) -> None:
    async def override(board_id: int, admin: dict[str, str]) -> None:
        response = await cloud.client.post(
            f"/api/v1/boards/{board_id}/tariff-overrides",
            json={
                "category": "domestic",
                "kind": "energy_rate",
                "value": "2.5",
                "starts_on": "2026-10-01",
                "ends_on": "2026-11-01",
                "reason": "festival tariff",
            },
            headers=admin,
        )
        assert response.status_code == 201, response.text

    invoices = await bill_through_the_api(
        cloud, board, SLABS, ["310"], ("2026-10-01", "2026-11-01"), before_run=override
    )
    # the whole month under the override: 310 x 2.50 = 775.00, fixed 60.00
    window = "override flat rate 2.5 a unit from 1 to 31 Oct (festival tariff)"
    assert lines_of(invoices["310"]) == [
        (f"Energy ({window})", D(310), D("2.5"), D("775.00")),
        (f"Fixed charge per connection ({window})", D(1), D(60), D("60.00")),
    ]
    # the estimate of October as it stood on 16 Oct (a read that morning: 150 units in 15.25
    # days) is priced under it as well
    invoice = invoices["310"]
    async with cloud.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO readings (meter_id, quantity, ts, value, quality, gateway_id)"
            " SELECT r.meter_id, r.quantity, '2026-10-16T00:30:00Z', r.value + 150, 'ok',"
            " r.gateway_id FROM readings r JOIN meters m ON m.id = r.meter_id"
            " WHERE m.consumer_id = %s AND r.ts = '2026-09-30T18:30:00Z'",
            (invoice["consumer_id"],),
        )
        await conn.commit()
        guess = await estimates.estimate(
            conn,
            Principal(0, "SUPER_ADMIN", None, None, None),
            invoice["consumer_id"],
            now=datetime(2026, 10, 16, 6, tzinfo=UTC),
        )
    assert guess["lines"][0]["description"] == f"Energy ({window})"
    assert guess["lines"][0]["rate"] == D("2.5")


async def test_overrides_are_listed_taken_off_and_audited(cloud: Cloud, board: str) -> None:
    admin = await staff_headers(cloud, board)
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute("SELECT id FROM boards WHERE code = %s", (board,))
        board_id = (await cursor.fetchone())["id"]
    made = await cloud.client.post(
        "/api/v1/tariffs",
        json={"board_id": board_id, "category": "domestic", "name": "Domestic"},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    url = f"/api/v1/boards/{board_id}/tariff-overrides"
    body = {
        "category": "domestic",
        "kind": "multiplier",
        "value": "0.9",
        "starts_on": "2026-11-20",
        "ends_on": "2026-12-20",
        "reason": "monsoon relief",
    }
    created = await cloud.client.post(url, json=body, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["starts_at"] == "2026-11-19T18:30:00Z"  # the board's midnight, in UTC
    clash = await cloud.client.post(
        url, json={**body, "starts_on": "2026-12-19", "ends_on": "2027-01-10"}, headers=admin
    )
    assert clash.status_code == 409, clash.text
    too_long = await cloud.client.post(
        url, json={**body, "starts_on": "2027-01-01", "ends_on": "2028-01-03"}, headers=admin
    )
    assert too_long.status_code == 422, too_long.text
    no_tariff = await cloud.client.post(url, json={**body, "category": "commercial"}, headers=admin)
    assert no_tariff.status_code == 422, no_tariff.text
    listed = await cloud.client.get(url, headers=admin)
    assert [(o["id"], o["state"]) for o in listed.json()] == [(created.json()["id"], "active")]
    override_id = created.json()["id"]
    removed = await cloud.client.delete(f"/api/v1/tariff-overrides/{override_id}", headers=admin)
    assert removed.status_code == 200, removed.text
    assert removed.json()["state"] == "removed"
    again = await cloud.client.delete(f"/api/v1/tariff-overrides/{override_id}", headers=admin)
    assert again.status_code == 409
    # taken off, its window is free again from today
    after = await cloud.client.post(
        url, json={**body, "starts_on": "2026-12-01", "ends_on": "2026-12-10"}, headers=admin
    )
    assert after.status_code == 201, after.text
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT action FROM audit_log WHERE entity = 'tariff_override' AND entity_id = %s"
            " ORDER BY id",
            (str(override_id),),
        )
        assert [r["action"] for r in await cursor.fetchall()] == ["create", "remove"]
