"""A gateway's managed settings: its buses and meters, local checks, store and sync limits.

One definition serves the gateway's own `edge.toml` (where the same sections are written by hand)
and the desired configuration the cloud keeps for each gateway, versions it and hands over on
the control channel (`shared._control`). Whatever the cloud accepts, the gateway can load: the
cloud validates with these models, the gateway validates again with the same ones, then checks
what only it can see (its serial ports, its secrets).

Secrets do not travel: a DLMS meter's password is named by reference (`password_ref`), and the
gateway looks the name up in its own `edge.toml` `[secrets]`. A literal `password` is allowed
in the local file only (the cloud refuses it). A meter's HLS-GMAC keys (GUEK, GAK, system
titles) live in a key file on the gateway, owner-only; the settings name its path (`keys`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ._models import (
    MAX_BATCH_READINGS,
    MAX_BODY_BYTES,
    Identifier,
    QuantityCode,
    UtcDatetime,
)

# The meter models and MQTT payload profiles a gateway knows; the protocol packages hold their
# register maps, and their tests prove the lists equal.
MODBUS_MODELS = ("em24", "iem3000", "sdm120", "sdm630")
MQTT_PROFILES = ("tasmota",)
MAX_BUSES = 32
MAX_METERS_PER_BUS = 247
BUS_KINDS = ("modbus-rtu", "modbus-tcp", "dlms-hdlc", "dlms-tcp", "mqtt")
SECTIONS = ("buses", "checks", "store", "sync")  # the parts a site may pin locally

Seconds = Annotated[float, Field(gt=0, le=86_400)]
# a path on the gateway: no spaces, quotes or control characters, no way to name a device
KeyFilePath = Annotated[str, Field(pattern=r"^[A-Za-z0-9_./-]{1,255}$")]


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MeterSettings(_Settings):
    id: Identifier
    unit: Annotated[int, Field(ge=1, le=247)] | None = None  # Modbus unit id
    profile: Annotated[str, Field(max_length=32)] | None = None  # Modbus model / MQTT profile
    hdlc_address: Annotated[int, Field(ge=16, le=0x3FFF)] | None = None  # DLMS physical address
    logical_device: Annotated[int, Field(ge=1, le=0x3FFF)] = 1
    password: Annotated[str, Field(min_length=1, max_length=32)] | None = None  # local file only
    password_ref: Identifier | None = None  # a name in edge.toml [secrets]
    # DLMS association: none, LLS (the password) or HLS-GMAC with suite-0 ciphering (the key
    # file); unset: LLS when a password is given, HLS-GMAC when keys are, else none
    authentication: Literal["none", "lls", "hls-gmac"] | None = None
    client_sap: Annotated[int, Field(ge=1, le=127)] | None = None  # default by authentication
    keys: KeyFilePath | None = None  # HLS-GMAC key file, relative to edge.toml's folder
    device: Annotated[str, Field(max_length=64)] | None = None  # MQTT device name in the topics
    fast_s: Seconds = 10.0
    slow_s: Seconds = 900.0
    timeout_s: Annotated[float, Field(gt=0, le=30)] = 0.5
    phases: Literal[1, 3] = 3
    export_allowed: bool = False

    @model_validator(mode="after")
    def _one_password(self) -> MeterSettings:
        if self.password is not None and self.password_ref is not None:
            raise ValueError("give password or password_ref, not both")
        if self.authentication == "hls-gmac" and self.keys is None:
            raise ValueError("authentication hls-gmac needs keys (the meter's key file)")
        if self.keys is not None and self.authentication not in (None, "hls-gmac"):
            raise ValueError(f"keys are for hls-gmac, not authentication {self.authentication}")
        return self

    @property
    def mechanism(self) -> Literal["none", "lls", "hls-gmac"]:
        """The association this meter is read with."""
        if self.authentication is not None:
            return self.authentication
        if self.keys is not None:
            return "hls-gmac"
        return "lls" if self.password is not None or self.password_ref is not None else "none"


BusKind = Literal["modbus-rtu", "modbus-tcp", "dlms-hdlc", "dlms-tcp", "mqtt"]


class BusSettings(_Settings):
    name: Identifier
    kind: BusKind
    port: Annotated[str, Field(max_length=128)] | None = None  # serial device
    baud: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stop_bits: Literal[1, 2] = 1
    host: Annotated[str, Field(max_length=253)] | None = None  # TCP endpoint or MQTT broker
    tcp_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    topic_prefix: Annotated[str, Field(max_length=128)] = ""
    backoff_max_s: Seconds = 300.0
    meters: list[MeterSettings] = Field(default_factory=list, max_length=MAX_METERS_PER_BUS)

    @model_validator(mode="after")
    def _check(self) -> BusSettings:
        serial = self.kind in ("modbus-rtu", "dlms-hdlc")
        if serial and not self.port:
            raise ValueError(f"a {self.kind} bus needs port (e.g. /dev/ttyUSB0)")
        if not serial and not (self.host and self.tcp_port):
            raise ValueError(f"a {self.kind} bus needs host and tcp_port")
        seen: set[object] = set()
        for index, meter in enumerate(self.meters):
            where = f"meters.{index}"
            if self.kind.startswith("modbus"):
                if meter.unit is None or meter.profile is None:
                    raise ValueError(f"{where}: a Modbus meter needs unit and profile")
                if meter.profile not in MODBUS_MODELS:
                    raise ValueError(
                        f"{where}.profile: unknown meter model {meter.profile!r}; known models:"
                        f" {', '.join(MODBUS_MODELS)}"
                    )
                address: object = meter.unit
            elif self.kind.startswith("dlms"):
                address = (meter.hdlc_address, meter.logical_device)
            else:
                if meter.device is None:
                    raise ValueError(f"{where}: an MQTT meter needs device (its topic name)")
                address = meter.device
            if address in seen:
                raise ValueError(f"{where}: two meters on this bus share address {address}")
            seen.add(address)
        if self.kind == "mqtt":
            profiles = {m.profile or "tasmota" for m in self.meters}
            if len(profiles) > 1:
                raise ValueError("the meters of one MQTT bus share one payload profile")
            if profiles and (profile := profiles.pop()) not in MQTT_PROFILES:
                raise ValueError(
                    f"meters.0.profile: unknown MQTT profile {profile!r}; known profiles:"
                    f" {', '.join(MQTT_PROFILES)}"
                )
        return self


class ChecksSettings(_Settings):
    nominal_voltage: Annotated[float, Field(gt=0)] = 230.0
    voltage_band: Annotated[float, Field(gt=0, lt=1)] = 0.10
    nominal_frequency: Annotated[float, Field(gt=0)] = 50.0
    frequency_band_hz: Annotated[float, Field(gt=0)] = 0.5
    spike_ratio: Annotated[float, Field(gt=0)] = 1.0  # above baseline by more than +100 %
    spike_high_ratio: Annotated[float, Field(gt=0)] = 2.0
    drop_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.5  # below baseline by more than -50 %
    drop_medium_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.8
    ewma_alpha: Annotated[float, Field(gt=0, lt=1)] = 0.2
    min_samples: Annotated[int, Field(ge=1)] = 10
    outage_kw: Annotated[float, Field(ge=0)] = 0.1
    outage_baseline_kw: Annotated[float, Field(ge=0)] = 1.0
    max_power_kw: Annotated[float, Field(gt=0)] = 100.0  # for register jumps
    stale_reads: Annotated[int, Field(ge=2)] = 10
    communication_loss_s: Seconds = 120.0
    meter_clock_drift_s: Seconds = 30.0


class StoreSettings(_Settings):
    disk_budget_mb: Annotated[float, Field(gt=0, le=1_000_000_000)] = 512.0
    downsample_interval_s: Annotated[int, Field(ge=60, le=86_400)] = 900
    commit_interval_s: Annotated[float, Field(gt=0, le=10)] = 0.5


class SyncSettings(_Settings):
    """How the gateway sends its log (kept under `[cloud]` in edge.toml, beside the url)."""

    sync_interval_s: Seconds = 5.0
    batch_readings: Annotated[int, Field(ge=1, le=MAX_BATCH_READINGS)] = 5000
    batch_bytes: Annotated[int, Field(ge=10_000, le=MAX_BODY_BYTES)] = 2_000_000
    backfill_readings_per_s: Annotated[int, Field(ge=1, le=10**10)] = 50_000
    retry_max_s: Seconds = 300.0


class GatewaySettings(_Settings):
    """Everything about a gateway the cloud may manage (its identity and the cloud's address
    stay in the gateway's own file)."""

    buses: list[BusSettings] = Field(default_factory=list, max_length=MAX_BUSES)
    checks: ChecksSettings = ChecksSettings()
    store: StoreSettings = StoreSettings()
    sync: SyncSettings = SyncSettings()

    @model_validator(mode="after")
    def _unique(self) -> GatewaySettings:
        check_unique(self.buses)
        return self


def check_unique(buses: list[BusSettings]) -> None:
    names = [b.name for b in buses]
    if len(names) != len(set(names)):
        raise ValueError("bus names must be unique")
    meters = [m.id for b in buses for m in b.meters]
    duplicates = sorted({m for m in meters if meters.count(m) > 1})
    if duplicates:
        raise ValueError(f"meter ids must be unique across buses: {', '.join(duplicates)}")


def literal_passwords(settings: GatewaySettings) -> list[str]:
    """Where settings carry a password itself rather than a reference (the cloud keeps none)."""
    return [
        f"buses.{b}.meters.{m}.password"
        for b, bus in enumerate(settings.buses)
        for m, meter in enumerate(bus.meters)
        if meter.password is not None
    ]


class ConfigState(StrEnum):
    APPLIED = "applied"  # running, and every changed bus answered
    REJECTED = "rejected"  # not started: it failed the gateway's own checks
    ROLLED_BACK = "rolled_back"  # started, failed (a bus did not open, no meter answered)


class DesiredConfig(BaseModel):
    """A version of a gateway's settings, handed over in a `ControlReply`."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    version: Annotated[int, Field(ge=1)]
    settings: GatewaySettings
    issued_at: UtcDatetime


class ConfigReport(BaseModel):
    """What the gateway runs, in a `ControlRequest`: the outcome of the last version it was
    handed (version 0: its own file, before the cloud gave it any), and the settings it runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    version: Annotated[int, Field(ge=0)]
    state: ConfigState
    detail: Annotated[str, Field(max_length=2000)] = ""
    running_version: Annotated[int, Field(ge=0)] = 0
    settings: GatewaySettings | None = None  # the settings running now (passwords left out)
    at: UtcDatetime


class FoundMeter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    unit: Annotated[int, Field(ge=1, le=247)]
    model: Annotated[str, Field(max_length=32)] | None = None  # None: it answered, unknown model
    serial: Annotated[str, Field(max_length=64)] | None = None
    sample: Annotated[dict[QuantityCode, float], Field(max_length=64)] = {}


class ScanReport(BaseModel):
    """What `gridgate edge scan --report` found on one bus, sent signed by the gateway to
    `POST /api/v1/control/discoveries`, for an admin to give the meters to consumers."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    gateway_id: Identifier
    sent_at: UtcDatetime
    bus: BusSettings  # the line the meters answered on (its meters list left empty)
    found: Annotated[list[FoundMeter], Field(max_length=MAX_METERS_PER_BUS)]
