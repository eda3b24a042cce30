"""Modbus TCP face of the same simulated meters: MBAP framing, the unit id picks the meter.

TCP has no CRC, so the `crc_error` fault does not apply here; the others do (silence, late
answers, garbage, truncated frames, exception responses). Each connection is served in order;
several connections may be open at once, as gateways and scanners expect.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct

import structlog

from .modbus_meter import SimulatedModbusMeter

log = structlog.get_logger(__name__)
MAX_PDU_BYTES = 253


class ModbusTcpServer:
    def __init__(self, meters: list[SimulatedModbusMeter], host: str, port: int, seed: int = 0):
        self.meters = {meter.unit_id: meter for meter in meters}
        self.host, self.port = host, port
        self._server: asyncio.Server | None = None
        self._rng = random.Random(seed)
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("modbus tcp listening", host=self.host, port=self.port, units=sorted(self.meters))

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                header = await reader.readexactly(7)
                transaction, protocol, length, unit = struct.unpack(">HHHB", header)
                if protocol != 0 or not 2 <= length <= MAX_PDU_BYTES + 1:
                    log.warning("modbus tcp: bad MBAP header, closing", header=header.hex())
                    return
                pdu = await reader.readexactly(length - 1)
                meter = self.meters.get(unit)
                if meter is None:
                    continue  # a gateway would answer exception 11; a bare device stays silent
                answer = meter.answer(pdu)
                if answer.pdu is None:
                    continue
                await asyncio.sleep(answer.delay_s)
                frame = struct.pack(">HHHB", transaction, 0, len(answer.pdu) + 1, unit) + answer.pdu
                if answer.garbage:
                    frame = bytes(
                        self._rng.randrange(256) for _ in range(self._rng.randrange(3, 40))
                    )
                elif answer.truncate:
                    frame = frame[: max(3, len(frame) // 2)]
                writer.write(frame)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
