"""Store-and-forward sync: slices of the store's logs, signed, sent until the cloud acknowledges.

A batch carries the unsent events first (alerts travel ahead of bulk readings), then readings in
seq order, bounded by rows and by compressed bytes, with a heartbeat (backlog, oldest unsent
reading, clock state, version). The cursors move only when the cloud's answer names this batch
and its last seq: a batch that was committed in the cloud but whose answer was lost is sent again
and changes nothing there. Failures are retried with capped exponential back-off and jitter
(tenacity); a backlog drains at full resolution, no faster than the configured rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog
from pydantic import ValidationError
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from shared import (
    MAX_BATCH_EVENTS,
    Ack,
    Batch,
    BatchTooLarge,
    Event,
    EventStatus,
    Heartbeat,
    PrivateKey,
    Refusal,
    Severity,
    SignedBody,
    seal_batch,
    seq_problem,
)

from .cloud_http import CloudUnreachable, Transport, cloud_client
from .config import CloudSection
from .software import VERSION
from .store import NewEvent, Store, StoredEvent, from_us

log = structlog.get_logger(__name__)


REFUSAL_NOTICE_S = 3600.0  # a refused meter becomes an event at most this often
# A batch whose answer never came (no connection, a timeout, a 5xx) is sent again as the same
# bytes for this long: if the cloud took it and only the acknowledgement was lost, it knows the
# bytes and answers from its record without parsing them again. Past this the batch is built
# afresh, with the newest heartbeat and whatever arrived meanwhile.
RESEND_SAME_BYTES_S = 120.0


class SyncFailed(Exception):
    """A batch was not acknowledged; the message says why (for status and the logs)."""


@dataclass
class SyncStats:
    batches: int = 0
    readings: int = 0
    events: int = 0
    failures: int = 0
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """A sealed batch and what its acknowledgement settles."""

    sealed: SignedBody
    batch_id: uuid.UUID
    last_seq: int
    readings: int
    events: int
    readings_through: int | None  # the cursors to advance when it is acknowledged
    events_through: int | None
    built_at: float  # monotonic


def _event(e: StoredEvent) -> Event:
    return Event(
        seq=e.seq,
        ts=from_us(e.ts_us),
        kind=e.kind,
        status=e.status,
        severity=e.severity,
        meter_id=e.meter_id,
        quantity=e.quantity,
        message=e.message,
        details=e.details,
    )


class Syncer:
    def __init__(
        self,
        *,
        gateway_id: str,
        config: CloudSection,
        key: PrivateKey,
        store_call,  # async callable running a Store method in the store's thread
        clock_state,  # () -> (synchronised, offset_s)
        transport: Transport | None = None,
        bus_health=lambda: [],  # () -> [BusHealth]: each bus's counts, for the heartbeat
        on_commands=lambda: None,  # () -> None: the cloud says commands wait for us
        meter_health=lambda: [],  # () -> [MeterHealth]: each polled meter's last good read
        disk_budget_bytes: int | None = None,
        config_version=lambda: None,  # () -> int: the cloud's configuration version running
    ) -> None:
        self.gateway_id = gateway_id
        self.config = config
        self.key = key
        self._store = store_call
        self._clock_state = clock_state
        self._bus_health = bus_health
        self._on_commands = on_commands
        self._meter_health = meter_health
        self.disk_budget_bytes = disk_budget_bytes
        self._config_version = config_version
        self._client = cloud_client(config.url or "", config.timeout_s, transport)
        self.stats = SyncStats()
        self._limit = config.batch_readings
        self.started = time.monotonic()
        self.wake = asyncio.Event()
        self._refusals_noted: dict[str, float] = {}  # meter -> when last noted (monotonic)
        self._unanswered: _Outgoing | None = None  # sent, its answer lost: send it again as is
        self._last_was_resent = False

    async def close(self) -> None:
        await self._client.aclose()

    async def _build(self) -> _Outgoing:
        events = await self._store(Store.pending_events, MAX_BATCH_EVENTS)
        readings = await self._store(Store.pending_batch_readings, self._limit)
        unsent_readings, unsent_events, oldest = await self._store(Store.backlog)
        synced, offset = self._clock_state()
        heartbeat = Heartbeat(
            software_version=VERSION,
            backlog_readings=unsent_readings,
            backlog_events=unsent_events,
            oldest_unsent_ts=oldest,
            clock_synced=synced,
            clock_offset_s=offset,
            uptime_s=time.monotonic() - self.started,
            buses=self._bus_health(),
            meters=self._meter_health(),
            disk_used_bytes=await self._store(Store.size_bytes),
            disk_budget_bytes=self.disk_budget_bytes,
            config_version=self._config_version(),
        )
        seqs = [*readings.seqs, *(e.seq for e in events)]
        if seqs:
            first, last = min(seqs), max(seqs)
        else:
            first = last = max(await self._store(lambda s: s.cursors))
        problem = seq_problem(first, last, seqs, heartbeat=True)
        if problem:
            raise SyncFailed(f"the log's rows do not make a batch: {problem}")
        # the readings were written from the log's rows in the store's thread (no model a row)
        batch = Batch.model_construct(
            gateway_id=self.gateway_id,
            batch_id=uuid.uuid4(),
            first_seq=first,
            last_seq=last,
            sent_at=datetime.now(UTC),
            readings=[],
            events=[_event(e) for e in events],
            heartbeat=heartbeat,
        )
        try:
            sealed = seal_batch(batch, self.key, readings=readings)
            if len(sealed.body) > self.config.batch_bytes:
                raise BatchTooLarge(f"{len(sealed.body)} bytes")
        except BatchTooLarge:
            self._limit = max(1, readings.count // 2)
            raise SyncFailed(f"batch over the byte limit; next holds {self._limit}") from None
        return _Outgoing(
            sealed=sealed,
            batch_id=batch.batch_id,
            last_seq=last,
            readings=readings.count,
            events=len(events),
            readings_through=readings.seqs[-1] if readings.seqs else None,  # in seq order
            events_through=max((e.seq for e in events), default=None),
            built_at=time.monotonic(),
        )

    def forget_unanswered(self) -> None:
        """Build the next batch afresh: the store's unsent rows changed under the one kept for
        sending again (the disk budget reduced them)."""
        self._unanswered = None

    async def send_once(self) -> int:
        """Send one batch (a heartbeat if nothing is pending); the rows acknowledged. A batch
        whose answer was lost is sent again as the same bytes (`RESEND_SAME_BYTES_S`)."""
        outgoing = self._unanswered
        if outgoing is None or time.monotonic() - outgoing.built_at > RESEND_SAME_BYTES_S:
            self._unanswered = None
            outgoing = await self._build()
        self._last_was_resent = outgoing is self._unanswered
        try:
            response = await self._client.post(
                "/api/v1/ingest/batches",
                content=outgoing.sealed.body,
                headers=outgoing.sealed.headers,
            )
        except CloudUnreachable as exc:
            self._unanswered = outgoing
            raise SyncFailed(f"cloud unreachable: {exc}") from exc
        if response.status_code >= 500:
            self._unanswered = outgoing  # it may have been taken before the error
        else:
            self._unanswered = None
        if response.status_code == 413:
            self._limit = max(1, outgoing.readings // 2)
            raise SyncFailed(f"cloud refused the size; next batch holds {self._limit} readings")
        if response.status_code != 200:
            detail = response.text[:300]
            raise SyncFailed(f"cloud answered {response.status_code}: {detail}")
        try:
            ack = Ack.model_validate_json(response.content)
        except ValidationError as exc:
            raise SyncFailed(f"cloud answer is not an acknowledgement: {exc}") from exc
        if ack.batch_id != outgoing.batch_id or ack.acked_through_seq != outgoing.last_seq:
            raise SyncFailed(
                f"acknowledgement names batch {ack.batch_id} through {ack.acked_through_seq},"
                f" not {outgoing.batch_id} through {outgoing.last_seq}"
            )
        await self._store(Store.acknowledge, outgoing.readings_through, outgoing.events_through)
        if ack.refused:
            await self._note_refusals(ack.refused)
        if ack.commands_waiting:
            self._on_commands()
        self._limit = min(self.config.batch_readings, self._limit * 2)
        self.stats.batches += 1
        self.stats.readings += outgoing.readings
        self.stats.events += outgoing.events
        self.stats.last_error = None
        return outgoing.readings + outgoing.events

    async def _note_refusals(self, refusals: list[Refusal]) -> None:
        """The cloud stored the batch but not these meters' readings: say so in the log at
        every batch, and as an event (which reaches the cloud's alerts) at most once an hour per
        meter. The readings stay in the store until it prunes acknowledged rows."""
        now = time.monotonic()
        fresh = []
        for refusal in refusals:
            log.warning(
                "cloud refused readings",
                meter_id=refusal.meter_id,
                readings=refusal.readings,
                reason=refusal.reason,
            )
            if now - self._refusals_noted.get(refusal.meter_id, -REFUSAL_NOTICE_S) >= (
                REFUSAL_NOTICE_S
            ):
                self._refusals_noted[refusal.meter_id] = now
                fresh.append(
                    NewEvent(
                        ts=datetime.now(UTC),
                        kind="readings_refused",
                        status=EventStatus.NOTICE,
                        severity=Severity.HIGH,
                        meter_id=refusal.meter_id,
                        message=refusal.reason,
                        details={"readings": refusal.readings},
                    )
                )
        if fresh:
            await self._store(Store.append, (), fresh)
            self.wake.set()  # events travel ahead of readings: send it at the next chance

    async def drain(self) -> int:
        """Send until nothing is pending (rate-limited); returns the rows acknowledged."""
        total = 0
        while True:
            started = time.monotonic()
            rows = await self._with_retries()
            total += rows
            # a batch sent again as it was built may be older than what waits behind it (an
            # alert raised during the outage): one more round builds afresh
            if rows < self._limit and not self._last_was_resent:
                return total
            floor = rows / self.config.backfill_readings_per_s
            spent = time.monotonic() - started
            if spent < floor:
                await asyncio.sleep(floor - spent)

    async def _with_retries(self) -> int:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(SyncFailed),
            wait=wait_exponential_jitter(initial=1, max=self.config.retry_max_s, jitter=1),
            reraise=True,
            before_sleep=self._note_failure,
        ):
            with attempt:
                return await self.send_once()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _note_failure(self, retry_state) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        self.stats.failures += 1
        self.stats.last_error = str(exc)
        log.warning(
            "sync failed; retrying",
            error=str(exc)[:300],
            attempt=retry_state.attempt_number,
            retry_in_s=round(retry_state.upcoming_sleep, 1),
        )
        await self._store(Store.note_sync_error, str(exc))

    async def run(self) -> None:
        """Drain, then wait for the next interval (or a wake-up: an alert wants out now)."""
        while True:
            await self.drain()
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.config.sync_interval_s)
