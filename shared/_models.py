"""Wire models of the edge<->cloud contract: Sample, Reading, Event, Heartbeat, Batch, Ack.

Every model forbids unknown fields, rejects NaN and infinities, and requires timezone-aware UTC
timestamps. Validation runs in pydantic-core (Literal sets, constrained numbers) so the cloud can
check tens of thousands of readings a second; only the checks that need Python (UTC offset, the
seq bookkeeping of a batch) are written out here.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from ._events import EVENT_KIND_CODES, EventStatus, Severity
from ._quantities import QUANTITIES, QUANTITY_CODES

CONTRACT_VERSION = 1

# Limits of one batch. The body limits are checked before anything is parsed.
MAX_BATCH_READINGS = 10_000
MAX_BATCH_EVENTS = 1_000
MAX_BODY_BYTES = 4 * 1024 * 1024  # as sent (compressed)
MAX_DECOMPRESSED_BYTES = 16 * 1024 * 1024  # after decompression; bounds zip bombs
MAX_DETAIL_KEYS = 32

IDENTIFIER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"


def _require_utc(value: datetime) -> datetime:
    if value.utcoffset() != timedelta(0):
        raise ValueError("timestamp must be in UTC (offset +00:00 or 'Z')")
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_require_utc)]
FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
Seq = Annotated[int, Field(strict=True, ge=1)]
QuantityCode = Literal[QUANTITY_CODES]  # type: ignore[valid-type]
EventKind = Literal[EVENT_KIND_CODES]  # type: ignore[valid-type]


class Quality(StrEnum):
    """Quality flag of a sample (docs/architecture.md: Quantities)."""

    OK = "ok"
    ESTIMATED = "estimated"
    SUSPECT = "suspect"  # failed a local check
    CLOCK_UNSYNCED = "clock_unsynced"


def unit_problem(quantity: str, unit: str) -> str | None:
    """Why `unit` is wrong for `quantity` (each quantity has one fixed unit), or None."""
    expected = QUANTITIES[quantity].unit
    if unit == expected:
        return None
    return f"unit {unit!r} does not match quantity {quantity} (expected {expected!r})"


def seq_problem(first_seq: int, last_seq: int, seqs: list[int], *, heartbeat: bool) -> str | None:
    """Why a batch's seq bookkeeping is wrong, or None: `seqs` are those of its readings and
    events, unique, spanning exactly first_seq..last_seq; a batch of none is a heartbeat at the
    gateway's cursor."""
    if first_seq > last_seq:
        return f"first_seq {first_seq} is after last_seq {last_seq}"
    if not seqs:
        if first_seq != last_seq:
            return "a batch without readings or events must have first_seq == last_seq"
        if not heartbeat:
            return "a batch without readings or events must carry a heartbeat"
        return None
    if len(set(seqs)) != len(seqs):
        return "seq values must be unique across readings and events"
    low, high = min(seqs), max(seqs)
    if (low, high) != (first_seq, last_seq):
        return (
            f"first_seq/last_seq ({first_seq}, {last_seq}) must equal the lowest "
            f"and highest seq carried ({low}, {high})"
        )
    return None


class _WireModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="strings")


class Sample(_WireModel):
    """One value read from one meter: an OBIS quantity, in the quantity's fixed unit, at a time.

    `unit` may be omitted when constructing; it is filled from the quantity table and a unit that
    disagrees with the table is rejected.
    """

    meter_id: Identifier
    quantity: QuantityCode
    ts: UtcDatetime
    value: FiniteFloat
    unit: str = ""
    quality: Quality = Quality.OK

    @model_validator(mode="before")
    @classmethod
    def _fill_unit(cls, data: object) -> object:
        if isinstance(data, dict) and "unit" not in data:
            quantity = QUANTITIES.get(data.get("quantity"))  # type: ignore[arg-type]
            if quantity is not None:
                return {**data, "unit": quantity.unit}
        return data

    @model_validator(mode="after")
    def _check_unit(self) -> Sample:
        problem = unit_problem(self.quantity, self.unit)
        if problem:
            raise ValueError(problem)
        return self


class Reading(Sample):
    """A sample as logged by a gateway: `seq` is its place in the gateway's append-only log."""

    seq: Seq


DetailValue = str | int | float | bool | None


class Event(_WireModel):
    """An alert transition or a notice from a gateway, identified by (gateway, seq)."""

    seq: Seq
    ts: UtcDatetime
    kind: EventKind
    status: EventStatus
    severity: Severity
    meter_id: Identifier | None = None
    quantity: QuantityCode | None = None
    message: Annotated[str, Field(max_length=500)] = ""
    details: dict[Annotated[str, Field(max_length=64)], DetailValue] = Field(
        default_factory=dict, max_length=MAX_DETAIL_KEYS
    )

    @model_validator(mode="after")
    def _check_details(self) -> Event:
        for key, value in self.details.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"details.{key}: must be a finite number")
            if isinstance(value, str) and len(value) > 500:
                raise ValueError(f"details.{key}: longer than 500 characters")
        return self


Count = Annotated[int, Field(ge=0)]


class BusHealth(_WireModel):
    """One bus of the gateway as its scheduler sees it: counts since the daemon started."""

    name: Annotated[str, Field(max_length=64)]
    kind: Annotated[str, Field(max_length=16)]
    meters: Count
    meters_failing: Count = 0
    transactions: Count = 0
    timeouts: Count = 0
    crc_errors: Count = 0
    frame_errors: Count = 0
    exceptions: Count = 0
    transport_errors: Count = 0
    latency_ms: Annotated[FiniteFloat, Field(ge=0)] | None = None  # a good read, smoothed
    utilisation: Annotated[FiniteFloat, Field(ge=0, le=1)] | None = None  # share of time busy


class MeterHealth(_WireModel):
    """One meter as its bus sees it: when it last answered well, and how many reads in a row
    have failed since (with the last error)."""

    meter_id: Identifier
    last_good_read: UtcDatetime | None = None
    failures_in_row: Count = 0
    last_error: Annotated[str, Field(max_length=200)] | None = None


class Heartbeat(_WireModel):
    """The gateway's health, sent with every batch. (`buses`, then `meters` and the disk came
    later: a cloud learns a new field before the gateways send it — upgrade the cloud first.)"""

    software_version: Annotated[str, Field(max_length=32)]
    backlog_readings: Annotated[int, Field(ge=0)]
    backlog_events: Annotated[int, Field(ge=0)] = 0
    oldest_unsent_ts: UtcDatetime | None = None
    clock_synced: bool
    clock_offset_s: FiniteFloat | None = None
    uptime_s: Annotated[FiniteFloat, Field(ge=0)] = 0.0
    buses: Annotated[list[BusHealth], Field(max_length=32)] = []
    meters: Annotated[list[MeterHealth], Field(max_length=512)] = []
    disk_used_bytes: Annotated[int, Field(ge=0)] | None = None  # the store, with its WAL
    disk_budget_bytes: Annotated[int, Field(ge=0)] | None = None
    config_version: Annotated[int, Field(ge=0)] | None = None  # the cloud's settings version run


class Batch(_WireModel):
    """A slice of a gateway's log, sent to `POST /api/v1/ingest/batches`.

    Readings and events share one seq space on the gateway. `first_seq`/`last_seq` are the lowest
    and highest seq carried; a batch with no rows (a heartbeat) has `first_seq == last_seq`, the
    gateway's current cursor. The cloud answers `Ack.acked_through_seq == last_seq` after commit.
    """

    contract_version: Literal[1] = CONTRACT_VERSION
    gateway_id: Identifier
    batch_id: UUID
    first_seq: Annotated[int, Field(strict=True, ge=0)]
    last_seq: Annotated[int, Field(strict=True, ge=0)]
    sent_at: UtcDatetime
    readings: list[Reading] = Field(default_factory=list, max_length=MAX_BATCH_READINGS)
    events: list[Event] = Field(default_factory=list, max_length=MAX_BATCH_EVENTS)
    heartbeat: Heartbeat | None = None

    @model_validator(mode="after")
    def _check_seqs(self) -> Batch:
        seqs = [r.seq for r in self.readings] + [e.seq for e in self.events]
        problem = seq_problem(
            self.first_seq, self.last_seq, seqs, heartbeat=self.heartbeat is not None
        )
        if problem:
            raise ValueError(problem)
        return self


class Refusal(_WireModel):
    """Readings of one meter that the cloud would not store, and why (the rest of the batch
    was stored)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    meter_id: Identifier
    readings: Annotated[int, Field(ge=0)]
    reason: Annotated[str, Field(max_length=300)]


class Ack(_WireModel):
    """The cloud's answer to a batch, sent only after the batch is committed. Unknown fields are
    ignored, so a gateway keeps syncing with a newer cloud; fields at their defaults are left
    out of the answer, so an older gateway does too."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    batch_id: UUID
    acked_through_seq: Annotated[int, Field(ge=0)]
    readings_new: Annotated[int, Field(ge=0)] = 0
    events_new: Annotated[int, Field(ge=0)] = 0
    refused: Annotated[list[Refusal], Field(max_length=MAX_BATCH_READINGS)] = []
    # commands wait for this gateway: fetch them (shared._control)
    commands_waiting: Annotated[int, Field(ge=0)] = 0
