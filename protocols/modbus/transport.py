"""One Modbus line (a serial port or a TCP endpoint), one transaction at a time.

Wraps pymodbus's async clients. Every transaction holds the line's lock, waits out the t3.5
silence after the previous answer (RTU), and no other sleep. pymodbus reports every failure on a
serial line as "no response"; the raw bytes that did arrive (seen through its packet trace) tell
a CRC failure from a truncated frame, line garbage, an answer that came after the timeout or true
silence (`classify_unanswered`), and each becomes its typed error naming the meter and the
registers.

After a timeout, a truncated frame or garbage the line stays quiet for one more timeout before the
next request: a meter that answers late would otherwise answer into the next transaction (on
RS-485, a collision). An answer that came whole (a CRC error, a late answer) leaves nothing on its
way, so only the inter-frame silence follows it. pymodbus discards what arrives while no request
is pending.
"""

from __future__ import annotations

import asyncio
import termios
import time
from dataclasses import dataclass

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from ..errors import (
    CrcError,
    FrameError,
    IllegalDataAddress,
    LateAnswer,
    MeterException,
    MeterTimeout,
    ProtocolError,
    TransportError,
)
from .rtu import crc_ok
from .timing import LineSettings, read_response_bytes

# the answers a register read can get: read holding (3) or input (4) registers, or their exceptions
ANSWER_FUNCTIONS = frozenset({3, 4, 0x83, 0x84})

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "device failure",
    5: "acknowledge",
    6: "device busy",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}


@dataclass
class LineStats:
    transactions: int = 0
    busy_s: float = 0.0  # time the line was in a transaction


def classify_unanswered(
    data: bytes, *, unit: int, where: str, timeout_s: float, meter: str
) -> ProtocolError:
    """What a transaction that pymodbus reports as "no response" really met, from the bytes that
    arrived by the time it gave up.

    An answer frame of `unit` (registers, or an exception) that is whole but fails its CRC is a
    CRC error; one cut short is a truncated frame; one that is whole and sound came after the
    timeout (pymodbus had stopped waiting). Nothing at all is silence; anything else is garbage.
    """
    if not data:
        return MeterTimeout(f"no answer to {where} within {timeout_s:g} s", meter=meter)
    if data[0] == unit and len(data) >= 2 and data[1] in ANSWER_FUNCTIONS:
        if data[1] & 0x80:
            length = 5  # unit, function | 0x80, exception code, CRC
        elif len(data) >= 3:
            length = 5 + data[2]  # unit, function, byte count, data, CRC
        else:
            length = len(data) + 1  # the byte count has not arrived: shorter than any answer
        if len(data) < length:
            return FrameError(f"{where}: answer cut short after {len(data)} bytes", meter=meter)
        if len(data) == length:
            if not crc_ok(data):
                return CrcError(f"{where}: answer failed its CRC check", meter=meter)
            return LateAnswer(
                f"the answer to {where} came after the {timeout_s:g} s timeout;"
                " give the meter a longer timeout",
                meter=meter,
            )
    return FrameError(
        f"{where}: garbage on the line ({len(data)} bytes: {data[:8].hex()}...)", meter=meter
    )


class ModbusLine:
    """Base of the serial and TCP lines: the lock, the silence and the error mapping."""

    name: str

    def __init__(
        self,
        client: AsyncModbusSerialClient | AsyncModbusTcpClient,
        silence_s: float,
        character_s: float = 0.0,
    ) -> None:
        self._client = client
        self._silence_s = silence_s
        self._character_s = character_s  # a late answer may still be on the wire this long
        self._lock = asyncio.Lock()
        self._quiet_at = 0.0
        self._received = bytearray()
        self.stats = LineStats()

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            self._received += data
        return data

    async def connect(self) -> None:
        try:
            connected = await self._client.connect()
        except (OSError, ConnectionException, termios.error) as exc:
            self._client.close()  # a half-open port would stay locked against the next try
            raise TransportError(f"cannot open {self.name}: {exc}") from exc
        if not connected:
            self._client.close()
            raise TransportError(f"cannot open {self.name}: check the port/host and permissions")

    def close(self) -> None:
        self._client.close()

    async def read_registers(
        self,
        *,
        meter: str,
        unit: int,
        register_type: str,
        address: int,
        count: int,
        timeout_s: float,
    ) -> list[int]:
        """Read `count` registers; raise MeterTimeout/CrcError/FrameError/MeterException."""
        where = f"{register_type} registers {address}-{address + count - 1}"
        async with self._lock:
            wait = self._quiet_at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not self._client.connected:
                await self.connect()
            self._client.ctx.comm_params.timeout_connect = timeout_s
            self._received.clear()
            started = time.monotonic()
            read = (
                self._client.read_input_registers
                if register_type == "input"
                else self._client.read_holding_registers
            )
            quiet_s = self._silence_s
            try:
                response = await read(address, count=count, device_id=unit)
            except ModbusIOException as exc:
                error = classify_unanswered(
                    bytes(self._received), unit=unit, where=where, timeout_s=timeout_s, meter=meter
                )
                if not isinstance(error, CrcError | LateAnswer):
                    # the answer may still come: let it pass before the next request goes out
                    # (a damaged or late answer came whole: nothing more is on its way)
                    quiet_s += timeout_s + read_response_bytes(count) * self._character_s
                raise error from exc
            except (ConnectionException, OSError) as exc:
                raise TransportError(
                    f"{self.name} failed during {where}: {exc}", meter=meter
                ) from exc
            except ModbusException as exc:
                raise FrameError(f"{where}: {exc}", meter=meter) from exc
            finally:
                done = time.monotonic()
                self._quiet_at = done + quiet_s
                self.stats.transactions += 1
                self.stats.busy_s += done - started
        if response.isError():
            code = getattr(response, "exception_code", 0)
            kind = IllegalDataAddress if code == 2 else MeterException
            raise kind(
                f"{where}: exception {code} ({EXCEPTION_NAMES.get(code, 'unknown')})",
                code=code,
                meter=meter,
            )
        registers = list(response.registers)
        if len(registers) != count:
            raise FrameError(
                f"{where}: {len(registers)} registers came back, not {count}", meter=meter
            )
        return registers


class ModbusSerialLine(ModbusLine):
    def __init__(self, port: str, settings: LineSettings) -> None:
        self.name = f"serial port {port}"
        client = AsyncModbusSerialClient(
            port,
            baudrate=settings.baud,
            parity=settings.parity,
            stopbits=settings.stop_bits,
            bytesize=settings.data_bits,
            timeout=1.0,
            retries=0,
            reconnect_delay=0,
            trace_packet=self._trace,
        )
        super().__init__(client, settings.silence_s, settings.character_s)


class ModbusTcpLine(ModbusLine):
    def __init__(self, host: str, port: int) -> None:
        self.name = f"modbus tcp {host}:{port}"
        client = AsyncModbusTcpClient(
            host, port=port, timeout=1.0, retries=0, reconnect_delay=0, trace_packet=self._trace
        )
        super().__init__(client, 0.0)
