"""The gateway's configuration: one TOML file, validated at start.

Every problem is reported as `FILE:LINE: key.path: what is wrong`, so a technician can open the
file at the line. Paths in the file are relative to the file's directory.

    [gateway]
    id = "gw-0001"
    data_dir = "data"                 # the store, the key and the status live here

    [cloud]
    url = "https://cloud.example.in"

    [[buses]]
    name = "rs485-1"
    kind = "modbus-rtu"               # modbus-rtu | modbus-tcp | dlms-hdlc | dlms-tcp | mqtt
    port = "/dev/ttyUSB0"
    baud = 9600

    [[buses.meters]]
    id = "m-101"
    unit = 1
    profile = "sdm630"
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from protocols.errors import ProfileError
from protocols.modbus.profile import get_profile
from protocols.mqtt.profile import get_mqtt_profile
from shared import IDENTIFIER_PATTERN, MAX_BATCH_READINGS, MAX_BODY_BYTES, GridgateError

Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]
Seconds = Annotated[float, Field(gt=0, le=86_400)]


class ConfigError(GridgateError):
    """The configuration cannot be used; `problems` are `file:line: key: message` lines."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GatewaySection(_Section):
    id: Identifier
    data_dir: Path = Path("data")
    key_file: Path | None = None  # default: <data_dir>/gateway.key


class CloudSection(_Section):
    url: Annotated[str, Field(pattern=r"^https?://[^\s/]+(/\S*)?$")] | None = None
    timeout_s: Seconds = 10.0
    sync_interval_s: Seconds = 5.0
    batch_readings: Annotated[int, Field(ge=1, le=MAX_BATCH_READINGS)] = 5000
    batch_bytes: Annotated[int, Field(ge=10_000, le=MAX_BODY_BYTES)] = 2_000_000
    backfill_readings_per_s: Annotated[int, Field(ge=1)] = 50_000
    retry_max_s: Seconds = 300.0


class StoreSection(_Section):
    disk_budget_mb: Annotated[float, Field(gt=0)] = 512.0
    downsample_interval_s: Annotated[int, Field(ge=60, le=86_400)] = 900
    commit_interval_s: Annotated[float, Field(gt=0, le=10)] = 0.5


class ChecksSection(_Section):
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


class ClockSection(_Section):
    # no synchronised clock before this instant: older times mean the RTC was lost
    not_before: str = "2026-01-01T00:00:00Z"
    require_ntp: bool = True


class UpdateSection(_Section):
    """Software updates from the cloud (`edge/updater.py`)."""

    # where versions live side by side (<prefix>/versions, <prefix>/current); by default the
    # prefix this daemon runs from, when it runs from <prefix>/versions/<version>; elsewhere (a
    # checkout, a plain venv) updates are refused
    prefix: Path | None = None
    # how long a new version has to prove itself healthy (started, synced) before it is rolled
    # back; the guard script reads the same deadline from the marker
    health_grace_s: Annotated[float, Field(gt=0, le=3600)] = 300.0


class MeterSection(_Section):
    id: Identifier
    unit: Annotated[int, Field(ge=1, le=247)] | None = None  # Modbus unit id
    profile: str | None = None  # Modbus register profile / MQTT payload profile
    hdlc_address: Annotated[int, Field(ge=16, le=0x3FFF)] | None = None  # DLMS physical address
    logical_device: Annotated[int, Field(ge=1, le=0x3FFF)] = 1
    password: Annotated[str, Field(min_length=1, max_length=32)] | None = None  # DLMS LLS
    device: str | None = None  # MQTT device name in the topics
    fast_s: Seconds = 10.0
    slow_s: Seconds = 900.0
    timeout_s: Annotated[float, Field(gt=0, le=30)] = 0.5
    phases: Literal[1, 3] = 3
    export_allowed: bool = False


BusKind = Literal["modbus-rtu", "modbus-tcp", "dlms-hdlc", "dlms-tcp", "mqtt"]


class BusSection(_Section):
    name: Identifier
    kind: BusKind
    port: str | None = None  # serial device
    baud: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 9600
    parity: Literal["N", "E", "O"] = "N"
    stop_bits: Literal[1, 2] = 1
    host: str | None = None  # TCP endpoint or MQTT broker
    tcp_port: Annotated[int, Field(ge=1, le=65535)] | None = None
    topic_prefix: str = ""
    backoff_max_s: Seconds = 300.0
    meters: list[MeterSection] = Field(default_factory=list, max_length=247)

    @model_validator(mode="after")
    def _check(self) -> BusSection:
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
                try:
                    get_profile(meter.profile)
                except ProfileError as exc:
                    raise ValueError(f"{where}.profile: {exc}") from None
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
            try:
                get_mqtt_profile(profiles.pop() if profiles else "tasmota")
            except ProfileError as exc:
                raise ValueError(f"meters.0.profile: {exc}") from None
        return self


class EdgeConfig(_Section):
    gateway: GatewaySection
    cloud: CloudSection = CloudSection()
    store: StoreSection = StoreSection()
    checks: ChecksSection = ChecksSection()
    clock: ClockSection = ClockSection()
    update: UpdateSection = UpdateSection()
    buses: list[BusSection] = Field(default_factory=list, max_length=32)
    source: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _unique(self) -> EdgeConfig:
        names = [b.name for b in self.buses]
        if len(names) != len(set(names)):
            raise ValueError("bus names must be unique")
        meters = [m.id for b in self.buses for m in b.meters]
        duplicates = sorted({m for m in meters if meters.count(m) > 1})
        if duplicates:
            raise ValueError(f"meter ids must be unique across buses: {', '.join(duplicates)}")
        return self

    @property
    def base_dir(self) -> Path:
        return self.source.parent if self.source else Path.cwd()

    @property
    def data_dir(self) -> Path:
        return self.base_dir / self.gateway.data_dir

    @property
    def store_path(self) -> Path:
        return self.data_dir / "edge.sqlite"

    @property
    def key_path(self) -> Path:
        return self.base_dir / (self.gateway.key_file or self.gateway.data_dir / "gateway.key")

    @property
    def cloud_key_path(self) -> Path:
        """The cloud's public key, given at enrollment: commands signed by it are the cloud's."""
        return self.data_dir / "cloud.pub"


def _line_of(text: str, loc: tuple[str | int, ...]) -> int | None:
    """The line a key path such as ("buses", 0, "meters", 2, "unit") points at: the key's own
    line if it is in the file, else the header of the deepest table that contains it."""
    wanted = list(loc)
    current: list[str | int] = []
    counters: dict[tuple, int] = {}  # array-of-tables path (with parent indexes) -> last index
    best: tuple[int, int] | None = None  # (depth, line)
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]", stripped)
        if header:
            current = []
            for depth, name in enumerate(header.group(2).split(".")):
                current.append(name)
                last = depth == len(header.group(2).split(".")) - 1
                key = tuple(current)
                if last and header.group(1) == "[[":
                    counters[key] = counters.get(key, -1) + 1
                    for other in [k for k in counters if k[: len(key)] == key and k != key]:
                        del counters[other]
                if key in counters:
                    current.append(counters[key])
            if wanted[: len(current)] == current and (best is None or len(current) > best[0]):
                best = (len(current), number)
            elif (
                wanted
                and current[: len(wanted)] == wanted
                and (best is None or best[0] < len(wanted))
            ):
                best = (len(wanted), number)  # the key is an array of tables: its first header
            continue
        assignment = re.match(r"^([A-Za-z0-9_-]+)\s*=", stripped)
        if assignment and [*current, assignment.group(1)] == wanted[: len(current) + 1]:
            if len(current) + 1 == len(wanted):
                return number
            if best is None or len(current) + 1 > best[0]:
                best = (len(current) + 1, number)
    return best[1] if best else None


def load_config(path: Path | str) -> EdgeConfig:
    """Read and validate a configuration file; ConfigError lists every problem with its line."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML: {exc}"]) from exc
    try:
        config = EdgeConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            # a bus-level check names the meter it is about: point at that meter
            extra = re.match(r"^meters\.(\d+)(?:\.(\w+))?: ", message)
            if extra and loc and loc[0] == "buses":
                loc = (*loc, "meters", int(extra.group(1))) + (
                    (extra.group(2),) if extra.group(2) else ()
                )
                message = message[extra.end() :]
            line = _line_of(text, loc)
            where = f"{path}:{line}" if line else str(path)
            dotted = ".".join(str(p) for p in loc) or "(top level)"
            problems.append(f"{where}: {dotted}: {message}")
        raise ConfigError(problems) from exc
    return config.model_copy(update={"source": path.resolve()})
