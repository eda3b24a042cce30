"""An asyncio byte stream over a serial port: pyserial, non-blocking, driven by the event loop.

pyserial's own I/O blocks; here the port is opened non-blocking (in a worker thread, as opening
can stall on a misbehaving adapter) and read from the event loop's reader callback, so nothing
ever blocks the loop.
"""

from __future__ import annotations

import asyncio
import contextlib

import serial

from .errors import TransportError
from .modbus.timing import LineSettings


class SerialStream:
    def __init__(self, port: str, settings: LineSettings) -> None:
        self.port = port
        self.settings = settings
        self._serial: serial.Serial | None = None
        self._buffer = bytearray()
        self._arrived = asyncio.Event()

    async def open(self) -> None:
        def open_port() -> serial.Serial:
            return serial.Serial(
                self.port,
                baudrate=self.settings.baud,
                parity=self.settings.parity,
                stopbits=self.settings.stop_bits,
                bytesize=self.settings.data_bits,
                timeout=0,
            )

        try:
            self._serial = await asyncio.to_thread(open_port)
        except (serial.SerialException, OSError) as exc:
            raise TransportError(f"cannot open serial port {self.port}: {exc}") from exc
        asyncio.get_running_loop().add_reader(self._serial.fileno(), self._readable)

    def _readable(self) -> None:
        assert self._serial is not None
        try:
            data = self._serial.read(4096)
        except (serial.SerialException, OSError):
            data = b""
        if data:
            self._buffer += data
            self._arrived.set()

    def write(self, data: bytes) -> None:
        if self._serial is None:
            raise TransportError(f"serial port {self.port} is not open")
        try:
            self._serial.write(data)
        except (serial.SerialException, OSError) as exc:
            raise TransportError(f"serial port {self.port} failed: {exc}") from exc

    async def read_some(self, deadline: float) -> bytes:
        """Whatever has arrived, waiting until `deadline` (loop time) for at least one byte."""
        while not self._buffer:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return b""
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def discard_input(self) -> None:
        self._buffer.clear()

    def close(self) -> None:
        if self._serial is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._serial.fileno())
            self._serial.close()
            self._serial = None
