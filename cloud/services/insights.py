"""What a consumer's cycle is heading for, and what they could do about it.

`forecast` is the bill the current billing period (the board's cycle when one is set, else the
calendar month) is heading for: the units used so far, from the registers (the same measure as
the estimate and the tariff's "you are here"), and the rest expected from the household's own
last four weeks, weekdays and weekends apart (`cloud.billing.forecast`), priced by the billing
engine under the versions and overrides in force — with an 80 % range. `recommendations`
costs what changing one habit would save on that bill (`cloud.billing.recommendations`), a
net-metered household's on its net bill; `cloud.services.recommendations` stores them with
the consumer's answer to each. The forecast also looks one period ahead (`next`): the period
after this one, from the same weeks, with a seasonal factor from the household's own days a
year back when it has them (the daily rollups, which outlive raw readings).

A net-metered household (a generation source, and net-metering terms in the tariff) is billed
on its import less its export and its bank, so its forecast is too: the export so far from the
export register (2.8.0), the rest expected from that register's last four weeks as the import
is, both handed to the billing engine with the bank the last bill left, as a billing run does
(`NetInput`). The range pairs the least import with the most export and the other way round:
a cloudy week raises the one and lowers the other, so their deviations add.

Both read one consumer's register reads for the weeks before (a few thousand rows), never a
board's; the scope is the consumer's, so a consumer reaches only their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from psycopg import AsyncConnection

from ..access import Principal
from ..billing import forecast as forecasting
from ..billing import recommendations as recommending
from ..billing.consumption import Consumption, MeterSpan, Read, consumption, to_decimal
from ..billing.engine import Bill, NetInput, TariffVersion, compute_bill, local_midnight
from ..billing.net_metering import Bank, NetOutcome
from ..billing.overrides import TariffOverride
from ..errors import Conflict, InvalidInput
from . import cycle_reads, tariff_overrides, tariffs
from .billing_runs import banks, max_demand
from .estimates import nets_export, round_line
from .preferences import household_consents
from .scoped import CONSUMERS, get_row

INSIGHTS_CONSENT = "usage_insights"
NO_INSIGHTS_CONSENT = (
    "the household has not allowed its usage to be used to suggest ways to pay less"
    " (consent usage_insights, which its online account gives in its profile)"
)

HISTORY_DAYS = forecasting.WINDOW_DAYS + 2  # whole days before today, and a read before them
DEMAND_YEAR = timedelta(days=365)  # the record the sanctioned load is weighed against


@dataclass(frozen=True)
class _Export:
    """A net-metered household's export over the cycle (register 2.8.0): measured so far and
    expected for the rest as the import is, and what the bank held when the cycle began."""

    units: forecasting.UnitsForecast
    by_hour: dict[datetime, Decimal]  # the export's hours before its latest read
    covered_from: datetime
    bank: Bank


@dataclass(frozen=True)
class _Cycle:
    consumer: dict[str, Any]
    board: dict[str, Any]
    tz: ZoneInfo
    units: forecasting.UnitsForecast
    by_hour: dict[datetime, Decimal]  # the reads' hours before the cycle's last read
    versions: list[TariffVersion]
    overrides: list[TariffOverride]
    holidays: set[date]
    cycle_months: Decimal | None
    max_demand_kw: Decimal | None
    quantity: str  # the register billed: 1.8.0, or 9.8.0 for kVAh
    covered_from: datetime  # from when every meter's register is known
    export: _Export | None  # None: not net metered

    @property
    def sanctioned_kw(self) -> Decimal:
        return Decimal(self.consumer["sanctioned_load_kw"])

    def bill(
        self,
        units: Decimal,
        hours: dict[datetime, Decimal] | None = None,
        sanctioned_kw: Decimal | None = None,
    ) -> Bill:
        """The cycle priced for `units` imported as it will be billed: a net-metered household's
        netted with the export expected and the bank (what the ways to pay less compare, so
        their base is the forecast's expected bill)."""
        if self.export is not None:
            return self.net_bill(units, self.export.units.expected, hours, sanctioned_kw)
        return forecasting.price_units(
            self.units,
            units,
            hours=hours,
            versions=self.versions,
            tz=self.tz,
            sanctioned_kw=sanctioned_kw if sanctioned_kw is not None else self.sanctioned_kw,
            holidays=self.holidays,
            cycle_months=self.cycle_months,
            max_demand_kw=self.max_demand_kw,
            overrides=self.overrides,
        )

    def net_bill(
        self,
        units: Decimal,
        exported: Decimal,
        hours: dict[datetime, Decimal] | None = None,
        sanctioned_kw: Decimal | None = None,
    ) -> Bill:
        """The cycle priced as a net-metered bill: `units` imported (its hours as the forecast
        spreads them, or `hours`), `exported` exported, netted with the bank the last bill left
        (the engine's net metering, as a run bills)."""
        bank = self.export.bank if self.export is not None else Bank()
        if hours is None:
            hours = self.units.scaled_hours(units)
        return compute_bill(
            period_start=self.units.cycle_start,
            period_end=self.units.cycle_end,
            tz=self.tz,
            consumption=Consumption(units, hours, True, []),
            versions=self.versions,
            sanctioned_kw=sanctioned_kw if sanctioned_kw is not None else self.sanctioned_kw,
            holidays=self.holidays,
            cycle_months=self.cycle_months,
            max_demand_kw=self.max_demand_kw,
            overrides=self.overrides,
            net=NetInput(Consumption(exported, {}, True, []), bank),
        )


async def _cycle(
    conn: AsyncConnection, principal: Principal, consumer_id: int, now: datetime
) -> _Cycle:
    consumer = await get_row(conn, principal, CONSUMERS, consumer_id)  # scope: 404 outside it
    cursor = await conn.execute("SELECT * FROM boards WHERE id = %s", (consumer["board_id"],))
    board = await cursor.fetchone()
    tz = ZoneInfo(board["time_zone"])
    today = now.astimezone(tz).date()
    start, end, months = await cycle_reads.period_holding(conn, board["id"], today)
    category = consumer["category"]
    versions = await tariffs.in_force(conn, board["id"], category, start, end)
    overrides = await tariff_overrides.in_force(conn, board["id"], category, start, end, tz)
    cursor = await conn.execute("SELECT day FROM holidays WHERE board_id = %s", (board["id"],))
    holidays = {row["day"] for row in await cursor.fetchall()}
    quantity = "9.8.0" if versions[-1].spec.energy_unit == "kVAh" else "1.8.0"
    spans = await cycle_reads.spans_so_far(
        conn, consumer_id, quantity, local_midnight(start, tz), now
    )
    if not spans:
        raise InvalidInput(
            "no reads yet in this billing period to forecast from",
            errors=[("consumer_id", str(consumer_id))],
        )
    so_far = consumption(spans, tz)
    as_of = max(span.end for span in spans)
    history, covered_from = await _hours_before(conn, consumer_id, quantity, as_of, tz)
    demand = None
    if any(v.spec.fixed.basis == "higher_of_load_and_demand" for v in versions):
        kva = quantity == "9.8.0"
        recorded = await max_demand(conn, {consumer_id: spans}, "9.5.0" if kva else "1.5.0")
        demand = recorded.get(consumer_id)
    units = forecasting.forecast_units(
        by_hour=history,
        covered_from=covered_from,
        as_of=as_of,
        so_far=so_far.units,
        cycle_start=start,
        cycle_end=end,
        tz=tz,
        holidays=holidays,
    )
    export = None
    if nets_export(consumer, versions, end):
        export = await _export_of(conn, consumer_id, units, now, tz, holidays)
    return _Cycle(
        consumer,
        board,
        tz,
        units,
        history,
        versions,
        overrides,
        holidays,
        months,
        demand,
        quantity,
        covered_from,
        export,
    )


async def _export_of(
    conn: AsyncConnection,
    consumer_id: int,
    imported: forecasting.UnitsForecast,
    now: datetime,
    tz: ZoneInfo,
    holidays: set[date],
) -> _Export:
    """The cycle's export: so far from the export register, the rest expected from its own
    last four weeks by kind of day (as `imported`, the import's forecast, was), and the bank."""
    start, end = imported.cycle_start, imported.cycle_end
    from_midnight = local_midnight(start, tz)
    spans = await cycle_reads.spans_so_far(conn, consumer_id, "2.8.0", from_midnight, now)
    so_far = consumption(spans, tz).units if spans else Decimal(0)
    as_of = max(span.end for span in spans) if spans else imported.as_of
    history, covered_from = await _hours_before(conn, consumer_id, "2.8.0", as_of, tz)
    units = forecasting.forecast_units(
        by_hour=history,
        covered_from=covered_from,
        as_of=as_of,
        so_far=so_far,
        cycle_start=start,
        cycle_end=end,
        tz=tz,
        holidays=holidays,
    )
    bank = (await banks(conn, [consumer_id], start)).get(consumer_id, Bank())
    return _Export(units, history, covered_from, bank)


async def _hours_before(
    conn: AsyncConnection, consumer_id: int, quantity: str, as_of: datetime, tz: ZoneInfo
) -> tuple[dict[datetime, Decimal], datetime]:
    """The consumer's energy by local hour over the `HISTORY_DAYS` before `as_of` (its meters
    in service now), and the instant from which every meter's register is known."""
    since = as_of - timedelta(days=HISTORY_DAYS)
    cursor = await conn.execute(
        "SELECT m.id, m.ct_ratio, r.ts, r.value FROM meters m JOIN LATERAL ("
        "  (SELECT ts, value FROM readings WHERE meter_id = m.id AND quantity = %(q)s"
        "    AND ts <= %(since)s AND quality IN ('ok', 'estimated') ORDER BY ts DESC LIMIT 1)"
        "  UNION ALL"
        "  (SELECT ts, value FROM readings WHERE meter_id = m.id AND quantity = %(q)s"
        "    AND ts > %(since)s AND ts <= %(as_of)s AND quality IN ('ok', 'estimated'))"
        ") r ON true WHERE m.consumer_id = %(c)s AND m.replaced_at IS NULL ORDER BY m.id, r.ts",
        {"q": quantity, "since": since, "as_of": as_of, "c": consumer_id},
    )
    reads: dict[int, list[Read]] = {}
    ratios: dict[int, Decimal] = {}
    for row in await cursor.fetchall():
        reads.setdefault(row["id"], []).append(Read(row["ts"], to_decimal(row["value"])))
        ratios[row["id"]] = Decimal(row["ct_ratio"])
    spans = [
        MeterSpan(meter, series, max(series[0].ts, since), series[-1].ts, ratios[meter])
        for meter, series in reads.items()
        if len(series) > 1
    ]
    if not spans:
        return {}, as_of
    used = consumption(spans, tz, hourly=True)
    covered_from = max(span.start for span in spans)
    return used.by_hour, covered_from


def _bill(bill: Bill) -> dict[str, Any]:
    return {"total": bill.total, "units": round(bill.units, 3)}


def _bills_of(cycle: _Cycle) -> tuple[Bill, Bill, Bill]:
    """The cycle's expected bill and its 80 % range. A net-metered one nets the expected
    export; its low bill takes the least import with the most export, its high the other way
    round (a cloudy week raises the import as it lowers the export)."""
    units, export = cycle.units, cycle.export
    if export is None:
        return cycle.bill(units.expected), cycle.bill(units.low), cycle.bill(units.high)
    sent = export.units
    return (
        cycle.net_bill(units.expected, sent.expected),
        cycle.net_bill(units.low, sent.high),
        cycle.net_bill(units.high, sent.low),
    )


async def forecast(
    conn: AsyncConnection, principal: Principal, consumer_id: int, *, now: datetime | None = None
) -> dict[str, Any]:
    """The current billing period's forecast bill, with its range and what it rests on, and
    the next period's (`next`)."""
    cycle = await _cycle(conn, principal, consumer_id, now or datetime.now(UTC))
    return await _forecast_and_next(conn, cycle)


async def recommendations(
    conn: AsyncConnection, principal: Principal, consumer_id: int, *, now: datetime | None = None
) -> dict[str, Any]:
    """Ways to pay less this billing period, each with the saving the engine prices (worked
    out now; `cloud.services.recommendations` stores them). Conflict when the household has
    not allowed its usage to be used for them (consent `usage_insights`)."""
    cycle = await _cycle(conn, principal, consumer_id, now or datetime.now(UTC))
    if not await household_consents(conn, consumer_id, INSIGHTS_CONSENT):
        raise Conflict(NO_INSIGHTS_CONSENT)
    return await _recommendations_of(conn, cycle)


async def cycle_and_advice(
    conn: AsyncConnection, principal: Principal, consumer_id: int, *, now: datetime | None = None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The forecast (with the next period's) and the recommendations worked out now, from one
    reading of the consumer's registers (None without the household's consent to them)."""
    cycle = await _cycle(conn, principal, consumer_id, now or datetime.now(UTC))
    forecast_now = await _forecast_and_next(conn, cycle)
    if not await household_consents(conn, consumer_id, INSIGHTS_CONSENT):
        return forecast_now, None
    return forecast_now, await _recommendations_of(conn, cycle)


async def _forecast_and_next(conn: AsyncConnection, cycle: _Cycle) -> dict[str, Any]:
    expected, low, high = _bills_of(cycle)
    return {
        **_forecast_of(cycle, expected, low, high),
        "next": await _next_of(conn, cycle, expected.net),
    }


async def _next_of(
    conn: AsyncConnection, cycle: _Cycle, net_now: NetOutcome | None
) -> dict[str, Any] | None:
    """The period after this one: units from the recent weeks (and the season a year back),
    priced under the versions in force then; a net-metered household's export from its own
    recent weeks (no season: the daily rollups are of the import), netted with what this
    period's expected bill leaves in the bank (`net_now`). None without a whole day of history
    or a tariff for it."""
    units = cycle.units
    start, end, months = await cycle_reads.period_holding(conn, cycle.board["id"], units.cycle_end)
    if not cycle.by_hour:
        return None
    category = cycle.consumer["category"]
    try:
        versions = await tariffs.in_force(conn, cycle.board["id"], category, start, end)
    except InvalidInput:
        return None
    overrides = await tariff_overrides.in_force(
        conn, cycle.board["id"], category, start, end, cycle.tz
    )
    recent_end = units.as_of.astimezone(cycle.tz).date()
    year_ago = await _daily_year_ago(
        conn,
        cycle.consumer["id"],
        recent_end
        - timedelta(days=forecasting.WINDOW_DAYS + forecasting.SEASON_PAD_DAYS)
        - forecasting.YEAR,
        end - forecasting.YEAR + timedelta(days=forecasting.SEASON_PAD_DAYS),
    )
    try:
        ahead = forecasting.forecast_next(
            by_hour=cycle.by_hour,
            covered_from=cycle.covered_from,
            as_of=units.as_of,
            period_start=start,
            period_end=end,
            tz=cycle.tz,
            holidays=cycle.holidays,
            year_ago=year_ago,
        )
    except ValueError:
        return None
    net, export_units = None, None
    if (
        cycle.export is not None
        and net_now is not None
        and nets_export(cycle.consumer, versions, end)
    ):
        export_units = _export_next(cycle.export, cycle.tz, cycle.holidays, start, end)
        bank = Bank(net_now.banked_out_kwh, net_now.credit_out)
        net = NetInput(Consumption(export_units, {}, True, []), bank)
    bill = compute_bill(
        period_start=start,
        period_end=end,
        tz=cycle.tz,
        consumption=Consumption(ahead.expected, ahead.by_hour, True, []),
        versions=versions,
        sanctioned_kw=cycle.sanctioned_kw,
        holidays=cycle.holidays,
        cycle_months=months,
        max_demand_kw=cycle.max_demand_kw,
        overrides=overrides,
        net=net,
    )
    return {
        "period_start": start,
        "period_end": end,
        "last_day": end - timedelta(days=1),
        "expected": _bill(bill),
        "weekday_units": ahead.weekday_units,
        "rest_day_units": ahead.rest_day_units,
        "history_days": ahead.history_days,
        "seasonal_factor": ahead.seasonal_factor,
        "basis": "recent_weeks_and_season"
        if ahead.seasonal_factor is not None
        else "recent_weeks_only",
        "expected_export": export_units,
    }


def _export_next(
    export: _Export, tz: ZoneInfo, holidays: set[date], start: date, end: date
) -> Decimal:
    """The next period's export from the export register's recent weeks (0 without a whole
    day of them)."""
    try:
        ahead = forecasting.forecast_next(
            by_hour=export.by_hour,
            covered_from=export.covered_from,
            as_of=export.units.as_of,
            period_start=start,
            period_end=end,
            tz=tz,
            holidays=holidays,
        )
    except ValueError:
        return Decimal(0)
    return ahead.expected


async def _daily_year_ago(
    conn: AsyncConnection, consumer_id: int, first: date, end: date
) -> dict[date, Decimal]:
    """The consumer's energy per local day in [first, end) from the daily rollups."""
    cursor = await conn.execute(
        "SELECT day, energy_kwh FROM consumer_energy_daily"
        " WHERE consumer_id = %s AND day >= %s AND day < %s",
        (consumer_id, first, end),
    )
    return {row["day"]: to_decimal(row["energy_kwh"]) for row in await cursor.fetchall()}


async def _demand_of_year(conn: AsyncConnection, cycle: _Cycle) -> recommending.Demand | None:
    """The highest demand the consumer's meters recorded in the year before the latest read
    (`1.5.0`, or `9.5.0` for kVAh billing; CT ratio applied), and the first such read; only
    when fixed charges go by the load."""
    fixed = cycle.versions[-1].spec.fixed
    if not (fixed.per_kw or fixed.bands):
        return None
    as_of = cycle.units.as_of
    cursor = await conn.execute(
        "SELECT max(r.value * m.ct_ratio) AS peak, min(r.ts) AS since"
        " FROM readings r JOIN meters m ON m.id = r.meter_id"
        " WHERE m.consumer_id = %s AND r.quantity = %s AND r.ts > %s AND r.ts <= %s"
        " AND r.quality IN ('ok', 'estimated')",
        (
            cycle.consumer["id"],
            "9.5.0" if cycle.quantity == "9.8.0" else "1.5.0",
            as_of - DEMAND_YEAR,
            as_of,
        ),
    )
    row = await cursor.fetchone()
    if row is None or row["peak"] is None:
        return None
    return recommending.Demand(
        to_decimal(row["peak"]).quantize(Decimal("0.001")), row["since"].astimezone(cycle.tz).date()
    )


async def _power_factor_of(conn: AsyncConnection, cycle: _Cycle) -> recommending.PowerFactor | None:
    """kWh and kVAh risen over the history window (reads where both registers were read at
    the same instant, per meter in service, CT ratio applied); only for kVAh billing."""
    if cycle.quantity != "9.8.0":
        return None
    as_of = cycle.units.as_of
    cursor = await conn.execute(
        "WITH both_reads AS (SELECT m.id, m.ct_ratio, a.ts, a.value AS kwh, b.value AS kvah"
        "  FROM meters m JOIN readings a ON a.meter_id = m.id AND a.quantity = '1.8.0'"
        "  JOIN readings b ON b.meter_id = m.id AND b.quantity = '9.8.0' AND b.ts = a.ts"
        "  WHERE m.consumer_id = %s AND m.replaced_at IS NULL AND a.ts > %s AND a.ts <= %s"
        "  AND a.quality IN ('ok', 'estimated') AND b.quality IN ('ok', 'estimated'))"
        " SELECT id, ct_ratio, min(ts) AS first_ts, max(ts) AS last_ts,"
        "  (array_agg(kwh ORDER BY ts DESC))[1] - (array_agg(kwh ORDER BY ts))[1] AS kwh,"
        "  (array_agg(kvah ORDER BY ts DESC))[1] - (array_agg(kvah ORDER BY ts))[1] AS kvah"
        " FROM both_reads GROUP BY id, ct_ratio",
        (cycle.consumer["id"], as_of - timedelta(days=HISTORY_DAYS), as_of),
    )
    rows = await cursor.fetchall()
    kwh = sum((to_decimal(r["kwh"]) * Decimal(r["ct_ratio"]) for r in rows), Decimal(0))
    kvah = sum((to_decimal(r["kvah"]) * Decimal(r["ct_ratio"]) for r in rows), Decimal(0))
    if kwh <= 0 or kvah <= 0:
        return None
    days = max((r["last_ts"] - r["first_ts"] for r in rows), default=timedelta(0)).days
    return recommending.PowerFactor(kwh, kvah, days)


def _forecast_of(cycle: _Cycle, expected: Bill, low: Bill, high: Bill) -> dict[str, Any]:
    units, export = cycle.units, cycle.export
    net = None
    if export is not None:
        sent = export.units
        net = {
            "imported_so_far": round(units.so_far, 3),
            "exported_so_far": round(sent.so_far, 3),
            "expected_import": round(units.expected, 3),
            "expected_export": round(sent.expected, 3),
            "export_to_come": round(sent.expected - sent.so_far, 3),
            "export_weekday_units": sent.weekday_units,
            "export_rest_day_units": sent.rest_day_units,
            "export_history_days": sent.history_days,
            "banked_kwh": export.bank.units,
        }
    so_far = units.so_far - (export.units.so_far if export is not None else 0)
    return {
        "consumer_id": cycle.consumer["id"],
        "period_start": units.cycle_start,
        "period_end": units.cycle_end,
        "last_day": units.cycle_end - timedelta(days=1),
        "board_cycle": cycle.cycle_months is not None,
        "time_zone": str(cycle.tz),
        "as_of": units.as_of,
        "currency": cycle.board["currency"],
        "energy_unit": cycle.versions[-1].spec.energy_unit,
        "units_so_far": round(so_far, 3),  # a net-metered household's net of its export
        "remaining_days": units.remaining_days,
        "history_days": units.history_days,
        "weekday_units": units.weekday_units,
        "rest_day_units": units.rest_day_units,
        "expected": _bill(expected),
        "low": _bill(low),
        "high": _bill(high),
        "range_pct": 80,
        "net_metering": net,
        "lines": [round_line(line) for line in expected.lines],
    }


async def _recommendations_of(conn: AsyncConnection, cycle: _Cycle) -> dict[str, Any]:
    standby = recommending.standby_kw(cycle.by_hour, cycle.tz, cycle.units.as_of)
    net = None
    if cycle.export is not None:  # `cycle.bill` nets the same export and bank
        sent = cycle.export.units
        net = recommending.Netting(sent.so_far, sent.expected, cycle.export.bank.units)
    base, found = recommending.recommend(
        cycle.units,
        cycle.bill,
        spec_at_end=cycle.versions[-1].spec,
        tz=cycle.tz,
        holidays=cycle.holidays,
        standby=standby,
        cycle_months=cycle.cycle_months,
        sanctioned_kw=cycle.sanctioned_kw,
        demand=await _demand_of_year(conn, cycle),
        power_factor=await _power_factor_of(conn, cycle),
        net=net,
    )
    return {
        "consumer_id": cycle.consumer["id"],
        "board_id": cycle.consumer["board_id"],
        "period_start": cycle.units.cycle_start,
        "period_end": cycle.units.cycle_end,
        "time_zone": str(cycle.tz),
        "as_of": cycle.units.as_of,
        "currency": cycle.board["currency"],
        "energy_unit": cycle.versions[-1].spec.energy_unit,
        "forecast": _bill(base),
        "standby_kw": standby,
        "items": [
            {
                "kind": r.kind,
                "category": r.category,
                "saving": r.saving,
                "units": r.units,
                "units_per_day": r.units_per_day,
                "figures": r.figures,
                "assumption": r.assumption,
            }
            for r in found
        ],
    }
