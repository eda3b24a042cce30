"""Local checks: each of docs/architecture.md's list raises once, clears once, flags what it
should, and its state survives a restart (a new Checker from the saved state carries on)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edge.checks import Checker, MeterProfile
from edge.config import ChecksSection
from edge.store import ReadingRow, to_us
from shared import EventStatus, Quality, Severity

T0 = datetime(2026, 10, 1, tzinfo=UTC)
THREE = MeterProfile(phases=3)


def read(step: int, **values: float) -> list[ReadingRow]:
    ts = to_us(T0 + timedelta(minutes=step))
    return [ReadingRow("m1", q, ts, v) for q, v in values.items()]


def kinds(events: list, status: EventStatus | None = None) -> list[str]:
    return [e.kind for e in events if status is None or e.status is status]


def feed(checker: Checker, rows: list[dict[str, float]], start: int = 0, profile=THREE) -> list:
    events = []
    for step, values in enumerate(rows, start=start):
        _, found = checker.process("m1", read(step, **values), profile)
        events += found
    return events


def test_power_spike_drop_and_outage_against_the_baseline() -> None:
    checker = Checker(ChecksSection(), {})
    steady = [{"1.7.0": 2.0 + 0.01 * (i % 3)} for i in range(10)]  # ten samples, then judge
    assert feed(checker, steady) == []
    readings, events = checker.process("m1", read(10, **{"1.7.0": 7.0}), THREE)
    assert kinds(events, EventStatus.RAISED) == ["power_spike"]
    assert events[0].severity is Severity.HIGH  # +250 % is above the +200 % high mark
    assert readings[0].quality is Quality.SUSPECT
    _, again = checker.process("m1", read(11, **{"1.7.0": 7.5}), THREE)
    assert "power_spike" not in kinds(again, EventStatus.RAISED)  # deduplicated while open
    checker = Checker(ChecksSection(), {})
    feed(checker, steady)
    events = feed(checker, [{"1.7.0": 0.05}], start=10)
    assert kinds(events, EventStatus.RAISED) == ["outage"]
    events = feed(checker, [{"1.7.0": 0.6}], start=11)  # load back, but far below baseline
    assert kinds(events) == ["outage", "power_drop"]
    assert [e.status for e in events] == [EventStatus.CLEARED, EventStatus.RAISED]


def test_voltage_sag_swell_and_phase_loss() -> None:
    checker = Checker(ChecksSection(), {})
    normal = {"32.7.0": 230.0, "52.7.0": 231.0, "72.7.0": 229.0}
    assert feed(checker, [normal]) == []
    events = feed(checker, [{**normal, "52.7.0": 200.0}], start=1)
    assert kinds(events, EventStatus.RAISED) == ["voltage_sag"]
    events = feed(checker, [{**normal, "72.7.0": 260.0}], start=2)
    assert sorted(kinds(events)) == ["voltage_sag", "voltage_swell"]  # sag cleared, swell raised
    events = feed(checker, [{**normal, "32.7.0": 3.0}], start=3)
    assert "phase_loss" in kinds(events, EventStatus.RAISED)
    single = Checker(ChecksSection(), {})
    events = feed(single, [{"32.7.0": 230.0}], profile=MeterProfile(phases=1))
    assert events == []


def test_frequency_and_reverse_flow() -> None:
    checker = Checker(ChecksSection(), {})
    events = feed(checker, [{"14.7.0": 50.0, "16.7.0": 1.0}, {"14.7.0": 50.9, "16.7.0": -0.4}])
    assert sorted(kinds(events, EventStatus.RAISED)) == ["frequency_deviation", "reverse_flow"]
    solar = Checker(ChecksSection(), {})
    events = feed(solar, [{"16.7.0": -0.4}], profile=MeterProfile(3, export_allowed=True))
    assert events == []


def test_registers_backwards_jumping_and_rolling_over() -> None:
    checker = Checker(ChecksSection(max_power_kw=10.0), {})
    feed(checker, [{"1.8.0": 500.0}, {"1.8.0": 500.1}])
    readings, events = checker.process("m1", read(2, **{"1.8.0": 499.0}), THREE)
    assert kinds(events) == ["register_backwards"]
    assert events[0].status is EventStatus.NOTICE
    # in words and units, without float dust
    assert events[0].message == (
        "Active energy imported, total went from 500.100 kWh to 499.000 kWh"
    )
    assert readings[0].quality is Quality.SUSPECT
    # 10 kW for one minute is at most 0.167 kWh; 5 kWh is a jump
    readings, events = checker.process("m1", read(3, **{"1.8.0": 504.0}), THREE)
    assert kinds(events) == ["register_jump"]
    rolling = Checker(ChecksSection(), {})
    feed(rolling, [{"1.8.0": 99_999.9}])
    readings, events = rolling.process("m1", read(1, **{"1.8.0": 0.05}), THREE)
    assert kinds(events) == ["register_rollover"]
    assert readings[0].quality is Quality.OK  # a rollover is not tampering


def test_stale_values_and_communication_loss() -> None:
    checker = Checker(ChecksSection(stale_reads=3), {})
    frozen = {"1.7.0": 1.234, "32.7.0": 231.1}
    events = feed(checker, [frozen, frozen, frozen])
    assert kinds(events, EventStatus.RAISED) == ["stale_value"]
    [raised] = events  # which values stood still, in words and in its details
    assert raised.message == (
        "the same values 3 reads running (Active power import 1.234 kW;"
        " Voltage, phase L1 to neutral 231.100 V)"
    ), raised.message
    assert raised.details == {"reads": 3, "1.7.0": 1.234, "32.7.0": 231.1}
    assert feed(checker, [frozen], start=3) == []  # still stuck: raised once
    events = feed(checker, [{"1.7.0": 1.3, "32.7.0": 231.0}], start=4)
    assert kinds(events, EventStatus.CLEARED) == ["stale_value"]
    lost = checker.communication("m1", False, T0, "timeout")
    assert kinds(lost, EventStatus.RAISED) == ["communication_loss"]
    assert checker.communication("m1", False, T0, "timeout") == []
    assert kinds(checker.communication("m1", True, T0), EventStatus.CLEARED) == [
        "communication_loss"
    ]


def test_demand_held_through_its_period_is_not_stale() -> None:
    checker = Checker(ChecksSection(stale_reads=3), {})
    # a slow-class read: energy registers and demand, which holds for its 15-minute period
    held = [{"1.8.0": 100 + 0.01 * i, "1.5.0": 2.5, "1.6.0": 4.75} for i in range(6)]
    assert feed(checker, held) == []
    events = feed(checker, [{**held[-1], "31.7.124": 12.5} for _ in range(3)], start=6)
    assert kinds(events, EventStatus.RAISED) == ["stale_value"]  # distortion frozen: stuck


def test_state_survives_a_restart() -> None:
    checker = Checker(ChecksSection(), {})
    feed(checker, [{"1.7.0": 2.0 + 0.01 * (i % 3), "1.8.0": 10.0} for i in range(12)])
    feed(checker, [{"1.7.0": 9.0, "1.8.0": 10.1}], start=12)
    saved = checker.dump_dirty()
    restarted = Checker(ChecksSection(), saved)
    # the open spike is still open (no second raise), the baseline still judges, registers
    # still compare with the last value before the restart
    events = feed(restarted, [{"1.7.0": 9.5, "1.8.0": 9.0}], start=13)
    assert "power_spike" not in kinds(events, EventStatus.RAISED)
    assert "register_backwards" in kinds(events)
    events = feed(restarted, [{"1.7.0": 2.5, "1.8.0": 9.1}], start=14)
    assert "power_spike" in kinds(events, EventStatus.CLEARED)
