"""What a consumer's current cycle looks like so far, and what its bill is heading for.

The cycle is the board's billing period holding today — its cycle's when one is set, else the
calendar month — in the board's time zone. Consumption so far runs from the register at the
cycle's start to the latest read; the projection scales it to the whole period at the same
daily rate and prices it under the tariff in force (and any temporary override of the
consumer's category in the cycle). A net-metered consumer's export is projected the same way
and offsets the projected import with the units its bank holds, as its bill will.
`cloud.services.insights` forecasts it better, from the household's own days.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection

from ..access import Principal
from ..billing.consumption import Consumption, consumption
from ..billing.engine import NetInput, TariffVersion, compute_bill, local_midnight
from ..billing.tariff import Line
from ..errors import InvalidInput
from . import cycle_reads, tariff_overrides, tariffs
from .billing_runs import banks, max_demand
from .scoped import CONSUMERS, get_row

QUANTITY_STEP = Decimal("0.001")  # a line's units as people read them: to the watt-hour


def round_line(line: Line) -> dict[str, Any]:
    """A projected bill's line as the API answers it: a quantity finer than a thousandth (units
    scaled to a whole cycle, months pro-rated by days) rounded to three decimals, the rate and
    amount as the engine made them. Only what is shown is rounded: the amount was priced on the
    exact units."""
    quantity = line.quantity
    if quantity.as_tuple().exponent < -3:
        quantity = quantity.quantize(QUANTITY_STEP)
    return {**line.__dict__, "quantity": quantity}


async def estimate(
    conn: AsyncConnection, principal: Principal, consumer_id: int, *, now: datetime | None = None
) -> dict[str, Any]:
    consumer = await get_row(conn, principal, CONSUMERS, consumer_id)  # scope: 404 outside it
    board = await conn.execute("SELECT * FROM boards WHERE id = %s", (consumer["board_id"],))
    board = await board.fetchone()
    tz = ZoneInfo(board["time_zone"])
    now = now or datetime.now(UTC)
    cycle_start, cycle_end, cycle_months = await cycle_reads.period_holding(
        conn, board["id"], now.astimezone(tz).date()
    )
    start = local_midnight(cycle_start, tz)
    versions = await tariffs.in_force(
        conn, board["id"], consumer["category"], cycle_start, cycle_end
    )
    overrides = await tariff_overrides.in_force(
        conn, board["id"], consumer["category"], cycle_start, cycle_end, tz
    )
    quantity = "9.8.0" if versions[-1].spec.energy_unit == "kVAh" else "1.8.0"
    spans = await cycle_reads.spans_so_far(conn, consumer_id, quantity, start, now)
    if not spans:
        raise InvalidInput(
            "no reads yet in this cycle to estimate from",
            errors=[("consumer_id", str(consumer_id))],
        )
    so_far = consumption(spans, tz)
    demand = None
    if any(v.spec.fixed.basis == "higher_of_load_and_demand" for v in versions):
        kva = versions[-1].spec.energy_unit == "kVAh"
        recorded = await max_demand(conn, {consumer_id: spans}, "9.5.0" if kva else "1.5.0")
        demand = recorded.get(consumer_id)
    latest = max(span.end for span in spans)
    elapsed_days = Decimal((latest - start).total_seconds()) / Decimal(86_400)
    cycle_days = Decimal((cycle_end - cycle_start).days)
    projected = so_far.units / elapsed_days * cycle_days if elapsed_days > 0 else Decimal(0)
    net = None
    if nets_export(consumer, versions, cycle_end):
        exported = await cycle_reads.spans_so_far(conn, consumer_id, "2.8.0", start, now)
        export_so_far = consumption(exported, tz).units if exported else Decimal(0)
        export = export_so_far / elapsed_days * cycle_days if elapsed_days > 0 else Decimal(0)
        bank = (await banks(conn, [consumer_id], cycle_start)).get(consumer_id)
        net = NetInput(Consumption(export, {}, True, []), *([bank] if bank else []))
    bill = compute_bill(
        period_start=cycle_start,
        period_end=cycle_end,
        tz=tz,
        consumption=Consumption(projected, {}, True, []),
        versions=versions,
        sanctioned_kw=Decimal(consumer["sanctioned_load_kw"]),
        max_demand_kw=demand,
        overrides=overrides,
        net=net,
        cycle_months=cycle_months,
    )
    return {
        "consumer_id": consumer_id,
        "cycle_start": cycle_start,
        "cycle_end": cycle_end,
        "as_of": latest,
        "units_so_far": round(so_far.units, 3),
        "projected_units": round(projected, 3),
        "projected_total": bill.total,
        "currency": board["currency"],
        "lines": [round_line(line) for line in bill.lines],
    }


def nets_export(consumer: dict[str, Any], versions: list[TariffVersion], end: date) -> bool:
    """Whether a cycle's bill nets the consumer's export: a generation source connected
    before the cycle ends (the billing run's rule: `billing_runs`), and net-metering terms in
    the version in force at its end (without them the run refuses the bill; an estimate or a
    forecast leaves the export out)."""
    since = consumer["generation_since"]
    return since is not None and since < end and versions[-1].spec.net_metering is not None
