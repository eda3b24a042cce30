"""Billing by a meter's status during the period: under maintenance or faulty at any moment of
it, the bill is estimated and says why; inactive throughout, the consumer is not billed; a status
given after the period changes nothing of it."""

from __future__ import annotations

from datetime import datetime

from tests.cloud.billing.test_invoices import (
    Board,
    consumer_with_meter,
    flat_tariff,
    invoices_of,
    ist,
    run,
    setup,  # noqa: F401  (fixture)
    tariff,
)
from tests.cloud.conftest import Cloud

SEPTEMBER = {"period_start": "2026-09-01", "period_end": "2026-10-01"}
READS = [(ist(1, month=9), 100.0), (ist(1, month=10), 400.0), (ist(1, month=11), 1000.0)]


async def mark(cloud: Cloud, board: Board, meter: int, status: str, since: datetime) -> None:
    """The status set through the API, dated back to `since` (when the technician found it)."""
    response = await cloud.client.post(
        f"/api/v1/meters/{meter}/status",
        json={"status": status, "reason": "CT burnt"},
        headers=board.admin,
    )
    assert response.status_code == 200, response.text
    async with cloud.pool.connection() as conn:
        await conn.execute(
            "UPDATE meter_status_changes SET at = %s WHERE meter_id = %s", (since, meter)
        )
        await conn.commit()


async def test_a_meter_under_maintenance_or_faulty_in_the_period_is_estimated(
    cloud: Cloud,
    setup: Board,  # noqa: F811
) -> None:
    await tariff(cloud, setup, [flat_tariff()])
    for status in ("under_maintenance", "faulty"):
        consumer, meter = await consumer_with_meter(cloud, setup, READS)
        await run(cloud, setup, SEPTEMBER)  # 300 units measured in 30 days: 10 a day
        await mark(cloud, setup, meter, status, ist(10))
        outcome = await run(cloud, setup)
        assert outcome["estimated"] >= 1
        october = (await invoices_of(cloud, setup, consumer))[-1]
        assert october["period_start"] == "2026-10-01"
        assert october["estimated"] is True  # not the 600 units its register says
        assert float(october["units"]) == 310.0  # 10 a day x 31 days
        notes = " ".join(october["details"]["notes"])
        assert f"{status.replace('_', ' ')} during the period" in notes, notes


async def test_inactive_throughout_is_not_billed_and_a_later_status_changes_nothing(
    cloud: Cloud,
    setup: Board,  # noqa: F811
) -> None:
    await tariff(cloud, setup, [flat_tariff()])
    idle, idle_meter = await consumer_with_meter(cloud, setup, READS)
    await mark(cloud, setup, idle_meter, "inactive", ist(1, month=8))
    later, later_meter = await consumer_with_meter(cloud, setup, READS)
    await mark(cloud, setup, later_meter, "faulty", ist(5, month=11))
    outcome = await run(cloud, setup)
    assert outcome["unmeasured"] == 1
    assert any("every meter was inactive" in e for e in outcome["errors"]), outcome["errors"]
    assert await invoices_of(cloud, setup, idle) == []
    [october] = await invoices_of(cloud, setup, later)
    assert (october["estimated"], float(october["units"])) == (False, 600.0)
