"""Reading one DLMS/COSEM meter into Samples: registers, its clock, and its load profile.

Each read opens a session (HDLC connect or TCP, association, GETs, release), so a meter that
drops idle links between polls costs nothing extra to handle. Scaler-units are read once per
register and kept. A register the meter does not have is remembered and not asked for again.
`read_load_profile(start, end)` fills a gap after an outage (or a range asked for) from the
meter's own memory; `write_clock` sets the meter's clock, which needs the management
association (the meter's password, or HLS-GMAC with the meter's keys).

With `keys` in the configuration every session is an HLS-GMAC association with suite-0
ciphering (IS 15959's utility settings client, SAP 48, unless `client_sap` says otherwise); the
client's invocation counters come from a durable ledger, one per meter, so that no counter is
ever sent twice under the same key, across restarts and power cuts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

import structlog
from dlms_cosem import dlms_data
from dlms_cosem import enumerations as enums

from shared import QUANTITIES, Sample

from ..errors import FrameError, MeterException
from ..modbus.timing import LineSettings
from ..serial_port import SerialStream
from .client import CosemSession
from .cosem import (
    CLOCK,
    CLOCK_LN,
    CONTROL_STATES,
    DISCONNECT_CONTROL,
    DISCONNECT_CONTROL_LN,
    EXTENDED_REGISTER,
    REGISTER,
    REMOTE_DISCONNECT,
    REMOTE_RECONNECT,
    decode_datetime,
    encode_datetime,
    quantity_ln,
    register_class,
    to_quantity_value,
)
from .hls import CipheredAssociation
from .is15959 import Log
from .link import DlmsLink, HdlcLink, WrapperLink
from .profile_reader import ProfileReader
from .profiles import EntrySelection, MeterEvent, ProfileTable, RangeSelection
from .security import CounterLedger, InvocationCounters, MemoryLedger, SecurityKeys

log = structlog.get_logger(__name__)
PollClass = Literal["fast", "slow"]
DEFAULT_QUANTITIES = (
    *("1.8.0", "2.8.0", "9.8.0", "16.7.0", "32.7.0", "31.7.0", "13.7.0", "14.7.0"),
    *("1.6.0", "9.6.0"),  # maximum demand, kW and kVA, as Indian DLMS meters bill it
)
_CLASS_INCONSISTENT = int(enums.DataAccessResult.OBJECT_CLASS_INCONSISTENT)
_OBJECT_MISSING = {
    int(enums.DataAccessResult.OBJECT_UNDEFINED),
    int(enums.DataAccessResult.OBJECT_UNAVAILABLE),
    _CLASS_INCONSISTENT,
}


@dataclass(frozen=True)
class DlmsMeterConfig:
    meter_id: str
    password: bytes | None = None  # LLS password; None: no-security association
    physical_address: int = 17  # HDLC lower address
    logical_device: int = 1  # HDLC upper address / wrapper destination wPort
    quantities: tuple[str, ...] = DEFAULT_QUANTITIES
    timeout_s: float = 2.0
    keys: SecurityKeys | None = None  # HLS-GMAC with suite-0 ciphering
    client_sap: int | None = None  # None: by the association's kind (below)

    @property
    def client_address(self) -> int:
        """The client SAP: as configured, else IS 15959's utility settings client (48) for
        HLS, the management client (1) for LLS, the public client (16) otherwise."""
        if self.client_sap is not None:
            return self.client_sap
        if self.keys is not None:
            return 48
        return 1 if self.password else 16


def hdlc_link_factory(
    port: str, settings: LineSettings, config: DlmsMeterConfig
) -> Callable[[], DlmsLink]:
    return lambda: HdlcLink(
        SerialStream(port, settings),
        meter=config.meter_id,
        client_address=config.client_address,
        server_logical=config.logical_device,
        server_physical=config.physical_address,
        timeout_s=config.timeout_s,
    )


def wrapper_link_factory(host: str, port: int, config: DlmsMeterConfig) -> Callable[[], DlmsLink]:
    return lambda: WrapperLink(
        host,
        port,
        meter=config.meter_id,
        client_address=config.client_address,
        server_logical=config.logical_device,
        timeout_s=config.timeout_s,
    )


class DlmsMeterReader:
    def __init__(
        self,
        config: DlmsMeterConfig,
        link_factory: Callable[[], DlmsLink],
        counters: CounterLedger | None = None,
    ) -> None:
        """`counters`: where this meter's invocation counters are kept durably (HLS only; a
        ledger in memory, which forgets at exit, when none is given)."""
        unknown = [q for q in config.quantities if q not in QUANTITIES]
        if unknown:
            raise ValueError(f"unknown quantities {unknown}")
        self.config = config
        self._link_factory = link_factory
        self.counters = (
            InvocationCounters(counters or MemoryLedger()) if config.keys is not None else None
        )
        self._scaler_units: dict[str, tuple[int, int]] = {}
        self._classes: dict[str, int] = {}  # quantity -> the interface class this meter uses
        self.missing: set[str] = set()
        self.profiles = ProfileReader(config.meter_id)
        self._log = log.bind(meter_id=config.meter_id)

    @property
    def meter_id(self) -> str:
        return self.config.meter_id

    def _session(self) -> CosemSession:
        security = None
        if self.config.keys is not None and self.counters is not None:
            security = CipheredAssociation(self.config.keys, self.counters, meter=self.meter_id)
        return CosemSession(
            self._link_factory(),
            meter=self.meter_id,
            password=self.config.password,
            security=security,
        )

    async def _scaler_unit(self, session: CosemSession, quantity: str) -> tuple[int, int]:
        if quantity not in self._scaler_units:
            value = await self._get_register(session, quantity, 3)
            if not (isinstance(value, list) and len(value) == 2):
                raise FrameError(
                    f"{quantity}: scaler_unit is not a 2-element structure", meter=self.meter_id
                )
            self._scaler_units[quantity] = (int(value[0]), int(value[1]))
        return self._scaler_units[quantity]

    async def _get_register(self, session: CosemSession, quantity: str, attribute: int) -> object:
        """One attribute of a quantity's register. A meter that keeps the object in the other
        register class (some keep maximum demand in a plain register) is asked again in that
        class, once; the class that answered is remembered."""
        ln = quantity_ln(quantity)
        class_id = self._classes.get(quantity, register_class(quantity))
        try:
            value = await session.get(class_id, ln, attribute)
        except MeterException as exc:
            if quantity in self._classes or exc.code != _CLASS_INCONSISTENT:
                raise
            class_id = REGISTER if class_id == EXTENDED_REGISTER else EXTENDED_REGISTER
            value = await session.get(class_id, ln, attribute)
        self._classes[quantity] = class_id
        return value

    async def read(self, poll_class: PollClass | None = None) -> list[Sample]:
        wanted = [
            q
            for q in self.config.quantities
            if q not in self.missing
            and (poll_class is None or (poll_class == "slow") == QUANTITIES[q].changes_slowly)
        ]
        samples = []
        async with self._session() as session:
            for quantity in wanted:
                try:
                    scaler, unit = await self._scaler_unit(session, quantity)
                    raw = await self._get_register(session, quantity, 2)
                except MeterException as exc:
                    if exc.code in _OBJECT_MISSING:
                        self.missing.add(quantity)
                        self._log.warning("meter has no such register", quantity=quantity)
                        continue
                    raise
                if not isinstance(raw, int):
                    raise FrameError(
                        f"{quantity}: value is {type(raw).__name__}, not integer",
                        meter=self.meter_id,
                    )
                value = to_quantity_value(raw, scaler, unit, quantity)
                samples.append(
                    Sample(
                        meter_id=self.meter_id, quantity=quantity, ts=datetime.now(UTC), value=value
                    )
                )
        return samples

    async def read_clock(self) -> datetime:
        """The meter's own clock (compare with the gateway's to measure drift)."""
        async with self._session() as session:
            raw = await session.get(CLOCK, CLOCK_LN, 2)
        if not isinstance(raw, bytes | bytearray):
            raise FrameError("clock is not an octet string", meter=self.meter_id)
        return decode_datetime(bytes(raw))

    async def write_clock(self, now: Callable[[], datetime]) -> None:
        """Set the meter's clock (class 8, attribute 2) to `now()`, taken once the association
        is open so that the time sent is as fresh as it can be. Meters accept this only from
        the management client: without the meter's password in the configuration the meter
        answers READ_WRITE_DENIED, raised as MeterException with that hint."""
        async with self._session() as session:
            data = dlms_data.OctetStringData(encode_datetime(now())).to_bytes()
            try:
                await session.set(CLOCK, CLOCK_LN, 2, data)
            except MeterException as exc:
                if exc.code == int(enums.DataAccessResult.READ_WRITE_DENIED):
                    if self.config.keys is not None:
                        hint = (
                            f" (client SAP {self.config.client_address} may not set it: IS"
                            " 15959 keeps clock writes to the utility settings client, 48)"
                        )
                    elif self.config.password is None:
                        hint = (
                            " (the meter's password is not in this gateway's configuration:"
                            " only the management client may set a clock)"
                        )
                    else:
                        hint = " (this meter's password does not allow setting its clock)"
                    said = str(exc).removeprefix(f"{self.meter_id}: ")
                    raise MeterException(said + hint, code=exc.code, meter=self.meter_id) from exc
                raise

    # --- profiles (protocols/dlms/profile_reader.py) -------------------------------------

    async def read_profile(
        self, ln: bytes, selection: RangeSelection | EntrySelection | None = None
    ) -> ProfileTable:
        """A profile generic's buffer (all of it, or by range or entry), decoded by its
        capture objects with each register column's scaler-unit."""
        async with self._session() as session:
            return await self.profiles.read(session, ln, selection)

    async def read_load_profile(self, start: datetime, end: datetime) -> list[Sample]:
        """Energy registers from the block load profile between `start` and `end` (inclusive),
        stamped with the meter's capture times: as captured, or rebuilt from the blocks' energy
        on the daily profile's midnight register (IS 15959 meters keep block energy)."""
        if end < start:
            raise ValueError(f"load profile range ends ({end}) before it starts ({start})")
        async with self._session() as session:
            return await self.profiles.load_profile(
                session, start.astimezone(UTC), end.astimezone(UTC)
            )

    async def read_events(self, since: dict[Log, datetime | None]) -> list[MeterEvent]:
        """The entries of the meter's event logs from `since[log]` on (absent: all kept)."""
        async with self._session() as session:
            return await self.profiles.events(session, since)

    async def read_name_plate(self) -> dict[str, str]:
        async with self._session() as session:
            return await self.profiles.name_plate(session)

    async def switch_supply(self, connect: bool) -> dict[str, object]:
        """Open (disconnect) or close (reconnect) the meter's supply relay through its
        disconnect control (class 70), then read back what the relay says."""
        method = REMOTE_RECONNECT if connect else REMOTE_DISCONNECT
        async with self._session() as session:
            await session.action(
                DISCONNECT_CONTROL,
                DISCONNECT_CONTROL_LN,
                method,
                dlms_data.IntegerData(0).to_bytes(),
            )
            output = await session.get(DISCONNECT_CONTROL, DISCONNECT_CONTROL_LN, 2)
            state = await session.get(DISCONNECT_CONTROL, DISCONNECT_CONTROL_LN, 3)
        if not isinstance(output, bool) or not isinstance(state, int):
            raise FrameError("disconnect control answered in the wrong types", meter=self.meter_id)
        if output != connect:
            raise MeterException(
                f"the relay is still {'open' if connect else 'closed'} after the command",
                meter=self.meter_id,
            )
        return {"connected": output, "control_state": CONTROL_STATES.get(state, str(state))}
