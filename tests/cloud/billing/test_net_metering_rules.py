"""The net-metering rules without a database: which period settles the bank, and what an
estimated bill does to it (nothing)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from cloud.billing.net_metering import Bank, offset, settles
from cloud.billing.tariff import NetMetering

MARCH = NetMetering(feed_in_rate=D("3.00"))  # settlement_month 3 by default


def test_the_period_holding_the_settlement_months_last_day_settles() -> None:
    assert settles(MARCH, date(2027, 3, 1), date(2027, 4, 1))
    assert not settles(MARCH, date(2027, 2, 1), date(2027, 3, 1))
    assert not settles(MARCH, date(2027, 4, 1), date(2027, 5, 1))
    # bimonthly: 15 Feb to 15 Apr holds 31 March; the cycle before and after do not
    assert settles(MARCH, date(2027, 2, 15), date(2027, 4, 15))
    assert not settles(MARCH, date(2026, 12, 15), date(2027, 2, 15))
    assert not settles(MARCH, date(2027, 4, 15), date(2027, 6, 15))
    # a period ending on 31 March (exclusive end) does not hold it; the next one does
    assert not settles(MARCH, date(2027, 3, 1), date(2027, 3, 31))
    assert settles(MARCH, date(2027, 3, 31), date(2027, 4, 30))
    every = NetMetering(feed_in_rate=D(2), surplus="settle_each_period")
    assert settles(every, date(2027, 6, 1), date(2027, 7, 1))


def test_an_estimated_bill_offsets_nothing_and_keeps_the_bank() -> None:
    bank = Bank(D("42.5"), D("10.00"))
    estimated = offset(
        MARCH, import_kwh=None, export_kwh=D(5), bank=bank, settle=False, estimated_kwh=D(120)
    )
    assert (estimated.billed_kwh, estimated.banked_out_kwh, estimated.settled_kwh) == (
        D(120),
        D("42.5"),
        D(0),
    )
    assert estimated.import_kwh is None
    # measured, and settling: 10 - 4 - 42.5 = -36.5 units paid at 3.00 = 109.50
    measured = offset(
        MARCH, import_kwh=D(10), export_kwh=D(4), bank=bank, settle=True, step=D("0.01")
    )
    assert (measured.billed_kwh, measured.settled_kwh, measured.settled_amount) == (
        D(0),
        D("36.5"),
        D("109.50"),
    )
    assert measured.banked_out_kwh == 0
    assert measured.credit_in == D("10.00")
