"""The edge daemon: buses -> checks -> store -> sync, under systemd's watchdog.

    samples (bus schedulers) --> clock flag, local checks --> buffer --> store (durable, batched)
                                                                         |
                                                      disk budget <------+------> sync (cloud)

Readings count as taken only once their transaction has committed. The checks' state is
committed with the readings and events it produced (taken from the checker at the moment the
buffer is, and held with them while the store cannot be written), so a kill -9 at any instant
restarts from the state of the last events stored: no alert raised or cleared twice. Meter and
bus statistics are saved apart, every `stats_save_s` (environment `GRIDGATE_EDGE_STATS_SAVE_S`,
2 s; tests make it rare). The store is touched from one thread only (SQLite writes and fsyncs
never block the event loop). SIGTERM or SIGINT stop the
buses, flush what was read, and close the store within a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import structlog
from pydantic import ValidationError

from shared import (
    EVENT_KINDS,
    QUANTITIES,
    SECTIONS,
    BusHealth,
    ConfigReport,
    ConfigState,
    DesiredConfig,
    EventStatus,
    GatewaySettings,
    KeyInvalid,
    MeterHealth,
    Quality,
    Severity,
)

from . import malloc, meter_events, systemd
from .checks import Checker, MeterProfile
from .clock import GatewayClock
from .cloud_http import proxy_settings
from .config import BusSection, EdgeConfig, MeterSection, load_or_report
from .recent_log import RecentLog
from .refusal import CommandRefused
from .scheduler import BusScheduler, MeterEventsHook, MqttBus, build_meters, is_dlms
from .software import VERSION, SoftwareAgent
from .store import NewEvent, ReadingRow, Store, to_us
from .updater import Layout, detect_layout

# a gateway loads what its configuration uses: the DLMS stack for DLMS buses, the cloud's
# sync and commands (HTTP, signatures) once it is enrolled
if TYPE_CHECKING:
    from protocols.dlms.is15959 import Log
    from protocols.dlms.profiles import MeterEvent
    from protocols.dlms.security import CounterLedger
    from protocols.reader import Value

    from .cloud_http import Transport
    from .control import Controller
    from .sync import Syncer

log = structlog.get_logger(__name__)
UNSYNCED = Quality.CLOCK_UNSYNCED
new_row = tuple.__new__
STOP_GRACE_S = 10.0  # how long a stop waits for each part of the daemon to finish
T = TypeVar("T")
STALL_S = 120.0  # a bus or the writer silent this long means the daemon is stuck
TRIM_EVERY_S = 300.0  # how often the heaps' free pages go back to the system (edge/malloc.py)
# rows held in memory while the store cannot be written; past this, the oldest instantaneous
# values go first (energy registers are kept: they are the bill)
MAX_PENDING = 500_000
# the configuration the cloud gave, in the store: the last version that ran well, and the one
# being tried (tried again once after a stop in the middle; then given up)
GOOD_KEY = "config:good"
CANDIDATE_KEY = "config:candidate"
MAX_ATTEMPTS = 2


class StoreThread:
    """Runs Store methods on one dedicated thread."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="store")

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, self.store, *args))

    def shutdown(self) -> None:
        self._executor.submit(self.store.close).result()
        self._executor.shutdown(wait=True)


class Daemon:
    def __init__(
        self,
        config: EdgeConfig,
        *,
        clock: GatewayClock | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.local = config  # the file, as written
        self.config = config  # what runs: the file, with the cloud's settings where it allows
        self.config_version = 0  # the cloud's version running (0: the file's own settings)
        self.clock = clock or GatewayClock.from_config(config.clock)
        self._transport = transport
        self._readings: list[ReadingRow] = []
        self._events: list[NewEvent] = []
        self.taken = 0  # readings durably stored by this run
        self.profiles: dict[str, MeterProfile] = {}
        self._synced: bool | None = None
        self._writer_beat = time.monotonic()
        self.buses: list[BusScheduler | MqttBus] = []
        self._bus_tasks: dict[str, asyncio.Task] = {}
        self._failure: BaseException | None = None
        self._trying: dict[str, str] = {}  # buses of a configuration on trial -> why they failed
        self.syncer: Syncer | None = None
        self.controller: Controller | None = None
        self.software: SoftwareAgent | None = None
        self.recent_log = RecentLog()
        self.stopping = asyncio.Event()
        self._write_failure: tuple[datetime, str] | None = None
        self._dropped = 0
        self.stats_save_s = float(os.environ.get("GRIDGATE_EDGE_STATS_SAVE_S", "2"))
        self._flush_lock = asyncio.Lock()
        self._event_cursors: dict[str, dict] = {}  # meter -> its event logs' cursor
        self._state_with_events: dict[str, Any] = {}  # committed with the next events

    # -- intake ---------------------------------------------------------------------------------
    def _event(self, kind: str, status: EventStatus, message: str = "", **kw: Any) -> NewEvent:
        return NewEvent(
            ts=self.clock.now(),
            kind=kind,
            status=status,
            severity=kw.pop("severity", EVENT_KINDS[kind][0]),
            message=message or EVENT_KINDS[kind][1],
            **kw,
        )

    async def on_samples(self, meter_id: str, samples: Sequence[Value], backfill: bool) -> None:
        """A read's values, as rows of the log: repeats dropped, stamped `clock_unsynced` while
        the time is unknown, checked (or, filled from a load profile, told as a backfill)."""
        synced = self._synced is not False
        mono = None if synced else self.clock.monotonic_us()
        latest = self._latest.setdefault(meter_id, {})
        readings: list[ReadingRow] = []
        add = readings.append
        stamp, ts = None, 0
        for s in samples:
            if s.ts is not stamp:  # a read's values share their time: converted once
                stamp, ts = s.ts, to_us(s.ts)
            quantity = s.quantity
            if not backfill:  # a sample not newer than the last of its series is a repeat
                if ts <= latest.get(quantity, -1):
                    continue
                latest[quantity] = ts
            # tuple.__new__: a ReadingRow without the Python frame of its generated __new__
            quality = s.quality if synced else UNSYNCED
            add(new_row(ReadingRow, (meter_id, quantity, ts, s.value, quality, mono)))
        if not readings:
            return
        if backfill:
            events = [
                self._event(
                    "backfill",
                    EventStatus.NOTICE,
                    f"{len(readings)} readings filled from the meter's load profile",
                    meter_id=meter_id,
                    details={"readings": len(readings)},
                )
            ]
        else:
            readings, events = self.checker.process(
                meter_id, readings, self.profiles.get(meter_id, MeterProfile())
            )
        self._readings.extend(readings)
        self._events.extend(events)

    async def on_health(self, meter_id: str, ok: bool, detail: str) -> None:
        self._events.extend(self.checker.communication(meter_id, ok, self.clock.now(), detail))

    async def on_meter_clock(self, meter_id: str, drift_s: float) -> None:
        self._events.extend(self.checker.meter_clock(meter_id, drift_s, self.clock.now()))

    # -- a DLMS meter's own event logs (edge/meter_events.py) ---------------------------------
    def meter_events_since(self, meter_id: str) -> dict[Log, datetime | None]:
        return meter_events.since(self._event_cursors.get(meter_id))

    async def on_meter_events(self, meter_id: str, events: list[MeterEvent]) -> None:
        """Events the meter logged, each taken once: what is new becomes events (alerts), and
        the cursor that says so is committed with them."""
        fresh, cursor = meter_events.take(meter_id, events, self._event_cursors.get(meter_id))
        if not fresh:
            return
        self._event_cursors[meter_id] = cursor
        self._events.extend(fresh)
        self._state_with_events[meter_events.PREFIX + meter_id] = cursor

    # -- loops ----------------------------------------------------------------------------------
    async def _flush(self) -> None:
        # one at a time (the writer, a backfill, the clock): a later write never commits state
        # ahead of the events of an earlier one that failed and is held
        async with self._flush_lock:
            await self._flush_once()

    async def _flush_once(self) -> None:
        # the events buffered and the checks' state they left, taken at one moment (no await in
        # between): what is committed together is what restarts together
        readings, events = self._readings, self._events
        changed = self.checker.dump_dirty()
        cursors, self._state_with_events = self._state_with_events, {}
        self._readings, self._events = [], []
        if readings or events or changed or cursors:
            state = {f"check:{meter}": data for meter, data in changed.items()} | cursors
            try:
                await self.store(Store.append_rows, readings, events, state)
            except Exception as exc:  # disk full, I/O error: keep the rows, say so, retry
                self._hold(readings, events, exc)
                self._state_with_events = cursors | self._state_with_events
                # their meters' state goes with the retry: the newest by then, which is that of
                # the events held plus those buffered meanwhile
                self.checker.dirty.update(changed)
                return
            self.taken += len(readings)
            if self._write_failure is not None:
                self._report_recovery()
            if events and self.syncer is not None:
                self.syncer.wake.set()  # alerts go out ahead of the next interval
        self._writer_beat = time.monotonic()
        if self._write_failure is not None:
            return
        reductions = await self.store(Store.enforce_budget, self.config.store.downsample_interval_s)
        if reductions:
            await self.store(Store.append, [], reductions)
            if self.syncer is not None:
                self.syncer.forget_unanswered()  # its unsent readings were just reduced

    def _hold(self, readings: list[ReadingRow], events: list[NewEvent], exc: Exception) -> None:
        if self._write_failure is None:
            self._write_failure = (self.clock.now(), str(exc))
        self._readings[:0], self._events[:0] = readings, events
        excess = len(self._readings) - MAX_PENDING
        if excess > 0:
            kept = []
            for reading in self._readings:
                if excess > 0 and not QUANTITIES[reading.quantity].is_cumulative:
                    excess -= 1
                    self._dropped += 1
                    continue
                kept.append(reading)
            self._readings = kept
        log.error(
            "store write failed; holding rows in memory",
            error=str(exc),
            held=len(self._readings),
            dropped=self._dropped,
        )

    def _report_recovery(self) -> None:
        since, error = self._write_failure or (self.clock.now(), "")
        self._events.append(
            self._event(
                "store_write_failed",
                EventStatus.NOTICE,
                f"the store could not be written from {since:%Y-%m-%d %H:%M:%S}Z ({error});"
                f" {self._dropped} instantaneous readings were dropped",
                details={"since": since.isoformat(), "error": error, "dropped": self._dropped},
            )
        )
        log.info("store writable again", dropped=self._dropped)
        self._write_failure, self._dropped = None, 0

    async def _writer(self) -> None:
        last_state = last_trim = 0.0
        while True:
            await asyncio.sleep(self.config.store.commit_interval_s)
            await self._flush()
            if time.monotonic() - last_trim > TRIM_EVERY_S:
                last_trim = time.monotonic()
                malloc.give_back_free_pages()  # the pages freed blocks left in the heaps
            if time.monotonic() - last_state > self.stats_save_s:
                last_state = time.monotonic()
                try:
                    await self._save_state()
                except Exception as exc:  # the same trouble as a failed write: retried
                    log.error("saving state failed", error=str(exc))

    def bus_health(self) -> list[BusHealth]:
        """Each bus's counts since start, for the heartbeat (the cloud's gateway page)."""
        out = []
        for bus in self.buses:
            if isinstance(bus, BusScheduler):
                stats = [m.stats for m in bus.meters]
                utilisation = min(1.0, bus.busy_s / max(time.monotonic() - bus.started, 1e-9))
            else:
                stats = list(bus.stats.values())
                utilisation = None
            latencies = [s.latency_ms for s in stats if s.latency_ms is not None]
            out.append(
                BusHealth(
                    name=bus.bus.name[:64],
                    kind=bus.bus.kind,
                    meters=len(stats),
                    meters_failing=sum(1 for s in stats if s.failures_in_row > 0),
                    transactions=sum(s.transactions for s in stats),
                    timeouts=sum(s.timeouts for s in stats),
                    crc_errors=sum(s.crc_errors for s in stats),
                    frame_errors=sum(s.frame_errors for s in stats),
                    exceptions=sum(s.exceptions for s in stats),
                    transport_errors=sum(s.transport_errors for s in stats),
                    latency_ms=float(sum(latencies) / len(latencies)) if latencies else None,
                    utilisation=float(utilisation) if utilisation is not None else None,
                )
            )
        return out[:32]

    def meter_health(self) -> list[MeterHealth]:
        """Each meter's last good read and failure streak, for the heartbeat."""
        out = []
        for bus in self.buses:
            stats = (
                {m.meter_id: m.stats for m in bus.meters}
                if isinstance(bus, BusScheduler)
                else dict(bus.stats)
            )
            for meter_id, stat in stats.items():
                out.append(
                    MeterHealth(
                        meter_id=meter_id,
                        last_good_read=stat.last_good_read,
                        failures_in_row=stat.failures_in_row,
                        last_error=(stat.last_error or "")[:200] or None,
                    )
                )
        return out[:512]

    async def _save_state(self) -> None:
        """Meter and bus statistics and the daemon's own line, for `gridgate edge status` and
        the next start. Never the checks' state: that goes with its events (`_flush`)."""
        items: dict[str, Any] = {}
        for bus in self.buses:
            if isinstance(bus, BusScheduler):
                meters = {m.meter_id: asdict(m.stats) for m in bus.meters}
                utilisation = bus.busy_s / max(time.monotonic() - bus.started, 1e-9)
            else:
                meters = {meter: asdict(stats) for meter, stats in bus.stats.items()}
                utilisation = None
            for meter, stats in meters.items():
                items[f"meter:{meter}"] = {**stats, "bus": bus.bus.name}
            items[f"bus:{bus.bus.name}"] = {
                "kind": bus.bus.kind,
                "meters": list(meters),
                "utilisation": utilisation,
            }
        items["daemon"] = {
            "pid": os.getpid(),
            "updated_at": datetime.now(UTC).isoformat(),
            "taken": self.taken,
            "clock_synced": self._synced,
            "sync": asdict(self.syncer.stats) if self.syncer else None,
            "cloud": self.config.cloud.url,
            "config_version": self.config_version,
        }
        await self.store(Store.put_state, items)

    async def _clock_watch(self) -> None:
        while True:
            synced = self.clock.synchronised()
            if synced != self._synced:
                await self._clock_changed(synced)
            self._synced = synced
            await asyncio.sleep(5.0)

    async def _clock_changed(self, synced: bool) -> None:
        was_synced, self._synced = self._synced, synced  # readings from now on carry the news
        was_open = bool(await self.store(Store.get_state, "clock:unsynced_open"))
        if synced:
            if was_open or was_synced is False:
                # readings taken while the time was unknown may still wait in memory: store them
                # first so that they are re-stamped too. One left behind stays clock_unsynced,
                # and the syncer stops before it (Store.pending_readings) for good.
                await self._flush()
                corrected = await self.store(
                    Store.correct_unsynced,
                    int(self.clock.now().timestamp() * 1_000_000),
                    self.clock.monotonic_us(),
                )
                self._events.append(
                    self._event(
                        "clock_corrected",
                        EventStatus.NOTICE,
                        f"{corrected} readings re-stamped after the clock synchronised",
                        details={"readings": corrected},
                    )
                )
                self._events.append(self._event("clock_unsynced", EventStatus.CLEARED))
            await self.store(Store.put_state, {"clock:unsynced_open": False})
        else:
            if not was_open:
                self._events.append(self._event("clock_unsynced", EventStatus.RAISED))
            await self.store(Store.put_state, {"clock:unsynced_open": True})
            log.warning("gateway clock is not synchronised; readings are held back")

    def clock_state(self) -> tuple[bool, float | None]:
        return bool(self._synced), None

    async def _watchdog(self) -> None:
        interval = systemd.watchdog_interval_s() or 10.0
        while True:
            now = time.monotonic()
            stalled = [
                b.bus.name
                for b in self.buses
                if isinstance(b, BusScheduler) and now - b.heartbeat > STALL_S
            ]
            if now - self._writer_beat > STALL_S:
                stalled.append("store writer")
            if stalled:
                log.error("stalled; withholding the watchdog ping", stalled=stalled)
            else:
                systemd.notify("WATCHDOG=1")
            await asyncio.sleep(interval / 2)

    # -- life -----------------------------------------------------------------------------------
    def _open_store(self) -> None:
        budget = int(self.config.store.disk_budget_mb * 1024 * 1024)
        store = Store(self.config.store_path, budget_bytes=budget)
        store.forget_monotonic()
        self.store = StoreThread(store)
        saved = store.state_items("check:")
        self.checker = Checker(self.config.checks, {k[6:]: v for k, v in saved.items()})
        if store.reset_reason:
            self._events.append(
                self._event(
                    "store_corrupt",
                    EventStatus.NOTICE,
                    f"the store was reset: {store.reset_reason}",
                    severity=Severity.HIGH,
                )
            )
        self._meter_state = store.state_items("meter:")
        self._event_cursors = {
            key[len(meter_events.PREFIX) :]: value
            for key, value in store.state_items(meter_events.PREFIX).items()
        }
        self._latest = store.latest_times()
        self._load_good(store)  # the cloud's last good settings, where the file allows

    def _make_syncer(self) -> Syncer | None:
        if not self.config.cloud.url:
            log.warning("no [cloud] url configured: readings are kept, not sent")
            return None
        try:
            if not self.config.key_path.exists():  # not enrolled: signatures are not loaded
                raise FileNotFoundError(f"no key file at {self.config.key_path}")
            from shared import read_private_key

            key = read_private_key(self.config.key_path)
        except (OSError, KeyInvalid) as exc:
            log.error(
                "gateway is not enrolled or its key cannot be read; readings are kept, not sent"
                " (run: gridgate edge enroll)",
                key_file=str(self.config.key_path),
                error=str(exc),
            )
            return None
        from .sync import Syncer

        self.software = self._make_software(key)
        self.controller = self._make_controller(key)
        return Syncer(
            gateway_id=self.config.gateway.id,
            config=self.config.cloud,
            key=key,
            store_call=self.store,
            clock_state=self.clock_state,
            transport=self._transport,
            bus_health=self.bus_health,
            on_commands=self.controller.wake.set,
            meter_health=self.meter_health,
            disk_budget_bytes=int(self.config.store.disk_budget_mb * 1024 * 1024),
            config_version=lambda: self.config_version,
        )

    # -- commands from the cloud -------------------------------------------------------------
    async def read_now(self, meter_id: str, quantities: list[str] | None) -> dict[str, Any]:
        for bus in self.buses:
            if any(m.id == meter_id for m in bus.bus.meters):
                if not isinstance(bus, BusScheduler):
                    raise CommandRefused(
                        f"meter {meter_id} publishes over MQTT by itself: it cannot be read on"
                        " demand"
                    )
                return await bus.read_now(meter_id, quantities)
        raise CommandRefused(f"meter {meter_id} is not in this gateway's configuration")

    async def switch_supply(self, meter_id: str, connect: bool) -> dict[str, Any]:
        for bus in self.buses:
            if isinstance(bus, BusScheduler) and (meter := bus.meter(meter_id)) is not None:
                if not is_dlms(meter.reader):
                    raise CommandRefused(
                        f"meter {meter_id} has no supply relay this gateway can drive"
                        " (only DLMS meters with a disconnect control)"
                    )
                return await bus.switch_supply(meter_id, connect)
        raise CommandRefused(
            f"meter {meter_id} is not a polled meter of this gateway's configuration"
        )

    def _dlms_bus(self, meter_id: str, what: str) -> BusScheduler:
        """The bus of a DLMS meter of this gateway; refused (saying why) for any other."""
        for bus in self.buses:
            if isinstance(bus, BusScheduler) and (meter := bus.meter(meter_id)) is not None:
                if not is_dlms(meter.reader):
                    raise CommandRefused(
                        f"meter {meter_id} is not a DLMS meter: it keeps no {what}"
                    )
                return bus
        raise CommandRefused(
            f"meter {meter_id} is not a polled meter of this gateway's configuration"
        )

    async def backfill(self, meter_id: str, start: datetime, end: datetime) -> dict[str, Any]:
        """Read a DLMS meter's load profile over a range into the readings, as the automatic
        backfill after an outage does; what the gateway still holds is not stored twice (and
        the cloud keeps a reading once whatever it is sent). Stored durably before it answers."""
        bus = self._dlms_bus(meter_id, "load profile")
        samples = await bus.read_load_profile(meter_id, start, end)
        # rows waiting for the writer first: once handed to the store thread they are written
        # before this question is answered
        held = {(r.quantity, r.ts_us) for r in self._readings if r.meter_id == meter_id}
        held |= await self.store(Store.reading_times, meter_id, to_us(start), to_us(end))
        fresh = [s for s in samples if (s.quantity, to_us(s.ts)) not in held]
        if fresh:
            await self.on_samples(meter_id, fresh, True)
            await self._flush()
        return {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "intervals": len({s.ts for s in samples}),
            "readings": len(samples),
            "stored": len(fresh),
            "already_held": len(samples) - len(fresh),
        }

    async def set_meter_clock(self, meter_id: str, max_drift_s: float) -> dict[str, Any]:
        """Set a DLMS meter's clock from the gateway's if it drifts past `max_drift_s`; never
        from a gateway clock that is not trusted (a Pi that booted in the past would push its
        wrong time into the meter, and every reading stamped by the meter after it)."""
        bus = self._dlms_bus(meter_id, "clock the gateway can set")
        state = self.clock.state()
        if not state.trusted:
            raise CommandRefused(
                f"the gateway's own clock is not trusted ({state.detail}): a meter's clock is"
                f" never set from it; {state.fix}"
            )
        result = await bus.set_meter_clock(meter_id, max_drift_s, self.clock.now)
        await self.on_meter_clock(meter_id, result.get("drift_after_s", result.get("drift_s", 0)))
        return result

    async def run_doctor(self) -> dict[str, Any]:
        from .enrollment import doctor

        findings = await asyncio.to_thread(doctor, self.config)
        return {
            "findings": [
                {"check": f.check, "ok": f.ok, "detail": f.detail, "fix": f.fix} for f in findings
            ]
        }

    def _make_controller(self, key) -> Controller:
        from .control import Actions, Controller

        return Controller(
            gateway_id=self.config.gateway.id,
            key=key,
            cloud_url=self.config.cloud.url or "",
            cloud_key_path=self.config.cloud_key_path,
            store_call=self.store,
            actions=Actions(
                read_now=self.read_now,
                switch_supply=self.switch_supply,
                backfill=self.backfill,
                set_meter_clock=self.set_meter_clock,
                doctor=self.run_doctor,
                log_lines=self.recent_log.last,
                restart=self.stopping.set,
                apply_config=self.apply_config,
                resume_config=self.resume_config,
                running=lambda version, state, detail: self.report(
                    version, ConfigState(state), detail
                ),
                update=self.software.update if self.software else None,
            ),
            timeout_s=self.config.cloud.timeout_s,
            transport=self._transport,
        )

    def _make_software(self, key) -> SoftwareAgent:
        prefix = self.config.update.prefix
        return SoftwareAgent(
            layout=Layout(self.config.base_dir / prefix) if prefix else detect_layout(),
            running=VERSION,
            grace_s=self.config.update.health_grace_s,
            gateway_id=self.config.gateway.id,
            key=key,
            cloud_url=self.config.cloud.url,
            transport=self._transport,
        )

    def healthy(self) -> bool:
        """Store open and buses started (we are running), and the cloud has taken a batch from
        this process when there is a cloud: what a new software version must show."""
        return self.syncer is None or self.syncer.stats.batches > 0

    async def _watch_software(self) -> None:
        assert self.software is not None
        await self.software.watch(self.healthy, self.stopping.set)
        await self.stopping.wait()  # nothing more to do; a finished task would stop the daemon

    def _make_bus(self, bus: BusSection) -> BusScheduler | MqttBus:
        if bus.kind == "mqtt":
            return MqttBus(
                bus,
                on_samples=self.on_samples,
                on_health=self.on_health,
                client_id=f"{self.config.gateway.id}-{bus.name}",
            )
        meters, line = build_meters(
            bus,
            self.config.password,
            self.config.meter_keys,
            self._counter_file,
        )
        scheduler = BusScheduler(
            bus,
            meters,
            on_samples=self.on_samples,
            on_health=self.on_health,
            on_meter_clock=self.on_meter_clock,
            communication_loss_s=self.config.checks.communication_loss_s,
            line=line,
            meter_events=MeterEventsHook(self.meter_events_since, self.on_meter_events),
        )
        scheduler.restore(
            {k[6:]: v for k, v in self._meter_state.items() if v.get("bus") == bus.name}
        )
        return scheduler

    def _counter_file(self, meter: MeterSection) -> CounterLedger:
        """Where an HLS meter's invocation counters are kept (the DLMS stack is loaded)."""
        from .dlms_counters import CounterFile

        return CounterFile(self.config.counters_dir, meter.id)

    def _start_bus(self, bus: BusSection) -> None:
        runner = self._make_bus(bus)
        self.buses.append(runner)
        task = asyncio.create_task(runner.run(), name=f"bus {bus.name}")
        task.add_done_callback(functools.partial(self._bus_ended, bus.name))
        self._bus_tasks[bus.name] = task

    def _bus_ended(self, name: str, task: asyncio.Task) -> None:
        if task.cancelled() or task.exception() is None:
            return
        error = task.exception()
        if name in self._trying:  # a bus of a configuration on trial: the trial fails
            self._trying[name] = f"the bus stopped: {error!r}"[:300]
            return
        log.error("a bus failed", bus=name, error=repr(error))
        self._failure = error
        self.stopping.set()

    async def _stop_bus(self, name: str) -> None:
        task = self._bus_tasks.pop(name, None)
        runner = next((b for b in self.buses if b.bus.name == name), None)
        if task is not None:
            task.cancel()
            await asyncio.wait([task], timeout=STOP_GRACE_S)
        if runner is not None:
            self.buses.remove(runner)
            await self._save_state()  # its meters' statistics, for the bus that replaces it
            self._meter_state.update(await self.store(Store.state_items, "meter:"))
            runner.close()

    def _use(self, config: EdgeConfig) -> None:
        """Make `config` the running one, apart from the buses (`_swap` restarts those)."""
        self.config = config
        self.profiles = {
            m.id: MeterProfile(m.phases, m.export_allowed) for b in config.buses for m in b.meters
        }
        self.checker.config = config.checks
        self.store.store.budget_bytes = int(config.store.disk_budget_mb * 1024 * 1024)
        if self.syncer is not None:
            self.syncer.config = config.cloud
            self.syncer.disk_budget_bytes = int(config.store.disk_budget_mb * 1024 * 1024)

    async def _swap(self, config: EdgeConfig) -> list[str]:
        """Run `config`: only the buses whose settings differ stop and start again (the others
        keep reading). The names of the buses started."""
        old = {b.name: b for b in self.config.buses}
        new = {b.name: b for b in config.buses}
        started = [name for name, bus in new.items() if old.get(name) != bus]
        for name in [n for n in old if n not in new or n in started]:
            await self._stop_bus(name)
        self._use(config)
        for name in started:
            self._start_bus(new[name])
        return started

    # -- configuration from the cloud ------------------------------------------------------
    def _settings_of(self, record: dict[str, Any] | None) -> EdgeConfig | None:
        """The file with a stored version's settings in, or None if it no longer loads."""
        if not record or not self.local.remote.managed:
            return None
        try:
            settings = GatewaySettings.model_validate(record["settings"])
            return self.local.with_settings(settings, self.local.remote.pin)
        except (ValidationError, KeyError, TypeError) as exc:
            log.error(
                "a stored configuration from the cloud does not load; running the file's",
                version=record.get("version"),
                error=str(exc)[:300],
            )
            return None

    def _load_good(self, store: Store) -> None:
        good = store.get_state(GOOD_KEY)
        config = self._settings_of(good)
        if config is not None:
            self.config_version = good["version"]
            mine, theirs = self.local.settings(), config.settings()
            differ = [name for name in SECTIONS if getattr(mine, name) != getattr(theirs, name)]
            if differ:  # a technician edited the file: say whose settings run, and how to keep
                log.warning(
                    "the cloud's settings run in place of this file's; to keep the file's,"
                    " pin them in [remote] pin",
                    version=self.config_version,
                    sections=differ,
                )
        self._use(config or self.local)

    def report(self, version: int, state: ConfigState, detail: str = "") -> ConfigReport:
        """What runs now, as the cloud is told it."""
        return ConfigReport(
            version=version,
            state=state,
            detail=detail[:2000],
            running_version=self.config_version,
            settings=self.config.settings(),
            at=datetime.now(UTC),
        )

    def _gateway_problems(self, config: EdgeConfig) -> list[str]:
        """What the schema cannot know: the serial ports and the key files this gateway has."""
        problems = [f"{'.'.join(map(str, loc))}: {why}" for loc, why in config.key_problems()]
        for index, bus in enumerate(config.buses):
            if bus.port and bus.port.startswith("/") and not os.path.exists(bus.port):
                problems.append(
                    f"buses.{index}.port: {bus.port} does not exist on this gateway"
                    f" (bus {bus.name})"
                )
        return problems

    async def apply_config(self, desired: DesiredConfig, attempt: int = 1) -> ConfigReport:
        """Try a version of the settings from the cloud: rejected if it does not load here;
        else run it, and go back to what ran before if a bus it starts does not open or no
        meter on it answers within the grace period."""
        version = desired.version
        if not self.local.remote.managed:
            return self.report(
                version,
                ConfigState.REJECTED,
                "this gateway keeps its settings in its own file ([remote] managed = false)",
            )
        try:
            candidate = self.local.with_settings(desired.settings, self.local.remote.pin)
        except ValidationError as exc:
            problems = [
                f"{'.'.join(str(p) for p in e['loc']) or 'settings'}:"
                f" {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors(include_url=False)
            ]
            return self.report(version, ConfigState.REJECTED, "; ".join(problems))
        problems = self._gateway_problems(candidate)
        if problems:
            return self.report(version, ConfigState.REJECTED, "; ".join(problems))
        # said, then durable, before anything changes: a stop in the middle restarts on the good
        # version, and its log holds the attempt the store counts
        log.info("applying a configuration from the cloud", version=version)
        await self.store(
            Store.put_state,
            {
                CANDIDATE_KEY: {
                    "version": version,
                    "settings": desired.settings.model_dump(mode="json"),
                    "issued_at": desired.issued_at.isoformat(),
                    "attempts": attempt,
                }
            },
        )
        previous, previous_version = self.config, self.config_version
        failure = await self._try(await self._swap(candidate))
        if failure:
            log.error("the new configuration failed; going back", version=version, why=failure)
            await self._swap(previous)
            await self.store(Store.put_state, {CANDIDATE_KEY: None})
            return self.report(version, ConfigState.ROLLED_BACK, failure)
        self.config_version = version
        await self.store(
            Store.put_state,
            {
                GOOD_KEY: {
                    "version": version,
                    "settings": desired.settings.model_dump(mode="json"),
                    "applied_at": datetime.now(UTC).isoformat(),
                    "previous": previous_version,
                },
                CANDIDATE_KEY: None,
            },
        )
        log.info("configuration applied", version=version)
        return self.report(version, ConfigState.APPLIED)

    async def _try(self, started: list[str]) -> str:
        """Wait until every bus started has had a meter answer (''), or say which did not."""
        runners = {b.bus.name: b for b in self.buses if b.bus.name in started and b.bus.meters}
        baseline = {name: self._good_reads(r) for name, r in runners.items()}
        self._trying = dict.fromkeys(runners, "")
        deadline = time.monotonic() + self.local.remote.apply_grace_s
        try:
            while True:
                failed = {n: why for n, why in self._trying.items() if why}
                if failed:
                    return "; ".join(f"bus {n}: {why}" for n, why in failed.items())
                waiting = [n for n, r in runners.items() if self._good_reads(r) <= baseline[n]]
                if not waiting:
                    return ""
                if time.monotonic() > deadline:
                    return "; ".join(
                        f"bus {n}: no meter answered within"
                        f" {self.local.remote.apply_grace_s:g} s{self._last_error(runners[n])}"
                        for n in waiting
                    )
                await asyncio.sleep(0.2)
        finally:
            self._trying = {}

    @staticmethod
    def _stats(runner: BusScheduler | MqttBus) -> list:
        if isinstance(runner, BusScheduler):
            return [m.stats for m in runner.meters]
        return list(runner.stats.values())

    def _good_reads(self, runner: BusScheduler | MqttBus) -> int:
        return sum(s.good_reads for s in self._stats(runner))

    def _last_error(self, runner: BusScheduler | MqttBus) -> str:
        errors = [s.last_error for s in self._stats(runner) if s.last_error]
        return f" ({errors[-1]})" if errors else ""

    async def resume_config(self) -> ConfigReport | None:
        """A version that was being tried when the daemon stopped: tried again from the start
        (the daemon started on the last good one), or given up after the second stop."""
        record = await self.store(Store.get_state, CANDIDATE_KEY)
        if not record:
            return None
        if record["version"] == self.config_version:  # applied; the stop came just after
            await self.store(Store.put_state, {CANDIDATE_KEY: None})
            return None
        if record.get("attempts", 1) >= MAX_ATTEMPTS:
            await self.store(Store.put_state, {CANDIDATE_KEY: None})
            return self.report(
                record["version"],
                ConfigState.ROLLED_BACK,
                f"the gateway stopped {MAX_ATTEMPTS} times while applying it; it runs"
                f" version {self.config_version} as before",
            )
        try:
            desired = DesiredConfig(
                version=record["version"],
                settings=record["settings"],
                issued_at=record["issued_at"],
            )
        except ValidationError as exc:
            await self.store(Store.put_state, {CANDIDATE_KEY: None})
            return self.report(record["version"], ConfigState.REJECTED, str(exc)[:2000])
        log.warning("the daemon stopped while applying a configuration; trying it again")
        return await self.apply_config(desired, attempt=record.get("attempts", 1) + 1)

    async def run(self) -> None:
        """Run until SIGTERM/SIGINT (or `stopping` is set), then flush and close."""
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        self.recent_log.install()
        self._open_store()
        self._synced = self.clock.synchronised()
        self._events.append(
            self._event(
                "gateway_started",
                EventStatus.NOTICE,
                f"edge daemon started with {sum(len(b.meters) for b in self.config.buses)} meters",
            )
        )
        self.syncer = self._make_syncer()
        if self.software is None:  # no cloud: a new version is still on trial
            self.software = self._make_software(None)
        self._use(self.config)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            # not the main thread (a test or an embedding program runs us): its owner stops us
            # through `stopping` instead
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, self.stopping.set)
        for bus in self.config.buses:
            self._start_bus(bus)
        tasks = [asyncio.create_task(self._writer(), name="writer")]
        tasks.append(asyncio.create_task(self._clock_watch(), name="clock"))
        tasks.append(asyncio.create_task(self._watchdog(), name="watchdog"))
        if self.syncer is not None:
            tasks.append(asyncio.create_task(self.syncer.run(), name="sync"))
        if self.controller is not None:
            tasks.append(asyncio.create_task(self.controller.run(), name="commands"))
        if not self._synced:
            await self._clock_changed(False)
        await self._flush()
        systemd.notify("READY=1")
        if self.software is not None:
            tasks.append(asyncio.create_task(self._watch_software(), name="software"))
        if self.syncer is not None and (proxies := proxy_settings()):
            log.warning(
                "the daemon connects to its cloud directly: proxy settings are not used",
                variables=proxies,
            )
        log.info(
            "edge daemon running",
            gateway=self.config.gateway.id,
            buses=len(self.buses),
            store=str(self.config.store_path),
        )
        try:
            stopper = asyncio.create_task(self.stopping.wait())
            done, _ = await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and task.exception() is not None:
                    log.error(
                        "a daemon task failed", task=task.get_name(), error=repr(task.exception())
                    )
                    raise task.exception()  # type: ignore[misc]
            if self._failure is not None:
                raise self._failure
        finally:
            systemd.notify("STOPPING=1")
            tasks.extend(self._bus_tasks.values())
            for task in tasks:
                task.cancel()
            # every row is committed as it is taken, so a task that does not end in time is
            # left behind rather than holding the stop (a supervisor would kill us anyway)
            _, stuck = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
            for task in stuck:
                log.error("a daemon task did not stop in time", task=task.get_name())
            for bus in self.buses:
                bus.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._flush(), STOP_GRACE_S)
                await asyncio.wait_for(self._save_state(), STOP_GRACE_S)
            if self.syncer is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.syncer.close(), STOP_GRACE_S)
            if self.controller is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.controller.close(), STOP_GRACE_S)
            if self.software is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.software.close(), STOP_GRACE_S)
            self.store.shutdown()
            self.recent_log.remove()
            log.info("edge daemon stopped", taken=self.taken)


def run_from_file(path: Path) -> int:
    """`gridgate edge run --config PATH`: run the daemon until it is stopped; 2, with each
    problem on stderr as FILE:LINE: key: problem, when the configuration cannot be used."""
    config = load_or_report(path)
    if config is None:
        return 2
    malloc.keep_large_blocks_mapped()  # a process of months: no megabytes kept per batch
    asyncio.run(Daemon(config).run())
    return 0
