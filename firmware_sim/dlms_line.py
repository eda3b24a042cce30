"""The simulated DLMS meter's two faces: HDLC on a pty (with wire time) and the TCP wrapper.

HDLC: the meter answers SNRM with UA (and its link parameters), I frames in sequence, RR frames
that ask for the next segment of a long answer, and DISC. It answers only frames addressed to its
own physical address. TCP wrapper (IEC 62056-47): an 8-byte header (version 1, source and
destination wPort, length) before each APDU.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
from collections import deque
from pathlib import Path

import structlog

from protocols.dlms.hdlc import (
    LLC_REQUEST,
    LLC_RESPONSE,
    Address,
    Frame,
    FrameReader,
    Kind,
    LinkParameters,
)
from protocols.errors import FrameError
from protocols.modbus.timing import LineSettings

from .dlms_meter import DlmsSession, SimulatedDlmsMeter
from .pty_line import PtyLine

log = structlog.get_logger(__name__)
WRAPPER_VERSION = 1


class HdlcMeterLine:
    """One DLMS meter on a serial line (a pty)."""

    def __init__(
        self, meter: SimulatedDlmsMeter, line: LineSettings, link: Path | None, seed: int = 0
    ) -> None:
        self.meter = meter
        self.line = line
        self.link = link
        self.params = LinkParameters(max_info_tx=128, max_info_rx=128)
        self._pty = PtyLine(link, self._on_bytes)
        self._reader = FrameReader()
        self._rng = random.Random(seed)
        self._queue: asyncio.Queue[tuple[Frame, int, float]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._reset_link()
        self.bad_frames = 0

    def _reset_link(self) -> None:
        self.connected = False
        self.vs = self.vr = 0
        self.incoming = bytearray()
        self.outgoing: deque[bytes] = deque()
        self.session = DlmsSession(self.meter)
        self._client = Address(16)

    @property
    def device_path(self) -> str:
        return self._pty.device_path

    async def start(self) -> None:
        self._pty.open()
        self._worker = asyncio.create_task(self._serve(), name="dlms-hdlc")
        log.info(
            "dlms hdlc meter listening",
            device=self.device_path,
            link=str(self.link),
            physical_address=self.meter.physical_address,
        )

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        self._pty.close()

    async def __aenter__(self) -> HdlcMeterLine:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def _on_bytes(self, data: bytes, now: float) -> None:
        self._reader.feed(data)
        while True:
            try:
                frame = self._reader.next_frame()
            except FrameError:
                self.bad_frames += 1  # a corrupt frame gets no answer; the client times out
                continue
            if frame is None:
                return
            self._queue.put_nowait((frame, len(frame.encode()), now))

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        free_at = loop.time()
        while True:
            frame, size, arrived = await self._queue.get()
            if frame.destination.physical not in (self.meter.physical_address, None):
                continue
            try:
                reply = self._respond(frame)
            except Exception:  # a simulator bug must not silence the meter for good
                log.exception("dlms meter failed to answer a frame", frame=frame.kind.value)
                continue
            if reply is None:
                continue
            faults = self.meter.faults
            if faults.no_answer and self._rng.random() < faults.no_answer:
                continue
            wire = reply.encode()
            if faults.garbage and self._rng.random() < faults.garbage:
                wire = bytes(self._rng.randrange(256) for _ in range(self._rng.randrange(3, 40)))
            elif faults.crc_error and self._rng.random() < faults.crc_error:
                wire = wire[:-3] + bytes([wire[-3] ^ 0xFF]) + wire[-2:]
            elif faults.truncated and self._rng.random() < faults.truncated:
                wire = wire[: len(wire) // 2]
            start = max(arrived, free_at) + self.line.frame_s(size) + self.line.silence_s
            done = (
                start
                + self.meter.turnaround_s
                + faults.late_answer_s
                + self.line.frame_s(len(wire))
            )
            await asyncio.sleep(max(0.0, done - loop.time()))
            self._pty.write(wire)
            free_at = done

    def _respond(self, frame: Frame) -> Frame | None:
        me = Address(1, self.meter.physical_address)
        client = frame.source
        if frame.kind is Kind.SNRM:
            self._reset_link()
            self.connected = True
            self._client = client
            self.session.client_sap = client.logical
            return Frame(Kind.UA, client, me, self.params.encode())
        if frame.kind is Kind.DISC:
            was_connected = self.connected
            self._reset_link()
            if not was_connected:
                return Frame(Kind.DM, client, me)
            # UA carries the link parameters here too: legal, and dlms-cosem's client cannot
            # parse a UA without an information field (it always expects a header check).
            return Frame(Kind.UA, client, me, self.params.encode())
        if not self.connected:
            return Frame(Kind.DM, client, me)
        if frame.kind is Kind.RR:
            return self._next_segment(client, me)
        if frame.kind is not Kind.I:
            return None
        if frame.ssn != self.vr:  # out of sequence: ask again for the one we expect
            return Frame(Kind.RR, client, me, rsn=self.vr)
        self.vr = (self.vr + 1) % 8
        self.incoming += frame.information
        if frame.segmented:
            return Frame(Kind.RR, client, me, rsn=self.vr)
        payload, self.incoming = bytes(self.incoming), bytearray()
        if not payload.startswith(LLC_REQUEST):
            return None
        answer = self.session.answer(payload[len(LLC_REQUEST) :])
        if answer is None:
            return None
        data = LLC_RESPONSE + answer
        size = self.params.max_info_tx
        self.outgoing = deque(data[i : i + size] for i in range(0, len(data), size))
        return self._next_segment(client, me)

    def _next_segment(self, client: Address, me: Address) -> Frame | None:
        if not self.outgoing:
            return Frame(Kind.RR, client, me, rsn=self.vr)
        chunk = self.outgoing.popleft()
        frame = Frame(
            Kind.I, client, me, chunk, ssn=self.vs, rsn=self.vr, segmented=bool(self.outgoing)
        )
        self.vs = (self.vs + 1) % 8
        return frame


class DlmsTcpServer:
    """The meter behind the DLMS TCP wrapper; each connection is its own association."""

    def __init__(self, meter: SimulatedDlmsMeter, host: str, port: int) -> None:
        self.meter = meter
        self.host, self.port = host, port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("dlms tcp meter listening", host=self.host, port=self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = DlmsSession(self.meter)
        try:
            while True:
                version, source, destination, length = struct.unpack(
                    ">HHHH", await reader.readexactly(8)
                )
                if version != WRAPPER_VERSION or length > 65535:
                    return
                apdu = await reader.readexactly(length)
                session.client_sap = source
                answer = session.answer(apdu)
                faults = self.meter.faults
                if answer is None or faults.no_answer >= 1.0:
                    continue
                await asyncio.sleep(self.meter.turnaround_s + faults.late_answer_s)
                header = struct.pack(">HHHH", WRAPPER_VERSION, destination, source, len(answer))
                writer.write(header + answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
