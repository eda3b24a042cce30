"""DLMS links that carry APDUs: HDLC on a serial line, or the TCP wrapper.

Both offer `open()`, `exchange(apdu) -> apdu` and `close()`. HDLC segments long APDUs, asks for
the next segment of a long answer with RR, and checks sequence numbers; the wrapper frames each
APDU with its 8-byte header. Timeouts and bad frames become typed errors naming the meter.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Protocol

from ..errors import FrameError, MeterTimeout, ProtocolError, TransportError
from ..serial_port import SerialStream
from .hdlc import LLC_REQUEST, LLC_RESPONSE, Address, Frame, FrameReader, Kind, LinkParameters

MAX_APDU_BYTES = 65535


class DlmsLink(Protocol):
    async def open(self) -> None: ...
    async def exchange(self, apdu: bytes) -> bytes: ...
    async def close(self) -> None: ...


class HdlcLink:
    def __init__(
        self,
        stream: SerialStream,
        *,
        meter: str,
        client_address: int,
        server_logical: int,
        server_physical: int,
        timeout_s: float,
    ) -> None:
        self.stream = stream
        self.meter = meter
        self.client = Address(client_address)
        self.server = Address(server_logical, server_physical)
        self.timeout_s = timeout_s
        self.params = LinkParameters()
        self._reader = FrameReader()
        self._vs = self._vr = 0
        self.stream_open = False

    async def _frame(self) -> Frame:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        while True:
            try:
                frame = self._reader.next_frame()
            except FrameError as exc:
                raise type(exc)(str(exc), meter=self.meter) from exc
            if frame is not None:
                if frame.destination.logical == self.client.logical:
                    return frame
                continue  # another client's frame on a shared line
            data = await self.stream.read_some(deadline)
            if not data:
                raise MeterTimeout(f"no HDLC answer within {self.timeout_s:g} s", meter=self.meter)
            self._reader.feed(data)

    async def _send(self, frame: Frame) -> Frame:
        self.stream.write(frame.encode())
        return await self._frame()

    async def open(self) -> None:
        if not self.stream_open:
            await self.stream.open()
            self.stream_open = True
        self._reader = FrameReader()
        self.stream.discard_input()
        answer = await self._send(Frame(Kind.SNRM, self.server, self.client))
        if answer.kind is not Kind.UA:
            raise ProtocolError(
                f"meter answered SNRM with {answer.kind.value}, not UA", meter=self.meter
            )
        self.params = LinkParameters.decode(answer.information)
        self._vs = self._vr = 0

    async def exchange(self, apdu: bytes) -> bytes:
        data = LLC_REQUEST + apdu
        size = max(16, self.params.max_info_rx)
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        answer: Frame | None = None
        for index, chunk in enumerate(chunks):
            segmented = index < len(chunks) - 1
            answer = await self._send(
                Frame(
                    Kind.I,
                    self.server,
                    self.client,
                    chunk,
                    ssn=self._vs,
                    rsn=self._vr,
                    segmented=segmented,
                )
            )
            self._vs = (self._vs + 1) % 8
            if segmented and answer.kind is not Kind.RR:
                raise ProtocolError(
                    f"meter answered a segment with {answer.kind.value}", meter=self.meter
                )
        assert answer is not None
        received = bytearray()
        while True:
            if answer.kind is not Kind.I:
                raise ProtocolError(
                    f"expected an information frame, got {answer.kind.value}", meter=self.meter
                )
            if answer.ssn != self._vr:
                raise FrameError(
                    f"HDLC frame out of sequence (N(S)={answer.ssn}, expected {self._vr})",
                    meter=self.meter,
                )
            self._vr = (self._vr + 1) % 8
            received += answer.information
            if len(received) > MAX_APDU_BYTES + len(LLC_RESPONSE):
                raise FrameError("answer longer than 64 KiB", meter=self.meter)
            if not answer.segmented:
                break
            answer = await self._send(Frame(Kind.RR, self.server, self.client, rsn=self._vr))
        if not received.startswith(LLC_RESPONSE):
            raise FrameError("answer lacks the LLC response header E6 E7 00", meter=self.meter)
        return bytes(received[len(LLC_RESPONSE) :])

    async def close(self) -> None:
        with contextlib.suppress(ProtocolError):
            await self._send(Frame(Kind.DISC, self.server, self.client))
        self.stream.close()
        self.stream_open = False


class WrapperLink:
    """The DLMS TCP wrapper (IEC 62056-47)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        meter: str,
        client_address: int,
        server_logical: int,
        timeout_s: float,
    ) -> None:
        self.host, self.port = host, port
        self.meter = meter
        self.client_address = client_address
        self.server_logical = server_logical
        self.timeout_s = timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        try:
            async with asyncio.timeout(self.timeout_s):
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise TransportError(
                f"cannot connect to {self.host}:{self.port}: {exc}", meter=self.meter
            ) from exc

    async def exchange(self, apdu: bytes) -> bytes:
        if self._reader is None or self._writer is None:
            raise TransportError("DLMS wrapper link used before open()", meter=self.meter)
        header = struct.pack(">HHHH", 1, self.client_address, self.server_logical, len(apdu))
        self._writer.write(header + apdu)
        try:
            async with asyncio.timeout(self.timeout_s):
                await self._writer.drain()
                version, _src, _dst, length = struct.unpack(
                    ">HHHH", await self._reader.readexactly(8)
                )
                if version != 1:
                    raise FrameError(f"wrapper version {version} is not 1", meter=self.meter)
                return await self._reader.readexactly(length)
        except TimeoutError as exc:
            raise MeterTimeout(f"no answer within {self.timeout_s:g} s", meter=self.meter) from exc
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise TransportError(
                f"connection to {self.host}:{self.port} lost", meter=self.meter
            ) from exc

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
