"""Batch bytes: compression both ways, bounded decompression, signatures, and the receive order."""

from __future__ import annotations

import contextlib
import gzip
import json
from datetime import UTC, datetime

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import (
    GATEWAY_HEADER,
    QUANTITIES,
    SIGNATURE_HEADER,
    BatchInvalid,
    BatchTooLarge,
    EncodingError,
    Quality,
    Reading,
    SignatureInvalid,
    compress,
    decode_batch,
    decompress,
    encode_batch,
    encode_batch_rows,
    encode_readings,
    generate_private_key,
    open_batch,
    seal_batch,
)
from tests.shared.factories import make_batch


@pytest.mark.parametrize("encoding", ["zstd", "gzip", "identity"])
def test_seal_then_open_round_trips(encoding: str) -> None:
    key = generate_private_key()
    batch = make_batch(readings=500, events=2)
    sealed = seal_batch(batch, key, encoding)  # type: ignore[arg-type]
    assert sealed.headers[GATEWAY_HEADER] == "gw-0001"
    opened = open_batch(
        sealed.body,
        content_encoding=sealed.headers.get("Content-Encoding"),
        signature=sealed.headers[SIGNATURE_HEADER],
        public_key=key.public_key(),
    )
    assert opened == batch


def test_compression_actually_compresses_readings() -> None:
    raw = json.dumps([r.model_dump(mode="json") for r in make_batch(2000).readings]).encode()
    assert len(compress(raw, "zstd")) < len(raw) / 5
    assert len(compress(raw, "gzip")) < len(raw) / 5


def test_sealing_is_deterministic_for_the_same_batch() -> None:
    key = generate_private_key()
    batch = make_batch()
    assert seal_batch(batch, key).body == seal_batch(batch, key).body


def test_signature_from_another_key_fails() -> None:
    batch = make_batch()
    sealed = seal_batch(batch, generate_private_key())
    with pytest.raises(SignatureInvalid, match="does not match"):
        open_batch(
            sealed.body,
            content_encoding="zstd",
            signature=sealed.headers[SIGNATURE_HEADER],
            public_key=generate_private_key().public_key(),
        )


@settings(max_examples=50)
@given(position=st.integers(min_value=0), flip=st.integers(min_value=1, max_value=255))
def test_any_one_byte_change_breaks_the_signature(position: int, flip: int) -> None:
    key = _KEY
    body = bytearray(_SEALED.body)
    body[position % len(body)] ^= flip
    with pytest.raises(SignatureInvalid):
        open_batch(
            bytes(body),
            content_encoding="zstd",
            signature=_SEALED.headers[SIGNATURE_HEADER],
            public_key=key.public_key(),
        )


_KEY = generate_private_key()
_SEALED = seal_batch(make_batch(readings=20), _KEY)


@pytest.mark.parametrize("signature", [None, "", "not base64!!", "AAAA"])
def test_missing_or_malformed_signature(signature: str | None) -> None:
    with pytest.raises(SignatureInvalid):
        open_batch(
            _SEALED.body, content_encoding="zstd", signature=signature, public_key=_KEY.public_key()
        )


def test_oversized_body_is_refused_before_the_signature_is_checked() -> None:
    with pytest.raises(BatchTooLarge, match="limit"):
        open_batch(
            b"x" * 101,
            content_encoding="identity",
            signature=None,
            public_key=_KEY.public_key(),
            max_body_bytes=100,
        )


@pytest.mark.parametrize("encoding", ["gzip", "zstd"])
def test_decompression_bomb_stops_at_the_limit(encoding: str) -> None:
    bomb = compress(b"\0" * (64 * 1024 * 1024), encoding)  # type: ignore[arg-type]
    assert len(bomb) < 200_000
    with pytest.raises(BatchTooLarge, match="decompressed"):
        decompress(bomb, encoding, max_bytes=1024 * 1024)


def test_zstd_bomb_without_content_size_stops_at_the_limit() -> None:
    compressor = zstandard.ZstdCompressor(write_content_size=False)
    bomb = compressor.compress(b"\0" * (32 * 1024 * 1024))
    with pytest.raises(BatchTooLarge):
        decompress(bomb, "zstd", max_bytes=1024 * 1024)


def test_signed_bomb_is_refused_by_open_batch() -> None:
    key = generate_private_key()
    from shared import sign_body

    bomb = gzip.compress(b"[" * (20 * 1024 * 1024))
    with pytest.raises(BatchTooLarge):
        open_batch(
            bomb,
            content_encoding="gzip",
            signature=sign_body(key, bomb),
            public_key=key.public_key(),
            max_decompressed_bytes=1024 * 1024,
        )


@pytest.mark.parametrize(
    ("encoding", "body"),
    [("gzip", b"definitely not gzip"), ("zstd", b"definitely not zstd"), ("br", b"{}")],
)
def test_undecodable_or_unknown_encoding(encoding: str, body: bytes) -> None:
    with pytest.raises(EncodingError):
        decompress(body, encoding)


def test_truncated_gzip_is_an_encoding_error() -> None:
    body = gzip.compress(b'{"a": 1}' * 1000)
    with pytest.raises(EncodingError, match="truncated"):
        decompress(body[: len(body) // 2], "gzip")


def test_signed_but_invalid_batch_names_the_field() -> None:
    key = generate_private_key()
    from shared import sign_body

    body = gzip.compress(b'{"gateway_id": 5}')
    with pytest.raises(BatchInvalid) as caught:
        open_batch(
            body,
            content_encoding="gzip",
            signature=sign_body(key, body),
            public_key=key.public_key(),
        )
    assert "gateway_id" in [path for path, _ in caught.value.errors]


@settings(max_examples=200)
@given(st.binary(max_size=2048), st.sampled_from(["gzip", "zstd", "identity"]))
def test_random_bytes_never_escape_as_untyped_errors(body: bytes, encoding: str) -> None:
    from shared import ContractError, sign_body

    key = _KEY
    with contextlib.suppress(ContractError):
        open_batch(
            body,
            content_encoding=encoding,
            signature=sign_body(key, body),
            public_key=key.public_key(),
        )


_ROW_QUANTITIES = sorted(QUANTITIES)
_ROWS = st.lists(
    st.tuples(
        st.sampled_from(["m-1", "meter:7", "A.b_c-9"]),
        st.sampled_from(_ROW_QUANTITIES),
        # 2000-01-01 .. 2100-01-01, any microsecond
        st.integers(946_684_800_000_000, 4_102_444_800_000_000),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from([q.value for q in Quality]),
    ),
    max_size=40,
)


@given(_ROWS)
@settings(max_examples=200, deadline=None)
def test_readings_written_from_rows_read_as_the_models_would(rows: list) -> None:
    """A batch whose readings are written straight from a gateway's rows parses to the batch
    built of `Reading` models from the same rows: any float, any microsecond."""
    template = make_batch(readings=0)
    readings = [
        Reading(
            seq=template.last_seq + 1 + i,
            meter_id=meter,
            quantity=quantity,
            ts=datetime.fromtimestamp(ts_us // 1_000_000, UTC).replace(
                microsecond=ts_us % 1_000_000
            ),
            value=value,
            quality=quality,
        )
        for i, (meter, quantity, ts_us, value, quality) in enumerate(rows)
    ]
    last = template.last_seq + len(rows)
    whole = template.model_copy(update={"readings": readings, "last_seq": last})
    envelope = template.model_copy(update={"last_seq": last})
    tuples = [
        (r.seq, r.meter_id, r.quantity, ts_us, r.value, r.quality.value)
        for r, (_, _, ts_us, _, _) in zip(readings, rows, strict=True)
    ]
    written = encode_readings(iter(tuples))
    assert list(written.seqs) == [r.seq for r in readings]
    assert decode_batch(encode_batch_rows(envelope, written)) == decode_batch(encode_batch(whole))


def test_readings_past_one_joined_piece_keep_every_row_once() -> None:
    """`encode_readings` joins its texts every 256 rows: a batch of several pieces and a
    remainder reads back whole, in order."""
    count = 600
    tuples = [(i + 1, "m-1", "1.8.0", 1_000_000 * i, float(i), "ok") for i in range(count)]
    envelope = make_batch(readings=0, events=0).model_copy(
        update={"first_seq": 1, "last_seq": count}
    )
    batch = decode_batch(encode_batch_rows(envelope, encode_readings(tuples)))
    assert [r.seq for r in batch.readings] == list(range(1, count + 1))
    assert [r.value for r in batch.readings] == [float(i) for i in range(count)]


def test_rows_the_contract_refuses_are_named() -> None:
    with pytest.raises(ValueError, match="reading 9: nan"):
        encode_readings([(9, "m-1", "1.8.0", 0, float("nan"), "ok")])
    with pytest.raises(ValueError, match=r"reading 9: '99\.9\.9' is not a quantity"):
        encode_readings([(9, "m-1", "99.9.9", 0, 1.0, "ok")])
    with pytest.raises(ValueError, match=r"reading 9: its seq is not after the one before \(9\)"):
        encode_readings([(9, "m-1", "1.8.0", 0, 1.0, "ok"), (9, "m-1", "1.8.0", 1, 1.0, "ok")])
