"""Batch bytes: canonical encoding, compression, bounded decompression, decoding.

The order of work on the receiving side matters and is fixed by `open_batch`: check the body
size, verify the signature over the exact body bytes, decompress with a hard output bound, then
parse. Nothing unauthenticated is ever decompressed or parsed. `unseal` is the part before the
parse, for the cloud, which looks at the verified bytes (it knows a batch it took before by their
digest) and then parses them into `ReceivedBatch` (`decode_received_batch`).
"""

from __future__ import annotations

import gzip
import io
import json
import math
import time
import zlib
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import zstandard
from pydantic import ValidationError

from ._exceptions import BatchInvalid, BatchTooLarge, EncodingError
from ._models import MAX_BODY_BYTES, MAX_DECOMPRESSED_BYTES, Batch
from ._quantities import QUANTITIES
from ._received import ReceivedBatch
from ._settings_text import validation_message
from ._signing import PrivateKey, PublicKey, sign_body, verify_body

ContentEncoding = Literal["zstd", "gzip", "identity"]
CONTENT_ENCODINGS: tuple[str, ...] = ("zstd", "gzip", "identity")

SIGNATURE_HEADER = "X-Gridgate-Signature"
GATEWAY_HEADER = "X-Gridgate-Gateway"


def encode_batch(batch: Batch) -> bytes:
    """The canonical JSON bytes of a batch: field order of the model, no whitespace, UTF-8.

    Encoding the same batch twice gives the same bytes, so a resent batch has the same signature.
    """
    return batch.model_dump_json().encode()


# (seq, meter_id, quantity, ts in microseconds since the epoch, UTC, value, quality): a reading
# as a gateway's log keeps it
ReadingTuple = tuple[int, str, str, int, float, str]
_NO_READINGS = b'"readings":[],'
_JOIN_EVERY = 256  # readings written, then joined into one piece of text


class EncodedReadings(NamedTuple):
    """Readings written for a batch (`encode_readings`): `text` is the inside of its
    "readings" array, `seqs` their seqs in increasing order."""

    text: bytes
    seqs: array[int]

    @property
    def count(self) -> int:
        return len(self.seqs)


def encode_readings(rows: Iterable[ReadingTuple]) -> EncodedReadings:
    """Write readings as the contract's JSON, one row at a time, straight from a gateway's log
    (rows in increasing seq): no `Reading` model a row, and no row kept once written. A
    5,000-reading batch built from a list of rows and a list of their texts left the allocator
    a few megabytes the daemon kept; rows read one by one from SQLite and their texts joined
    every `_JOIN_EVERY` leave it next to nothing. The cloud reads them as it reads `Reading`
    models' JSON (tests hold them equal); the text differs only in how a float's exponent is
    written (1e-07, not 1e-7)."""
    texts: dict[str, str] = {}  # meter ids, quantities, units, qualities: JSON strings
    seconds: dict[int, str] = {}  # whole seconds: their ISO text

    def text(value: str) -> str:
        found = texts.get(value)
        if found is None:
            found = texts[value] = json.dumps(value)
        return found

    seqs = array("q")
    pieces: list[str] = []
    written: list[str] = []
    for seq, meter_id, quantity, ts_us, value, quality in rows:
        if seqs and seq <= seqs[-1]:
            raise ValueError(f"reading {seq}: its seq is not after the one before ({seqs[-1]})")
        if not math.isfinite(value):
            raise ValueError(f"reading {seq}: {value} is not a finite number")
        if quantity not in QUANTITIES:
            raise ValueError(f"reading {seq}: {quantity!r} is not a quantity code")
        whole, micros = divmod(ts_us, 1_000_000)
        stamp = seconds.get(whole)
        if stamp is None:
            stamp = seconds[whole] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        ts = f"{stamp}.{micros:06d}Z" if micros else f"{stamp}Z"
        written.append(
            f'{{"meter_id":{text(meter_id)},"quantity":{text(quantity)},"ts":"{ts}",'
            f'"value":{float(value)!r},"unit":{text(QUANTITIES[quantity].unit)},'
            f'"quality":{text(quality)},"seq":{seq}}}'
        )
        seqs.append(seq)
        if len(written) == _JOIN_EVERY:
            pieces.append(",".join(written))
            written.clear()
    if written:
        pieces.append(",".join(written))
    return EncodedReadings(",".join(pieces).encode(), seqs)


def encode_batch_rows(envelope: Batch, readings: EncodedReadings) -> bytes:
    """The bytes of `envelope` with `readings` as its readings: a gateway's batch without a
    `Reading` model a reading. `envelope` has no readings and its seqs span the readings' too
    (made with `Batch.model_construct`; the caller checks them with `seq_problem`)."""
    raw = encode_batch(envelope)
    at = raw.index(_NO_READINGS)  # the fields before it are ids, counts and a time
    return b"".join(
        (raw[:at], b'"readings":[', readings.text, b"],", raw[at + len(_NO_READINGS) :])
    )


def compress(raw: bytes, encoding: ContentEncoding) -> bytes:
    """Compress `raw` for the given Content-Encoding."""
    if encoding == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(raw)
    if encoding == "gzip":
        return gzip.compress(raw, compresslevel=6, mtime=0)
    if encoding == "identity":
        return raw
    raise EncodingError(f"unknown content encoding {encoding!r}; use one of {CONTENT_ENCODINGS}")


def decompress(body: bytes, encoding: str, max_bytes: int = MAX_DECOMPRESSED_BYTES) -> bytes:
    """Decompress `body`, refusing to produce more than `max_bytes` (zip bombs stop there)."""
    encoding = (encoding or "identity").strip().lower()
    too_large = BatchTooLarge(f"decompressed body is larger than the limit of {max_bytes} bytes")
    if encoding == "identity":
        if len(body) > max_bytes:
            raise too_large
        return body
    if encoding == "gzip":
        inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
        try:
            out = inflater.decompress(body, max_bytes + 1)
        except zlib.error as exc:
            raise EncodingError(f"body is not valid gzip: {exc}") from exc
        if len(out) > max_bytes or inflater.unconsumed_tail:
            raise too_large
        if not inflater.eof:
            raise EncodingError("body is not valid gzip: stream is truncated")
        return out
    if encoding == "zstd":
        chunks: list[bytes] = []
        total = 0
        try:
            with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(body)) as reader:
                while chunk := reader.read(min(1 << 20, max_bytes + 1 - total)):
                    chunks.append(chunk)
                    total += len(chunk)
                    if total > max_bytes:
                        raise too_large
        except zstandard.ZstdError as exc:
            raise EncodingError(f"body is not valid zstd: {exc}") from exc
        return b"".join(chunks)
    raise EncodingError(f"unknown content encoding {encoding!r}; use one of {CONTENT_ENCODINGS}")


def decode_batch(raw: bytes) -> Batch:
    """Parse and validate canonical batch JSON; raise BatchInvalid naming every bad field."""
    try:
        return Batch.model_validate_json(raw)
    except ValidationError as exc:
        raise BatchInvalid(describe_validation_error(exc)) from exc


def decode_received_batch(raw: bytes) -> ReceivedBatch:
    """`decode_batch` for a receiver of many readings: the same verdicts, rows as dicts
    (`shared._received`)."""
    try:
        return ReceivedBatch.model_validate_json(raw)
    except ValidationError as exc:
        raise BatchInvalid(describe_validation_error(exc)) from exc


def describe_validation_error(exc: ValidationError) -> list[tuple[str, str]]:
    """Turn a pydantic error into (dotted.field.path, message) pairs for humans and 4xx bodies."""
    described = []
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in error["loc"]) or "(body)"
        described.append((path, validation_message(error)))
    return described


@dataclass(frozen=True, slots=True)
class SignedBody:
    """A batch ready to send: the exact body bytes and the headers that go with them."""

    body: bytes
    headers: dict[str, str]


def seal_batch(
    batch: Batch,
    private_key: PrivateKey,
    encoding: ContentEncoding = "zstd",
    *,
    readings: EncodedReadings | None = None,
) -> SignedBody:
    """Encode, compress and sign a batch; the signature covers the compressed body as sent.
    With `readings`, they are its readings (`encode_batch_rows`)."""
    raw = encode_batch(batch) if readings is None else encode_batch_rows(batch, readings)
    body = compress(raw, encoding)
    if len(body) > MAX_BODY_BYTES:
        raise BatchTooLarge(
            f"batch body is {len(body)} bytes, over the limit of {MAX_BODY_BYTES}; send fewer rows"
        )
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign_body(private_key, body),
        GATEWAY_HEADER: batch.gateway_id,
    }
    if encoding != "identity":
        headers["Content-Encoding"] = encoding
    return SignedBody(body=body, headers=headers)


def open_batch(
    body: bytes,
    *,
    content_encoding: str | None,
    signature: str | None,
    public_key: PublicKey,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_decompressed_bytes: int = MAX_DECOMPRESSED_BYTES,
) -> Batch:
    """Check size, verify the signature, decompress (bounded), then parse — in that order."""
    raw = unseal(
        body,
        content_encoding=content_encoding,
        signature=signature,
        public_key=public_key,
        max_body_bytes=max_body_bytes,
        max_decompressed_bytes=max_decompressed_bytes,
    )
    return decode_batch(raw)


def unseal(
    body: bytes,
    *,
    content_encoding: str | None,
    signature: str | None,
    public_key: PublicKey,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_decompressed_bytes: int = MAX_DECOMPRESSED_BYTES,
) -> bytes:
    """The body's JSON bytes once its size and signature hold: nothing unauthenticated is ever
    decompressed. The first half of `open_batch`, for a receiver that looks at the verified
    bytes (the cloud knows a batch it took before by their digest) before parsing them."""
    if len(body) > max_body_bytes:
        raise BatchTooLarge(f"body is {len(body)} bytes, over the limit of {max_body_bytes}")
    verify_body(public_key, body, signature)
    return decompress(body, content_encoding or "identity", max_decompressed_bytes)
