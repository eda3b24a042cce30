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

A DLMS meter read with HLS-GMAC names its key file (owner-only; see edge/meter_keys.py):

    [[buses.meters]]
    id = "m-07"
    hdlc_address = 17
    keys = "keys/meter-07.toml"       # authentication = "hls-gmac", client SAP 48 by default
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from shared import (
    IDENTIFIER_PATTERN,
    MAX_BUSES,
    BusSettings,
    ChecksSettings,
    GatewaySettings,
    GridgateError,
    MeterSettings,
    StoreSettings,
    SyncSettings,
    check_unique,
    line_of,
    toml_problem,
    validation_message,
)

if TYPE_CHECKING:
    from protocols.dlms.security import SecurityKeys


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


class CloudSection(SyncSettings):
    """The cloud's address (the gateway's own) and the sync limits (which the cloud may set)."""

    url: Annotated[str, Field(pattern=r"^https?://[^\s/]+(/\S*)?$")] | None = None
    timeout_s: Seconds = 10.0

    @field_validator("url")
    @classmethod
    def _reachable_address(cls, url: str | None) -> str | None:
        """A host DNS can carry and a port that exists (else the daemon could not even try)."""
        if url is None:
            return url
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018 (urllib checks the port when it is read)
        except ValueError:
            raise ValueError(f"the port in {url!r} is not a number from 0 to 65535") from None
        host = parts.hostname or ""
        try:
            host.encode("idna")
        except UnicodeError:
            raise ValueError(f"{host!r} in {url!r} is not a host name") from None
        return url


class ClockSection(_Section):
    # no synchronised clock before this instant: older times mean the RTC was lost
    not_before: str = "2026-01-01T00:00:00Z"
    require_ntp: bool = True


class RemoteSection(_Section):
    """What the cloud may change. `managed = false` keeps every setting in this file; `pin`
    names the sections this site keeps local while the cloud manages the rest."""

    managed: bool = True
    pin: list[Literal["buses", "checks", "store", "sync"]] = []
    # a new configuration's changed buses must each have a meter answer within this time, or
    # the gateway goes back to the configuration it ran before
    apply_grace_s: Annotated[float, Field(gt=0, le=3600)] = 120.0


class UpdateSection(_Section):
    """Software updates from the cloud (`edge/updater.py`)."""

    # where versions live side by side (<prefix>/versions, <prefix>/current); by default the
    # prefix this daemon runs from, when it runs from <prefix>/versions/<version>; elsewhere (a
    # checkout, a plain venv) updates are refused
    prefix: Path | None = None
    # how long a new version has to prove itself healthy (started, synced) before it is rolled
    # back; the guard script reads the same deadline from the marker
    health_grace_s: Annotated[float, Field(gt=0, le=3600)] = 300.0


# the sections the cloud may manage, under the names edge.toml has always used
StoreSection = StoreSettings
ChecksSection = ChecksSettings
BusSection = BusSettings
MeterSection = MeterSettings


class EdgeConfig(_Section):
    gateway: GatewaySection
    cloud: CloudSection = CloudSection()
    store: StoreSettings = StoreSettings()
    checks: ChecksSettings = ChecksSettings()
    clock: ClockSection = ClockSection()
    remote: RemoteSection = RemoteSection()
    secrets: dict[Identifier, SecretStr] = Field(default_factory=dict, max_length=256)
    buses: list[BusSettings] = Field(default_factory=list, max_length=MAX_BUSES)
    update: UpdateSection = UpdateSection()
    source: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _unique(self) -> EdgeConfig:
        check_unique(self.buses)
        for b, bus in enumerate(self.buses):
            for m, meter in enumerate(bus.meters):
                if meter.password_ref is not None and meter.password_ref not in self.secrets:
                    raise ValueError(
                        f"buses.{b}.meters.{m}.password_ref: no secret {meter.password_ref!r}"
                        " in this gateway's [secrets]"
                    )
                if meter.mechanism == "lls" and meter.password is meter.password_ref is None:
                    raise ValueError(
                        f"buses.{b}.meters.{m}.authentication: lls needs password or password_ref"
                    )
                if (meter.keys or meter.authentication) and not bus.kind.startswith("dlms"):
                    raise ValueError(
                        f"buses.{b}.meters.{m}.keys: DLMS security is for dlms buses only"
                    )
        return self

    def meter_key_path(self, meter: MeterSettings) -> Path | None:
        return self.base_dir / meter.keys if meter.keys else None

    def meter_keys(self, meter: MeterSettings) -> SecurityKeys | None:
        """The meter's HLS-GMAC keys from its key file (KeyFileError if unusable)."""
        path = self.meter_key_path(meter)
        if path is None:
            return None
        from .meter_keys import load_key_file  # DLMS security: loaded for a meter with keys

        return load_key_file(path)

    def key_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Each meter's key file that cannot be used: (key path, what is wrong)."""
        problems = []
        for b, bus in enumerate(self.buses):
            for m, meter in enumerate(bus.meters):
                if not meter.keys:
                    continue
                from .meter_keys import KeyFileError

                try:
                    self.meter_keys(meter)
                except KeyFileError as exc:
                    problems.append((("buses", b, "meters", m, "keys"), str(exc)))
        return problems

    @property
    def counters_dir(self) -> Path:
        """Where each HLS meter's invocation counters are kept (edge/dlms_counters.py)."""
        return self.data_dir / "dlms-counters"

    def password(self, meter: MeterSettings) -> str | None:
        """The meter's DLMS password: its own, or the secret its reference names."""
        if meter.password_ref is not None:
            return self.secrets[meter.password_ref].get_secret_value()
        return meter.password

    def settings(self) -> GatewaySettings:
        """The part of this configuration the cloud may manage (passwords left out)."""
        sync = SyncSettings(**{k: getattr(self.cloud, k) for k in SyncSettings.model_fields})
        buses = [
            bus.model_copy(
                update={"meters": [m.model_copy(update={"password": None}) for m in bus.meters]}
            )
            for bus in self.buses
        ]
        return GatewaySettings(buses=buses, checks=self.checks, store=self.store, sync=sync)

    def with_settings(self, settings: GatewaySettings, pinned: list[str]) -> EdgeConfig:
        """This configuration with the cloud's settings in place of its own, except the
        sections pinned here. Validated again (a secret the settings name must be here)."""
        data = self.model_dump(exclude={"source"})
        data["secrets"] = {k: v.get_secret_value() for k, v in self.secrets.items()}
        if "buses" not in pinned:
            data["buses"] = [b.model_dump() for b in settings.buses]
        if "checks" not in pinned:
            data["checks"] = settings.checks.model_dump()
        if "store" not in pinned:
            data["store"] = settings.store.model_dump()
        if "sync" not in pinned:
            data["cloud"] |= settings.sync.model_dump()
        return EdgeConfig.model_validate(data).model_copy(update={"source": self.source})

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
        raise ConfigError([f"{path}: not valid TOML: {toml_problem(exc)}"]) from exc
    try:
        config = EdgeConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            message = validation_message(error)
            # a bus-level check names the meter it is about: point at that meter
            extra = re.match(r"^meters\.(\d+)(?:\.(\w+))?: ", message)
            named = re.match(r"^(buses(?:\.\w+)+): ", message)
            if named and not loc:  # a check of the whole file names its key
                loc = tuple(int(p) if p.isdigit() else p for p in named.group(1).split("."))
                message = message[named.end() :]
            elif extra and loc and loc[0] == "buses":
                loc = (*loc, "meters", int(extra.group(1))) + (
                    (extra.group(2),) if extra.group(2) else ()
                )
                message = message[extra.end() :]
            line = line_of(text, loc)
            where = f"{path}:{line}" if line else str(path)
            dotted = ".".join(str(p) for p in loc) or "(top level)"
            problems.append(f"{where}: {dotted}: {message}")
        raise ConfigError(problems) from exc
    config = config.model_copy(update={"source": path.resolve()})
    key_problems = config.key_problems()
    if key_problems:
        raise ConfigError(
            [
                f"{path}:{line_of(text, loc) or ''}: {'.'.join(map(str, loc))}: {message}"
                for loc, message in key_problems
            ]
        )
    return config


def load_or_report(path: Path) -> EdgeConfig | None:
    """`load_config`, or None with each problem on stderr as `gridgate edge: FILE:LINE: key:
    problem` (the daemon's start and the technician's commands say them alike)."""
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"gridgate edge: {problem}", file=sys.stderr)
        return None
