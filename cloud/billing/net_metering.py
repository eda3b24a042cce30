"""Net metering: a consumer's export offsets its import, and a surplus is banked or paid.

The rules are those of the Indian net-metering regulations (CERC's model, DERC 2014, KSERC
2020): over a billing period the units exported (register 2.8.0) and the units banked from the
previous bill are set against the units imported (1.8.0). What is left of the import is billed
under the energy charge — slabs apply to the net units, as DERC and KSERC bill it — and what is
left of the export and the bank is banked, as units, for the next bill. At the settlement month
(the terms' `settlement_month`, March by default: the financial year closes with its last day)
the bank is paid at the feed-in rate, or every period when the terms say `settle_each_period`.

A bill never goes below zero. The settlement, and any credit brought forward, are credit lines;
when they exceed what the bill charges, a last line carries the rest to the next bill as a
money credit (`credit_out`), so the total is zero and the consumer loses nothing.

Pure arithmetic over `Decimal`s; the bank's state between bills lives in the
`net_metering_ledger` table (`cloud.services.billing_runs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal

from .tariff import Line, NetMetering

ZERO = Decimal(0)


@dataclass(frozen=True)
class Bank:
    """What a consumer's bank holds when a period begins: units, and a money credit."""

    units: Decimal = ZERO
    credit: Decimal = ZERO


@dataclass(frozen=True)
class NetOutcome:
    """One period's net metering: the reads, the offset, and what the bank holds after it."""

    import_kwh: Decimal | None  # None: not measured (an estimated bill: no offset)
    export_kwh: Decimal | None
    banked_in_kwh: Decimal
    billed_kwh: Decimal  # the net import the energy charge prices
    banked_out_kwh: Decimal
    settled_kwh: Decimal
    feed_in_rate: Decimal
    settled_amount: Decimal
    credit_in: Decimal
    credit_out: Decimal = ZERO

    def as_details(self) -> dict[str, str | None]:
        """The figures as the invoice's details keep them (strings: exact decimals)."""
        return {
            name: None if value is None else str(value)
            for name, value in (
                ("import_kwh", self.import_kwh),
                ("export_kwh", self.export_kwh),
                ("banked_in_kwh", self.banked_in_kwh),
                ("billed_kwh", self.billed_kwh),
                ("banked_out_kwh", self.banked_out_kwh),
                ("settled_kwh", self.settled_kwh),
                ("feed_in_rate", self.feed_in_rate),
                ("settled_amount", self.settled_amount),
                ("credit_in", self.credit_in),
                ("credit_out", self.credit_out),
            )
        }


def settles(terms: NetMetering, period_start: date, period_end: date) -> bool:
    """Whether the bank is paid out at this period's end: every period, or when the period
    holds the last day of the settlement month (exactly one period of a year does)."""
    if terms.surplus == "settle_each_period":
        return True
    day = period_start
    while day < period_end:
        if day.month == terms.settlement_month and (day + timedelta(days=1)).month != day.month:
            return True
        day += timedelta(days=1)
    return False


def offset(
    terms: NetMetering,
    *,
    import_kwh: Decimal | None,
    export_kwh: Decimal | None,
    bank: Bank,
    settle: bool,
    estimated_kwh: Decimal | None = None,
    step: Decimal = Decimal("0.01"),
) -> NetOutcome:
    """Net the period: import less export less the units banked in. `estimated_kwh`: the units
    an estimated bill prices when a register could not be measured — then nothing is offset and
    the bank carries over unchanged (the run that trues the bill up nets it). `settle`: pay the
    bank out at the feed-in rate (see `settles`)."""
    if estimated_kwh is not None or import_kwh is None or export_kwh is None:
        billed, surplus = estimated_kwh or ZERO, bank.units
        import_kwh = export_kwh = None
    else:
        net = import_kwh - export_kwh - bank.units
        billed, surplus = max(net, ZERO), max(-net, ZERO)
    settled = surplus if settle else ZERO
    amount = _round(settled * terms.feed_in_rate, step)
    return NetOutcome(
        import_kwh=import_kwh,
        export_kwh=export_kwh,
        banked_in_kwh=bank.units,
        billed_kwh=billed,
        banked_out_kwh=surplus - settled,
        settled_kwh=settled,
        feed_in_rate=terms.feed_in_rate,
        settled_amount=amount,
        credit_in=bank.credit,
    )


def reading_lines(outcome: NetOutcome) -> list[Line]:
    """The figures the bill shows before its charges (amount 0: they explain, not charge)."""
    rows = []
    if outcome.import_kwh is not None and outcome.export_kwh is not None:
        rows += [
            ("Imported from the grid (register 1.8.0)", outcome.import_kwh),
            ("Exported to the grid (register 2.8.0)", outcome.export_kwh),
        ]
    else:
        rows.append(("Import and export not measured: nothing offset this time", ZERO))
    rows.append(("Banked from earlier bills", outcome.banked_in_kwh))
    rows.append(("Net units billed (import less export and banked units)", outcome.billed_kwh))
    rows.append(("Banked to the next bill", outcome.banked_out_kwh))
    return [Line("net_metering", what, units, "kWh", ZERO, ZERO) for what, units in rows]


def credit_lines(outcome: NetOutcome, charges: Decimal) -> tuple[list[Line], Decimal]:
    """The settlement and the credit brought forward as credit lines, and — when they exceed
    `charges` (the sum of the bill's other lines) — one line carrying the rest to the next bill,
    so the total is never below zero. Returns the lines and the credit carried out."""
    lines = []
    if outcome.settled_kwh > 0:
        lines.append(
            Line(
                "net_metering_settlement",
                f"Net metering settlement: {_fmt(outcome.settled_kwh)} kWh banked, paid at the"
                f" feed-in rate",
                outcome.settled_kwh,
                "kWh",
                -outcome.feed_in_rate,
                -outcome.settled_amount,
            )
        )
    if outcome.credit_in > 0:
        lines.append(
            Line(
                "credit_brought_forward",
                "Credit brought forward from the last bill",
                Decimal(1),
                "",
                -outcome.credit_in,
                -outcome.credit_in,
            )
        )
    credit = outcome.settled_amount + outcome.credit_in
    carried = max(credit - charges, ZERO)
    if carried > 0:
        lines.append(
            Line(
                "credit_carried_forward",
                "Credit carried to the next bill",
                Decimal(1),
                "",
                carried,
                carried,
            )
        )
    return lines, carried


def _round(value: Decimal, step: Decimal) -> Decimal:
    return (value / step).quantize(Decimal(1), rounding=ROUND_HALF_UP) * step


def _fmt(value: Decimal) -> str:
    return f"{value.normalize():f}"
