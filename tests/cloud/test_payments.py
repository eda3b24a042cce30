"""Payments by the provider's webhook, a consumer's payment history and the invoice's CSV,
through the app over HTTP against real PostgreSQL.

A replayed or tampered webhook changes nothing; a valid one settles the bill once; a payment
that cannot settle its bill is kept unmatched, never dropped.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest

from cloud.access import Principal
from cloud.payments import razorpay
from cloud.services import auth, invoices
from cloud.settings import CloudSettings
from tests.cloud.conftest import Cloud, open_cloud

SECRET = "whsec-for-the-payment-tests"
PASSWORD = "correct horse battery"
WEBHOOK = "/api/v1/payments/webhook"
PAID_AT = datetime(2026, 11, 20, 6, 30, tzinfo=UTC)


@pytest.fixture
async def cloud(database_url: str, tmp_path: Path) -> AsyncIterator[Cloud]:
    async with open_cloud(database_url, tmp_path / "cloud", payment_webhook_secret=SECRET) as c:
        yield c


@dataclass
class Bill:
    id: int
    board_id: int
    consumer_id: int
    staff: dict[str, str]


async def login(cloud: Cloud, email: str) -> dict[str, str]:
    response = await cloud.client.post(
        "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def add_user(cloud: Cloud, **scope: object) -> dict[str, str]:
    email = f"u-{uuid.uuid4().hex[:8]}@example.in"
    async with cloud.pool.connection() as conn:
        await auth.create_user(conn, email=email, password=PASSWORD, actor="t", **scope)
    return await login(cloud, email)


async def issued_bill(
    cloud: Cloud, board: str, *, amount_due: str = "500.00", status: str = "issued"
) -> Bill:
    """An issued bill of 500.00 INR with two lines, for a new consumer of `board`."""
    tag = uuid.uuid4().hex[:8]
    async with cloud.pool.connection() as conn:
        board_id = (
            await (await conn.execute("SELECT id FROM boards WHERE code = %s", (board,))).fetchone()
        )["id"]
        consumer = (
            await (
                await conn.execute(
                    "INSERT INTO consumers (board_id, account_no, name) VALUES (%s, %s, %s)"
                    " RETURNING id",
                    (board_id, f"AC-{tag}", "=Ravi Kumar"),
                )
            ).fetchone()
        )["id"]
        invoice = (
            await (
                await conn.execute(
                    "INSERT INTO invoices (board_id, consumer_id, period_start, period_end, status,"
                    " currency, units, total, amount_due, estimated, due_date, issued_at)"
                    " VALUES (%s, %s, '2026-10-01', '2026-11-01', %s, 'INR', 123.456789, %s, %s,"
                    " false, '2026-11-16', '2026-11-01T05:00Z') RETURNING id",
                    (board_id, consumer, status, amount_due, amount_due),
                )
            ).fetchone()
        )["id"]
        for position, (code, description, quantity, rate, amount) in enumerate(
            (
                ("energy", "Energy 123.456789 kWh at 3.25", "123.456789", "3.250000", "401.23"),
                ("fixed", "Fixed charge", "1", "98.770000", "98.77"),
            )
        ):
            await conn.execute(
                "INSERT INTO invoice_lines (invoice_id, position, code, description, quantity,"
                " unit, rate, amount) VALUES (%s, %s, %s, %s, %s, 'kWh', %s, %s)",
                (invoice, position, code, description, quantity, rate, amount),
            )
        await conn.commit()
    staff = await add_user(cloud, role="BOARD_ADMIN", board_code=board)
    return Bill(invoice, board_id, consumer, staff)


def event(
    invoice: object, *, paise: int = 50_000, currency: str = "INR", payment_id: str | None = None
) -> bytes:
    """A `payment.captured` event as Razorpay sends it."""
    entity = {
        "id": payment_id or f"pay_{uuid.uuid4().hex[:14]}",
        "entity": "payment",
        "amount": paise,
        "currency": currency,
        "status": "captured",
        "method": "upi",
        "created_at": int(PAID_AT.timestamp()),
        "notes": {"invoice_id": str(invoice)} if invoice is not None else [],
    }
    body = {
        "entity": "event",
        "account_id": "acc_BFQ7uQEaa7j2z7",
        "event": "payment.captured",
        "contains": ["payment"],
        "payload": {"payment": {"entity": entity}},
        "created_at": int(PAID_AT.timestamp()) + 1,
    }
    return json.dumps(body).encode()


async def deliver(cloud: Cloud, body: bytes, signature: str | None = None):
    headers = {"Content-Type": "application/json"}
    signature = razorpay.sign(SECRET, body) if signature is None else signature
    if signature:
        headers[razorpay.SIGNATURE_HEADER] = signature
    return await cloud.client.post(WEBHOOK, content=body, headers=headers)


async def fingerprint(cloud: Cloud) -> dict[str, str]:
    """Every row that a payment could write or change, digested per table."""
    async with cloud.pool.connection() as conn:
        digests = {}
        for table in ("payments", "provider_payments", "invoices", "audit_log", "notifications"):
            cursor = await conn.execute(
                f"SELECT count(*) AS n, md5(coalesce(string_agg(t::text, '|' ORDER BY t.id), ''))"
                f" AS digest FROM {table} t"
            )
            row = await cursor.fetchone()
            digests[table] = f"{row['n']}:{row['digest']}"
        return digests


async def the_bill(cloud: Cloud, bill: Bill) -> dict:
    response = await cloud.client.get(f"/api/v1/invoices/{bill.id}", headers=bill.staff)
    assert response.status_code == 200, response.text
    return response.json()


async def kept(cloud: Cloud, payment_id: str) -> dict:
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT * FROM provider_payments WHERE provider_payment_id = %s", (payment_id,)
        )
        return await cursor.fetchone()


async def test_a_valid_webhook_settles_the_bill_once_and_a_replay_changes_nothing(
    cloud: Cloud, board: str
) -> None:
    bill = await issued_bill(cloud, board)
    body = event(bill.id, payment_id="pay_settle_" + uuid.uuid4().hex[:8])
    first = await deliver(cloud, body)
    assert first.status_code == 200, first.text
    assert first.json()["outcome"] == "settled"
    paid = await the_bill(cloud, bill)
    assert paid["status"] == "paid"
    assert D(paid["paid"]) == D("500.00")
    [payment] = paid["payments"]
    assert D(payment["amount"]) == D("500.00")
    assert payment["via"] == "razorpay"
    assert datetime.fromisoformat(payment["paid_at"]) == PAID_AT
    async with cloud.pool.connection() as conn:
        audited = await (
            await conn.execute(
                "SELECT action, entity FROM audit_log WHERE actor = 'provider:razorpay'"
                " AND ((entity = 'invoice' AND entity_id = %s) OR (entity = 'provider_payment'"
                " AND after->>'invoice_id' = %s)) ORDER BY id",
                (str(bill.id), str(bill.id)),
            )
        ).fetchall()
    assert [(a["action"], a["entity"]) for a in audited] == [
        ("pay", "invoice"),
        ("receive", "provider_payment"),
    ]
    before = await fingerprint(cloud)
    for _ in range(3):  # the provider retries: the same delivery, byte for byte
        again = await deliver(cloud, body)
        assert again.status_code == 200, again.text
        assert again.json()["outcome"] == "duplicate"
    assert await fingerprint(cloud) == before


async def test_a_tampered_or_unsigned_webhook_is_refused_with_nothing_recorded(
    cloud: Cloud, board: str
) -> None:
    bill = await issued_bill(cloud, board)
    body = event(bill.id, paise=100)
    before = await fingerprint(cloud)
    tampered = body.replace(b'"amount": 100', b'"amount": 50000')
    assert tampered != body
    for sent, signature in (
        (tampered, razorpay.sign(SECRET, body)),  # the body changed after signing
        (body, razorpay.sign("another-secret-entirely", body)),  # not our secret
        (body, razorpay.sign(SECRET, body).upper()[:-1]),  # mangled
        (body, ""),  # none
    ):
        refused = await deliver(cloud, sent, signature)
        assert refused.status_code == 401, refused.text
    assert await fingerprint(cloud) == before
    assert (await the_bill(cloud, bill))["status"] == "issued"


async def test_a_partial_payment_leaves_the_bill_partly_paid_until_the_rest_comes(
    cloud: Cloud, board: str
) -> None:
    bill = await issued_bill(cloud, board)
    part = await deliver(cloud, event(bill.id, paise=12_345))
    assert part.json()["outcome"] == "settled", part.text
    after = await the_bill(cloud, bill)
    assert after["status"] == "issued"
    assert D(after["paid"]) == D("123.45")
    rest = await deliver(cloud, event(bill.id, paise=50_000 - 12_345))
    assert rest.json()["outcome"] == "settled", rest.text
    after = await the_bill(cloud, bill)
    assert (after["status"], D(after["paid"])) == ("paid", D("500.00"))


@pytest.mark.parametrize(
    ("case", "why"),
    [
        ("unknown invoice", "names no invoice of ours"),
        ("no notes", "names no invoice"),
        ("other currency", "the payment is in USD"),
        ("more than owed", "more than the 500.00 INR still owed"),
        ("already paid", "is paid: it takes no payments"),
        ("draft", "is draft: it takes no payments"),
    ],
)
async def test_a_payment_that_cannot_settle_its_bill_is_kept_unmatched(
    cloud: Cloud, board: str, case: str, why: str
) -> None:
    status = {"already paid": "paid", "draft": "draft"}.get(case, "issued")
    bill = await issued_bill(cloud, board, status=status)
    named: object = {"unknown invoice": 9_000_000_000 + bill.id, "no notes": None}.get(
        case, bill.id
    )
    payment_id = f"pay_{uuid.uuid4().hex[:14]}"
    body = event(
        named,
        payment_id=payment_id,
        currency="USD" if case == "other currency" else "INR",
        paise=50_001 if case == "more than owed" else 50_000,
    )
    before = await the_bill(cloud, bill)
    answer = await deliver(cloud, body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "unmatched"
    assert why in answer.json()["reason"]
    row = await kept(cloud, payment_id)
    assert (row["status"], row["payment_id"]) == ("unmatched", None)
    assert why in row["reason"]
    assert row["amount"] == (D("500.01") if case == "more than owed" else D("500.00"))
    assert row["body"]["payload"]["payment"]["entity"]["id"] == payment_id
    if case in ("unknown invoice", "no notes"):
        assert row["invoice_id"] is None
    else:
        assert (row["invoice_id"], row["board_id"]) == (bill.id, bill.board_id)
    assert await the_bill(cloud, bill) == before  # the bill is as it was
    waiting = await cloud.client.get(
        "/api/v1/payments/unmatched", params={"board_id": bill.board_id}, headers=bill.staff
    )
    listed = [r["provider_payment_id"] for r in waiting.json()["items"]]
    assert (payment_id in listed) == (row["board_id"] is not None), waiting.text
    again = await deliver(cloud, body)
    assert again.json()["outcome"] == "duplicate"


async def test_events_it_does_not_act_on_are_acknowledged_and_bodies_are_bounded(
    cloud: Cloud, board: str
) -> None:
    before = await fingerprint(cloud)
    failed = json.dumps({"event": "payment.failed", "payload": {}}).encode()
    answer = await deliver(cloud, failed)
    assert (answer.status_code, answer.json()["outcome"]) == (200, "ignored")
    huge = b'{"event": "payment.captured", "pad": "' + b"x" * razorpay.MAX_BODY_BYTES + b'"}'
    assert (await deliver(cloud, huge)).status_code == 413
    broken = b'{"event": "payment.captured", "payload": {"payment": {"entity": {"id": 1}}}}'
    assert (await deliver(cloud, broken)).status_code == 422
    assert await fingerprint(cloud) == before


async def test_without_a_secret_the_webhook_answers_503_and_records_nothing(
    database_url: str, tmp_path: Path, board: str, cloud: Cloud
) -> None:
    before = await fingerprint(cloud)
    async with open_cloud(database_url, tmp_path / "bare") as bare:
        body = event(1)
        answer = await bare.client.post(
            WEBHOOK, content=body, headers={razorpay.SIGNATURE_HEADER: razorpay.sign(SECRET, body)}
        )
    assert answer.status_code == 503
    assert "GRIDGATE_PAYMENT_WEBHOOK_SECRET" in answer.json()["detail"]
    assert await fingerprint(cloud) == before


async def test_the_payment_history_is_the_consumers_and_staffs_to_read(
    cloud: Cloud, board: str
) -> None:
    bill = await issued_bill(cloud, board)
    neighbour = await issued_bill(cloud, board)
    await deliver(cloud, event(bill.id, paise=10_000, payment_id="pay_hist_" + uuid.uuid4().hex))
    office = await cloud.client.post(
        f"/api/v1/invoices/{bill.id}/payments",
        json={"amount": "50.00", "reference": "cash desk 4"},
        headers=bill.staff,
    )
    assert office.status_code == 201, office.text
    me = await add_user(cloud, role="CONSUMER", consumer_id=bill.consumer_id)
    url = f"/api/v1/consumers/{bill.consumer_id}/payments"
    for headers in (me, bill.staff):
        history = await cloud.client.get(url, headers=headers)
        assert history.status_code == 200, history.text
        rows = history.json()["items"]
        assert sorted((D(r["amount"]), r["via"]) for r in rows) == [
            (D("50.00"), "office"),
            (D("100.00"), "razorpay"),
        ]
        assert {r["invoice_id"] for r in rows} == {bill.id}
    other = await cloud.client.get(
        f"/api/v1/consumers/{neighbour.consumer_id}/payments", headers=me
    )
    assert other.status_code == 404


async def test_the_invoice_csv_has_lines_totals_and_payments_exactly(
    cloud: Cloud, board: str
) -> None:
    bill = await issued_bill(cloud, board)
    await deliver(cloud, event(bill.id, paise=12_345, payment_id="pay_csv_" + uuid.uuid4().hex))
    response = await cloud.client.get(f"/api/v1/invoices/{bill.id}/export.csv", headers=bill.staff)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="bill-AC-')
    assert disposition.endswith('-2026-10.csv"')
    text = response.content.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text[1:])))
    by_record = {}
    for row in rows:
        by_record.setdefault(row["record"], []).append(row)
    assert [r["amount"] for r in by_record["line"]] == ["401.23", "98.77"]
    assert [r["quantity"] for r in by_record["line"]] == ["123.456789", "1.000000"]
    assert by_record["line"][0]["rate"] == "3.250000"
    assert by_record["total"][0]["amount"] == "500.00"
    assert by_record["amount_due"][0]["amount"] == "500.00"
    [payment] = by_record["payment"]
    assert (payment["amount"], payment["code"]) == ("123.45", "razorpay")
    assert payment["time_utc"] == "2026-11-20T06:30:00Z"
    assert by_record["paid"][0]["amount"] == "123.45"
    assert by_record["outstanding"][0]["amount"] == "376.55"
    lines_sum = sum(D(r["amount"]) for r in by_record["line"])
    assert lines_sum == D(by_record["total"][0]["amount"])
    assert {r["consumer"] for r in rows} == {"'=Ravi Kumar"}  # never read as a formula
    assert {r["currency"] for r in rows} == {"INR"}


async def test_aging_buckets_are_0_30_31_60_61_90_and_over_90_days(
    cloud: Cloud, board: str
) -> None:
    bill = await issued_bill(cloud, board)
    operator = Principal(0, "SUPER_ADMIN", None, None, None)
    due = date(2026, 11, 16)
    async with cloud.pool.connection() as conn:
        labels = [
            b["label"]
            for b in (await invoices.aging(conn, operator, bill.board_id, today=due))["buckets"]
        ]
        assert labels == ["not yet due", "0-30 days", "31-60 days", "61-90 days", "over 90 days"]
        for days_late, bucket in (
            (-1, 0),
            (0, 1),
            (30, 1),
            (31, 2),
            (60, 2),
            (61, 3),
            (90, 3),
            (91, 4),
        ):
            result = await invoices.aging(
                conn, operator, bill.board_id, today=due + timedelta(days=days_late)
            )
            counts = [b["invoices"] for b in result["buckets"]]
            assert counts == [1 if i == bucket else 0 for i in range(5)], days_late
            assert result["outstanding"] == D("500.00")


def test_razorpay_amounts_are_paise_and_notes_may_be_an_empty_list() -> None:
    parsed = razorpay.parse(event(None, paise=1))
    assert parsed.payment is not None
    assert parsed.payment.amount == D("0.01")
    assert parsed.payment.invoice_ref == ""
    assert parsed.payment.paid_at == PAID_AT
    for paise in (0, -5, 1.5, "100", True):
        with pytest.raises(Exception, match="amount"):
            razorpay.parse(event(1, paise=paise))  # type: ignore[arg-type]


async def test_the_pages_show_how_each_payment_came_and_link_the_csv(
    cloud: Cloud, board: str
) -> None:
    bill = await issued_bill(cloud, board)
    await deliver(cloud, event(bill.id, paise=10_000, payment_id="pay_page_" + uuid.uuid4().hex))
    me = await add_user(cloud, role="CONSUMER", consumer_id=bill.consumer_id)
    pages = {
        "staff": (bill.staff, f"/dashboard/consumers/{bill.consumer_id}"),
        "portal": (me, "/dashboard/home"),
        "invoice": (bill.staff, f"/dashboard/invoices/{bill.id}"),
    }
    for name, (headers, path) in pages.items():
        cloud.client.cookies.set("gg_access", headers["Authorization"].removeprefix("Bearer "))
        try:
            page = await cloud.client.get(path)
        finally:
            cloud.client.cookies.clear()
        assert page.status_code == 200, (name, page.text[:300])
        table = page.text.split('id="payments-table"', 1)[1].split("</table>", 1)[0]
        assert "Online (Razorpay)" in table, name
        assert "100.00" in table, name
    assert f'href="/api/v1/invoices/{bill.id}/export.csv"' in page.text


def test_the_webhook_secret_is_never_printed(tmp_path: Path) -> None:
    settings = CloudSettings(data_dir=tmp_path, payment_webhook_secret=SECRET)
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)


async def test_the_same_payment_delivered_twice_at_once_settles_the_bill_once(
    cloud: Cloud, board: str
) -> None:
    bill = await issued_bill(cloud, board)
    body = event(bill.id, paise=20_000, payment_id="pay_race_" + uuid.uuid4().hex)
    answers = await asyncio.gather(*(deliver(cloud, body) for _ in range(4)))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert sorted(a.json()["outcome"] for a in answers) == ["duplicate"] * 3 + ["settled"]
    after = await the_bill(cloud, bill)
    assert (after["status"], D(after["paid"]), len(after["payments"])) == (
        "issued",
        D("200.00"),
        1,
    )


async def test_an_unmatched_payment_naming_no_bill_is_the_operators_to_see(
    cloud: Cloud, board: str
) -> None:
    bill = await issued_bill(cloud, board)
    payment_id = f"pay_{uuid.uuid4().hex[:14]}"
    await deliver(cloud, event("no-such-bill", payment_id=payment_id))
    operator = await add_user(cloud, role="SUPER_ADMIN")
    for headers, seen in ((operator, True), (bill.staff, False)):
        waiting = await cloud.client.get("/api/v1/payments/unmatched", headers=headers)
        assert waiting.status_code == 200, waiting.text
        ids = [r["provider_payment_id"] for r in waiting.json()["items"]]
        assert (payment_id in ids) is seen
    me = await add_user(cloud, role="CONSUMER", consumer_id=bill.consumer_id)
    assert (await cloud.client.get("/api/v1/payments/unmatched", headers=me)).status_code == 403
