"""Billing operations as the console drives them: a run recorded with its progress and outcome
(estimated bills, consumers without a meter and why), drafts issued in bulk, and what is owed by
age past the due date."""

from __future__ import annotations

from datetime import date, timedelta

from cloud.services import invoices
from tests.cloud.billing.test_invoices import (
    OCTOBER,
    Board,
    consumer_with_meter,
    flat_tariff,
    ist,
    run,
    setup,  # noqa: F401  (fixture)
    tariff,
)
from tests.cloud.conftest import Cloud


async def test_a_run_is_recorded_with_its_outcome(cloud: Cloud, setup: Board) -> None:  # noqa: F811
    await tariff(cloud, setup, [flat_tariff()])
    await consumer_with_meter(cloud, setup, [(ist(1), 100.0), (ist(1, month=11), 220.0)])
    # a consumer whose meter stopped reading mid-month: its bill is partly estimated from
    # September's (2 units a day)
    silent, _ = await consumer_with_meter(cloud, setup, [(ist(1), 100.0), (ist(12), 150.0)])
    async with cloud.pool.connection() as conn:
        await conn.execute(
            "INSERT INTO invoices (board_id, consumer_id, period_start, period_end, status,"
            " currency, units, total, amount_due, estimated, due_date) VALUES (%s, %s,"
            " '2026-09-01', '2026-10-01', 'paid', 'INR', 60, 300, 300, false, '2026-10-16')",
            (setup.id, silent),
        )
        await conn.execute(
            "INSERT INTO consumers (board_id, account_no, name) VALUES (%s, 'NO-METER', 'N')",
            (setup.id,),
        )
        await conn.commit()
    summary = await run(cloud, setup)
    assert (summary["created"], summary["unmeasured"], summary["failed"]) == (2, 1, 0), summary[
        "errors"
    ]
    assert summary["estimated"] == 1
    assert any("NO-METER" in e and "no meter" in e for e in summary["errors"])
    listed = await cloud.client.get(
        "/api/v1/billing/runs", params={"board_id": setup.id}, headers=setup.admin
    )
    [recorded] = listed.json()["items"]
    assert recorded["id"] == summary["run_id"]
    assert recorded["status"] == "done"
    assert (recorded["consumers"], recorded["measured"]) == (3, 3)
    assert (recorded["created"], recorded["estimated"], recorded["unmeasured"]) == (2, 1, 1)
    assert recorded["finished_at"] is not None
    one = await cloud.client.get(f"/api/v1/billing/runs/{summary['run_id']}", headers=setup.admin)
    assert one.json()["errors"] == recorded["errors"]
    assert recorded["errors"][0].startswith("N (NO-METER): no meter was installed")
    again = await run(cloud, setup)
    assert (again["created"], again["unchanged"]) == (0, 2)


async def test_drafts_are_issued_in_bulk(cloud: Cloud, setup: Board) -> None:  # noqa: F811
    await tariff(cloud, setup, [flat_tariff()])
    for n in range(3):
        await consumer_with_meter(cloud, setup, [(ist(1), 10.0), (ist(1, month=11), 20.0 + n)])
    await run(cloud, setup)
    drafts = await cloud.client.get(
        "/api/v1/invoices",
        params={"board_id": setup.id, "status": "draft", **OCTOBER},
        headers=setup.admin,
    )
    ids = [i["id"] for i in drafts.json()["items"]]
    assert len(ids) == 3
    await cloud.client.post(f"/api/v1/invoices/{ids[0]}/issue", headers=setup.admin)
    response = await cloud.client.post(
        "/api/v1/invoices/issue", json={"invoice_ids": ids}, headers=setup.admin
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["issued"] == ids[1:]
    assert [r["invoice_id"] for r in result["refused"]] == [ids[0]]
    assert "only when draft" in result["refused"][0]["reason"]
    issued = await cloud.client.get(
        "/api/v1/invoices", params={"board_id": setup.id, "status": "issued"}, headers=setup.admin
    )
    assert issued.json()["total"] == 3


async def test_aging_sorts_what_is_owed_by_days_late(cloud: Cloud, setup: Board) -> None:  # noqa: F811
    await tariff(cloud, setup, [flat_tariff()])
    await consumer_with_meter(cloud, setup, [(ist(1), 10.0), (ist(1, month=11), 30.0)])
    await run(cloud, setup)
    drafts = await cloud.client.get(
        "/api/v1/invoices", params={"board_id": setup.id, "status": "draft"}, headers=setup.admin
    )
    [invoice] = drafts.json()["items"]
    issued = await cloud.client.post(f"/api/v1/invoices/{invoice['id']}/issue", headers=setup.admin)
    await cloud.client.post(
        f"/api/v1/invoices/{invoice['id']}/payments",
        json={"amount": "40.00"},
        headers=setup.admin,
    )
    due = date.fromisoformat(issued.json()["due_date"])
    async with cloud.pool.connection() as conn:
        for days_late, bucket in (
            (-3, 0),
            (-1, 0),
            (0, 1),
            (10, 1),
            (30, 1),
            (31, 2),
            (45, 2),
            (75, 3),
            (90, 3),
            (91, 4),
            (200, 4),
        ):
            result = await invoices.aging(
                conn, _operator(), setup.id, today=due + timedelta(days=days_late)
            )
            assert result["outstanding"] == 60  # 20 units at 5.00 is 100; 40 paid
            assert [b["invoices"] for b in result["buckets"]] == [
                1 if i == bucket else 0 for i in range(5)
            ], days_late
    api = await cloud.client.get(
        "/api/v1/billing/aging", params={"board_id": setup.id}, headers=setup.admin
    )
    assert api.status_code == 200
    assert api.json()["currency"] == "INR"


def _operator():
    from cloud.access import Principal

    return Principal(0, "SUPER_ADMIN", None, None, None)


async def test_a_cancelled_bill_is_billed_anew_and_a_late_issue_gets_days_to_pay(
    cloud: Cloud,
    setup: Board,  # noqa: F811
) -> None:
    await tariff(cloud, setup, [flat_tariff()])
    await consumer_with_meter(cloud, setup, [(ist(1), 10.0), (ist(1, month=11), 30.0)])
    await run(cloud, setup)
    listed = await cloud.client.get(
        "/api/v1/invoices", params={"board_id": setup.id, **OCTOBER}, headers=setup.admin
    )
    [first] = listed.json()["items"]
    cancelled = await cloud.client.post(
        f"/api/v1/invoices/{first['id']}/cancel", headers=setup.admin
    )
    assert cancelled.json()["status"] == "cancelled"
    again = await run(cloud, setup)
    assert (again["created"], again["revised"], again["unchanged"]) == (0, 1, 0)
    listed = await cloud.client.get(
        "/api/v1/invoices", params={"board_id": setup.id, **OCTOBER}, headers=setup.admin
    )
    versions = {i["version"]: i for i in listed.json()["items"]}
    assert versions[1]["status"] == "cancelled"
    second = versions[2]
    assert (second["version"], second["status"]) == (2, "draft")
    assert second["amount_due"] == second["total"] == "100.00"  # nothing of version 1 credited
    body = (await cloud.client.get(f"/api/v1/invoices/{second['id']}", headers=setup.admin)).json()
    assert not any(line["amount"].startswith("-") for line in body["lines"])
    # made today (after 1 November + 15 days), the draft is due 15 days from today ...
    soonest = date.today() + timedelta(days=invoices.DUE_DAYS - 1)  # the board's day may lead
    assert date.fromisoformat(second["due_date"]) >= max(soonest, date(2026, 11, 16))
    # ... and a draft that waited past its due date is given its days again when issued
    async with cloud.pool.connection() as conn:
        await conn.execute(
            "UPDATE invoices SET due_date = '2026-11-16' WHERE id = %s", (second["id"],)
        )
        await conn.commit()
    issued = await cloud.client.post(f"/api/v1/invoices/{second['id']}/issue", headers=setup.admin)
    assert issued.status_code == 200, issued.text
    assert date.fromisoformat(issued.json()["due_date"]) >= soonest
