"""A simulated RS-485 multi-drop line on a pseudo-terminal, with real wire time.

The gateway opens the pty's slave end (`link` is a symlink to it); the simulator holds the
master end. Every meter on the line sees every request and only the addressed one answers, one
transaction at a time, as on a half-duplex bus. A pty delivers bytes instantly, so the simulator
adds what the wire would take: the answer is written when the request frame, the t3.5 silence,
the meter's turnaround and the answer frame would have passed at the configured baud rate.
Frames with a bad CRC or for unknown units get no answer, as on a real line.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path

import structlog

from protocols.modbus.rtu import crc_ok, request_length, with_crc
from protocols.modbus.timing import LineSettings

from .modbus_meter import Answer, SimulatedModbusMeter
from .pty_line import PtyLine

log = structlog.get_logger(__name__)


class RtuBus:
    def __init__(
        self,
        meters: list[SimulatedModbusMeter],
        line: LineSettings,
        link: Path | None = None,
        seed: int = 0,
    ) -> None:
        ids = [meter.unit_id for meter in meters]
        duplicates = sorted({unit for unit in ids if ids.count(unit) > 1})
        if duplicates:
            raise ValueError(f"duplicate unit id(s) on one bus: {duplicates}")
        self.meters = {meter.unit_id: meter for meter in meters}
        self.line = line
        self.link = link
        self._rng = random.Random(seed)
        self._line = PtyLine(link, self._on_bytes)
        self._buffer = bytearray()
        self._first_byte_at: float | None = None
        self._silence_timer: asyncio.TimerHandle | None = None
        self._queue: asyncio.Queue[tuple[bytes, float]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self.frames_received = 0
        self.frames_dropped = 0

    @property
    def device_path(self) -> str:
        """The gateway end of the line (the pty slave)."""
        return self._line.device_path

    async def start(self) -> None:
        self._line.open()
        self._worker = asyncio.create_task(self._serve(), name="rtu-bus")
        log.info(
            "rtu bus listening",
            device=self.device_path,
            link=str(self.link),
            baud=self.line.baud,
            units=sorted(self.meters),
        )

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        self._line.close()

    async def __aenter__(self) -> RtuBus:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    # --- receiving: split the byte stream into frames -----------------------------------------

    def _on_bytes(self, data: bytes, now: float) -> None:
        loop = asyncio.get_running_loop()
        baud, parity, stop_bits = self._line.settings()
        if (baud, parity, stop_bits) != (self.line.baud, self.line.parity, self.line.stop_bits):
            # the gateway talks at other line settings: to the meters' UARTs this is noise
            self.frames_dropped += 1
            return
        if not self._buffer:
            self._first_byte_at = now
        self._buffer += data
        self._take_frames()
        if self._silence_timer is not None:
            self._silence_timer.cancel()
        if self._buffer:
            # What is left is incomplete or unknowable: a real device drops it after silence.
            wait = max(self.line.silence_s, 0.02)
            self._silence_timer = loop.call_later(wait, self._drop_partial)

    def _take_frames(self) -> None:
        while self._buffer:
            length = request_length(bytes(self._buffer))
            if length is None or len(self._buffer) < length:
                return
            frame = bytes(self._buffer[:length])
            del self._buffer[:length]
            arrived = self._first_byte_at or asyncio.get_running_loop().time()
            if crc_ok(frame):
                self.frames_received += 1
                self._queue.put_nowait((frame, arrived))
                self._first_byte_at = asyncio.get_running_loop().time() if self._buffer else None
            else:
                # A corrupt frame: the device discards everything up to the next silence.
                self.frames_dropped += 1
                self._buffer.clear()
                self._first_byte_at = None

    def _drop_partial(self) -> None:
        if self._buffer:
            self.frames_dropped += 1
            self._buffer.clear()
            self._first_byte_at = None

    # --- answering, one transaction at a time ---------------------------------------------------

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        line_free_at = loop.time()
        while True:
            frame, arrived = await self._queue.get()
            unit, pdu = frame[0], frame[1:-2]
            meter = self.meters.get(unit)
            if meter is None:  # another device's address (or broadcast): stay silent
                continue
            answer = meter.answer(pdu)
            if answer.pdu is None:
                continue
            wire = self._wire_bytes(unit, answer)
            request_end = max(arrived, line_free_at) + self.line.frame_s(len(frame))
            ready = request_end + self.line.silence_s + answer.delay_s
            done = ready + self.line.frame_s(len(wire))
            await asyncio.sleep(max(0.0, done - loop.time()))
            self._line.write(wire)
            line_free_at = done + self.line.silence_s

    def _wire_bytes(self, unit: int, answer: Answer) -> bytes:
        assert answer.pdu is not None
        frame = with_crc(bytes([unit]) + answer.pdu)
        if answer.garbage:
            return bytes(self._rng.randrange(256) for _ in range(self._rng.randrange(3, 40)))
        if answer.corrupt_crc:
            frame = frame[:-2] + bytes([frame[-2] ^ 0xFF, frame[-1] ^ 0x5A])
        if answer.truncate:
            frame = frame[: max(2, len(frame) // 2)]
        return frame
