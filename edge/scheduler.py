"""Bus schedulers: one per physical port (docs/architecture.md: The edge daemon).

A polled bus runs one transaction at a time (the Modbus line's lock guarantees it on RS-485;
the scheduler never starts a second read). Each meter has a due time per poll class ("fast":
instantaneous values, "slow": energy registers); the scheduler always serves the most overdue
read next, so every meter gets its turn. A meter that fails backs off exponentially (capped) and
is re-probed when its back-off ends: a dead meter costs the bus one short timeout per back-off
period, never a stall. Statistics are kept per meter.

An MQTT bus is a subscription: samples arrive when the meters publish; a meter's last will
marks it offline.

A DLMS meter's clock is read with its energy registers (drift past the threshold raises an
event), and after a gap in its data (the gateway or the meter was down) its load profile is read
back to fill the gap; its event logs are read from the last event taken (`MeterEventsHook`).
The cloud may also ask for a range of the profile (`read_load_profile`,
a day at a time so the other meters keep their turns) or for the meter's clock to be set
(`set_meter_clock`).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from protocols.errors import (
    CrcError,
    FrameError,
    MeterException,
    MeterTimeout,
    ProtocolError,
    TransportError,
)
from protocols.modbus.profile import get_profile
from protocols.modbus.reader import ModbusMeterConfig, ModbusMeterReader
from protocols.modbus.timing import LineSettings
from protocols.modbus.transport import ModbusLine, ModbusSerialLine, ModbusTcpLine
from protocols.reader import Value
from shared import Sample

from .config import BusSection, MeterSection

# the DLMS stack (dlms_cosem, cryptography) and the MQTT client are loaded by the buses that
# use them, not by a gateway that only reads Modbus: megabytes on a Raspberry Pi
if TYPE_CHECKING:
    from protocols.dlms.is15959 import Log
    from protocols.dlms.profiles import MeterEvent
    from protocols.dlms.reader import DlmsMeterReader
    from protocols.dlms.security import CounterLedger, SecurityKeys

log = structlog.get_logger(__name__)

PollClass = str  # "fast" | "slow"
# what the daemon does with a meter's samples: (meter, samples, backfilled?)
SampleSink = Callable[[str, Sequence[Value], bool], Awaitable[None]]
# what the daemon does with a verdict on a meter's communication: (meter, ok, detail)
HealthSink = Callable[[str, bool, str], Awaitable[None]]
ClockSink = Callable[[str, float], Awaitable[None]]


@dataclass(frozen=True)
class MeterEventsHook:
    """Where a DLMS meter's event logs are read from (per log) and what takes what was read."""

    since: Callable[[str], dict[Log, datetime | None]]
    deliver: Callable[[str, list[MeterEvent]], Awaitable[None]]


def is_dlms(reader: object) -> bool:
    """Whether `reader` is a DLMS meter's: asked without loading the DLMS stack (without it
    loaded, no reader is one)."""
    module = sys.modules.get("protocols.dlms.reader")
    return module is not None and isinstance(reader, module.DlmsMeterReader)


PROFILE_CHUNK = timedelta(days=1)  # a load profile asked for by hand is read a day at a time
PROFILE_PERIOD = timedelta(minutes=15)


@dataclass
class MeterStats:
    transactions: int = 0
    good_reads: int = 0
    timeouts: int = 0
    crc_errors: int = 0
    frame_errors: int = 0
    exceptions: int = 0
    transport_errors: int = 0
    failures_in_row: int = 0
    latency_ms: float | None = None  # smoothed duration of a good read
    last_good_read: str | None = None
    last_error: str | None = None
    backoff_s: float = 0.0

    def record_error(self, exc: BaseException) -> None:
        self.transactions += 1
        self.failures_in_row += 1
        self.last_error = str(exc)[:200]
        if isinstance(exc, MeterTimeout | TimeoutError):
            self.timeouts += 1
        elif isinstance(exc, CrcError):
            self.crc_errors += 1
        elif isinstance(exc, FrameError):
            self.frame_errors += 1
        elif isinstance(exc, MeterException):
            self.exceptions += 1
        else:
            self.transport_errors += 1

    def record_good(self, seconds: float, at: datetime) -> None:
        self.transactions += 1
        self.good_reads += 1
        self.failures_in_row = 0
        self.backoff_s = 0.0
        ms = seconds * 1000
        self.latency_ms = ms if self.latency_ms is None else 0.8 * self.latency_ms + 0.2 * ms
        self.last_good_read = at.isoformat()


@dataclass
class PolledMeter:
    config: MeterSection
    reader: ModbusMeterReader | DlmsMeterReader
    stats: MeterStats = field(default_factory=MeterStats)
    due: dict[PollClass, float] = field(default_factory=dict)  # poll class -> monotonic time
    backoff_until: float = 0.0

    @property
    def meter_id(self) -> str:
        return self.config.id

    def interval(self, poll_class: PollClass) -> float:
        return self.config.fast_s if poll_class == "fast" else self.config.slow_s


def _modbus_line(bus: BusSection) -> ModbusLine:
    if bus.kind == "modbus-rtu":
        settings = LineSettings(baud=bus.baud, parity=bus.parity, stop_bits=bus.stop_bits)
        return ModbusSerialLine(bus.port or "", settings)
    return ModbusTcpLine(bus.host or "", bus.tcp_port or 502)


def build_meters(
    bus: BusSection,
    password: Callable[[MeterSection], str | None] | None = None,
    keys: Callable[[MeterSection], SecurityKeys | None] | None = None,
    counters: Callable[[MeterSection], CounterLedger] | None = None,
) -> tuple[list[PolledMeter], ModbusLine | None]:
    """The readers of a polled bus (and its Modbus line, to close at the end); `password`
    finds a DLMS meter's password (its own, or the secret its reference names), `keys` its
    HLS-GMAC keys and `counters` where its invocation counters are kept durably."""
    password = password or (lambda meter: meter.password)
    meters = []
    line = None
    if bus.kind.startswith("modbus"):
        line = _modbus_line(bus)
        for m in bus.meters:
            config = ModbusMeterConfig(
                meter_id=m.id,
                unit_id=m.unit or 1,
                profile=get_profile(m.profile or ""),
                timeout_s=m.timeout_s,
            )
            meters.append(PolledMeter(m, ModbusMeterReader(config, line)))
    else:
        from protocols.dlms.reader import (
            DlmsMeterConfig,
            DlmsMeterReader,
            hdlc_link_factory,
            wrapper_link_factory,
        )

        settings = LineSettings(baud=bus.baud, parity=bus.parity, stop_bits=bus.stop_bits)
        for m in bus.meters:
            hls = m.mechanism == "hls-gmac"
            config = DlmsMeterConfig(
                meter_id=m.id,
                password=secret.encode() if (secret := password(m)) and not hls else None,
                physical_address=m.hdlc_address or 17,
                logical_device=m.logical_device,
                timeout_s=max(m.timeout_s, 1.0),
                keys=keys(m) if hls and keys else None,
                client_sap=m.client_sap,
            )
            if hls and config.keys is None:
                raise ValueError(f"meter {m.id}: hls-gmac without keys")
            factory = (
                hdlc_link_factory(bus.port or "", settings, config)
                if bus.kind == "dlms-hdlc"
                else wrapper_link_factory(bus.host or "", bus.tcp_port or 4059, config)
            )
            ledger = counters(m) if hls and counters else None
            meters.append(PolledMeter(m, DlmsMeterReader(config, factory, ledger)))
    return meters, line


class BusScheduler:
    """Polls the meters of one bus, one read at a time, most overdue first."""

    def __init__(
        self,
        bus: BusSection,
        meters: list[PolledMeter],
        *,
        on_samples: SampleSink,
        on_health: HealthSink,
        on_meter_clock: ClockSink,
        communication_loss_s: float,
        line: ModbusLine | None = None,
        meter_events: MeterEventsHook | None = None,
    ) -> None:
        self.bus = bus
        self._meter_events = meter_events
        self.meters = meters
        self.line = line
        self._on_samples = on_samples
        self._on_health = on_health
        self._on_meter_clock = on_meter_clock
        self._loss_s = communication_loss_s
        self._log = log.bind(bus=bus.name)
        self.busy_s = 0.0
        self.started = time.monotonic()
        self.heartbeat = time.monotonic()  # the watchdog checks this moves
        self._turn = asyncio.Lock()  # one transaction at a time: polls and reads on demand

    def restore(self, saved: dict[str, dict]) -> None:
        """Statistics (and the last good read, for backfill) from an earlier run."""
        for meter in self.meters:
            data = saved.get(meter.meter_id)
            if data:
                known = {k: v for k, v in data.items() if k in MeterStats.__dataclass_fields__}
                meter.stats = MeterStats(**{**known, "failures_in_row": 0, "backoff_s": 0.0})

    def _next(self, now: float) -> tuple[float, PolledMeter | None, PollClass]:
        best: tuple[float, PolledMeter | None, PollClass] = (now + 1.0, None, "fast")
        for meter in self.meters:
            for poll_class in ("slow", "fast"):  # energy first when both are due
                due = max(meter.due.setdefault(poll_class, now), meter.backoff_until)
                if due < best[0]:
                    best = (due, meter, poll_class)
        return best

    async def run(self) -> None:
        self._log.info("bus started", kind=self.bus.kind, meters=len(self.meters))
        while True:
            now = time.monotonic()
            self.heartbeat = now
            due, meter, poll_class = self._next(now)
            if meter is None or due > now:
                await asyncio.sleep(min(max(due - now, 0.0), 1.0))
                continue
            async with self._turn:
                await self._poll(meter, poll_class, now)

    def meter(self, meter_id: str) -> PolledMeter | None:
        return next((m for m in self.meters if m.meter_id == meter_id), None)

    async def switch_supply(self, meter_id: str, connect: bool) -> dict:
        """Open or close a DLMS meter's supply relay, between two polls."""
        meter = self.meter(meter_id)
        assert meter is not None
        assert is_dlms(meter.reader)
        async with self._turn:
            budget = meter.config.timeout_s * 20 + 5
            return await asyncio.wait_for(meter.reader.switch_supply(connect), budget)

    async def read_load_profile(
        self, meter_id: str, start: datetime, end: datetime
    ) -> list[Sample]:
        """A DLMS meter's load profile from `start` to `end` (inclusive), a day at a time:
        the line is given back between days, so a long range never stops the other meters'
        polls (nor the watchdog's heartbeat). A capture on a day's edge is kept once."""
        meter = self.meter(meter_id)
        assert meter is not None
        assert is_dlms(meter.reader)
        found: dict[tuple[str, datetime], Sample] = {}
        day_start = start
        while day_start < end:
            day_end = min(day_start + PROFILE_CHUNK, end)
            async with self._turn:
                # a day's 96 captures, a fifth of a second each on a slow HDLC line
                budget = meter.config.timeout_s * 20 + 5 + PROFILE_CHUNK / PROFILE_PERIOD * 0.2
                samples = await asyncio.wait_for(
                    meter.reader.read_load_profile(day_start, day_end), budget
                )
            for sample in samples:
                found[(sample.quantity, sample.ts)] = sample
            day_start = day_end
        return sorted(found.values(), key=lambda s: (s.ts, s.quantity))

    async def set_meter_clock(
        self, meter_id: str, max_drift_s: float, now: Callable[[], datetime]
    ) -> dict[str, Any]:
        """Read a DLMS meter's clock against `now` (the gateway's trusted time); past
        `max_drift_s`, set it and read it back. What was found and done."""
        meter = self.meter(meter_id)
        assert meter is not None
        assert is_dlms(meter.reader)
        reader = meter.reader
        budget = meter.config.timeout_s * 20 + 5
        async with self._turn:
            before = (await asyncio.wait_for(reader.read_clock(), budget) - now()).total_seconds()
            if abs(before) <= max_drift_s:
                return {"set": False, "drift_s": round(before, 2), "max_drift_s": max_drift_s}
            await asyncio.wait_for(reader.write_clock(now), budget)
            after = (await asyncio.wait_for(reader.read_clock(), budget) - now()).total_seconds()
        self._log.info(
            "meter clock set", meter_id=meter_id, drift_before_s=before, drift_after_s=after
        )
        if abs(after) > max_drift_s:
            raise MeterException(
                f"the clock was set but still reads {after:+.1f} s off (was {before:+.1f} s)",
                code=0,
                meter=meter_id,
            )
        return {
            "set": True,
            "drift_before_s": round(before, 2),
            "drift_after_s": round(after, 2),
            "max_drift_s": max_drift_s,
        }

    async def read_now(self, meter_id: str, quantities: list[str] | None) -> dict:
        """Read a meter at once, between two polls: its instantaneous values and registers,
        stored like any other reading; the values read (of `quantities`, if given) and when."""
        meter = next(m for m in self.meters if m.meter_id == meter_id)
        async with self._turn:
            samples = []
            for poll_class in ("fast", "slow"):
                budget = meter.config.timeout_s * 20 + 5
                samples += await asyncio.wait_for(meter.reader.read(poll_class), budget)
        await self._on_samples(meter.meter_id, samples, False)
        wanted = set(quantities or ())
        chosen = [s for s in samples if not wanted or s.quantity in wanted]
        return {
            "values": {s.quantity: s.value for s in chosen},
            "at": {s.quantity: s.ts.isoformat() for s in chosen},
        }

    async def _poll(self, meter: PolledMeter, poll_class: PollClass, now: float) -> None:
        started = time.monotonic()
        was_failing = meter.stats.failures_in_row > 0
        try:
            # the reader's own per-request timeouts bound a read; this bounds a stuck driver
            budget = meter.config.timeout_s * 20 + 5
            samples = await asyncio.wait_for(meter.reader.read(poll_class), budget)
        except (ProtocolError, TimeoutError, OSError) as exc:
            await self._failed(meter, exc, now)
            return
        finally:
            self.busy_s += time.monotonic() - started
        at = datetime.now(UTC)
        gap_from = meter.stats.last_good_read
        meter.stats.record_good(time.monotonic() - started, at)
        meter.due[poll_class] = max(meter.due[poll_class] + meter.interval(poll_class), now)
        await self._on_samples(meter.meter_id, samples, False)
        await self._on_health(meter.meter_id, True, "")
        if is_dlms(meter.reader) and (poll_class == "slow" or was_failing):
            await self._dlms_extras(meter, gap_from, at)

    async def _failed(self, meter: PolledMeter, exc: BaseException, now: float) -> None:
        meter.stats.record_error(exc)
        failures = meter.stats.failures_in_row
        backoff = min(meter.config.fast_s * 2 ** (failures - 1), self.bus.backoff_max_s)
        meter.stats.backoff_s = backoff
        meter.backoff_until = now + backoff
        self._log.warning(
            "meter read failed",
            meter_id=meter.meter_id,
            error=type(exc).__name__,
            detail=str(exc)[:200],
            failures_in_row=failures,
            retry_in_s=round(backoff, 1),
        )
        last_good = meter.stats.last_good_read
        silent_s = (
            (datetime.now(UTC) - datetime.fromisoformat(last_good)).total_seconds()
            if last_good
            else time.monotonic() - self.started
        )
        if silent_s >= self._loss_s or failures >= 3:
            await self._on_health(meter.meter_id, False, str(exc)[:200])

    async def _dlms_extras(self, meter: PolledMeter, gap_from: str | None, now: datetime) -> None:
        reader = meter.reader
        assert is_dlms(reader)
        try:
            meter_time = await reader.read_clock()
            drift = (meter_time - datetime.now(UTC)).total_seconds()
            await self._on_meter_clock(meter.meter_id, drift)
            if gap_from:
                start = datetime.fromisoformat(gap_from)
                if now - start > timedelta(seconds=2 * meter.config.slow_s):
                    samples = await reader.read_load_profile(start, now)
                    if samples:
                        self._log.info(
                            "load profile backfilled", meter_id=meter.meter_id, samples=len(samples)
                        )
                        await self._on_samples(meter.meter_id, samples, True)
            if self._meter_events is not None:
                since = self._meter_events.since(meter.meter_id)
                events = await reader.read_events(since)
                await self._meter_events.deliver(meter.meter_id, events)
        except (ProtocolError, TimeoutError, OSError) as exc:
            self._log.warning(
                "DLMS clock/profile/event read failed", meter_id=meter.meter_id, error=str(exc)
            )

    def close(self) -> None:
        if self.line is not None:
            self.line.close()


class MqttBus:
    """Samples from meters that publish; offline on their last will."""

    def __init__(
        self,
        bus: BusSection,
        *,
        on_samples: SampleSink,
        on_health: HealthSink,
        client_id: str,
    ) -> None:
        from protocols.mqtt.profile import get_mqtt_profile
        from protocols.mqtt.reader import MqttMeterReader

        self.bus = bus
        profile = get_mqtt_profile(next((m.profile for m in bus.meters if m.profile), "tasmota"))
        devices = {m.device or m.id: m.id for m in bus.meters}
        self.reader = MqttMeterReader(
            bus.host or "",
            bus.tcp_port or 1883,
            profile,
            devices,
            topic_prefix=bus.topic_prefix,
            client_id=client_id,
        )
        self.stats = {m.id: MeterStats() for m in bus.meters}
        self._on_samples = on_samples
        self._on_health = on_health
        self._log = log.bind(bus=bus.name)
        self.heartbeat = time.monotonic()

    async def run(self) -> None:
        from protocols.mqtt.reader import MeterSamples

        failures = 0
        while True:
            try:
                async for update in self.reader.updates():
                    self.heartbeat = time.monotonic()
                    failures = 0
                    stats = self.stats[update.meter_id]
                    if isinstance(update, MeterSamples):
                        stats.record_good(0.0, datetime.now(UTC))
                        await self._on_samples(update.meter_id, update.samples, False)
                        await self._on_health(update.meter_id, True, "")
                    elif not update.online:
                        stats.record_error(TransportError("last will: the meter went offline"))
                        await self._on_health(update.meter_id, False, "went offline (last will)")
            except TransportError as exc:
                failures += 1
                wait = min(2.0**failures, self.bus.backoff_max_s)
                self._log.warning("MQTT broker unreachable", error=str(exc), retry_in_s=wait)
                await asyncio.sleep(wait)

    def close(self) -> None:
        pass
