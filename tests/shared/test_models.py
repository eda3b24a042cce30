"""Contract models: round trips, and every kind of malformed input named by its field."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shared import (
    MAX_BATCH_READINGS,
    QUANTITIES,
    Ack,
    Batch,
    BatchInvalid,
    Event,
    Heartbeat,
    Quality,
    Reading,
    Sample,
    decode_batch,
    encode_batch,
)
from tests.shared.factories import T0, make_batch, make_event, make_readings


def batch_json(**changes: object) -> dict:
    """A valid batch as a JSON-ready dict, with top-level fields replaced by `changes`."""
    data = json.loads(encode_batch(make_batch(readings=3, events=1)))
    data.update(changes)
    return data


def decode_dict(data: dict) -> Batch:
    return decode_batch(json.dumps(data).encode())


def error_paths(exc: BatchInvalid) -> list[str]:
    return [path for path, _ in exc.errors]


# --- round trips ---------------------------------------------------------------------------


def test_sample_round_trip_and_unit_filled_from_quantity() -> None:
    sample = Sample(meter_id="m-1", quantity="1.8.0", ts=T0, value=12.5)
    assert sample.unit == "kWh"
    assert sample.quality is Quality.OK
    assert Sample.model_validate_json(sample.model_dump_json()) == sample


def test_reading_round_trip() -> None:
    reading = make_readings(1)[0]
    assert Reading.model_validate_json(reading.model_dump_json()) == reading


def test_event_round_trip() -> None:
    event = make_event(7)
    assert Event.model_validate_json(event.model_dump_json()) == event


def test_heartbeat_round_trip() -> None:
    heartbeat = make_batch().heartbeat
    assert heartbeat is not None
    assert Heartbeat.model_validate_json(heartbeat.model_dump_json()) == heartbeat


def test_ack_round_trip() -> None:
    ack = Ack(batch_id=uuid.uuid4(), acked_through_seq=42, readings_new=40, events_new=2)
    assert Ack.model_validate_json(ack.model_dump_json()) == ack


def test_batch_round_trip_through_canonical_bytes() -> None:
    batch = make_batch(readings=50, events=3)
    raw = encode_batch(batch)
    assert decode_batch(raw) == batch
    assert encode_batch(decode_batch(raw)) == raw  # canonical: re-encoding is byte-identical


def test_heartbeat_only_batch_is_valid() -> None:
    batch = make_batch(readings=0, events=0).model_copy(update={"first_seq": 9, "last_seq": 9})
    assert decode_batch(encode_batch(batch)).readings == []


@given(
    values=st.lists(
        st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=30
    ),
    quantity=st.sampled_from(sorted(QUANTITIES)),
    micros=st.integers(min_value=0, max_value=10**12),
)
def test_any_finite_reading_values_round_trip_exactly(
    values: list[float], quantity: str, micros: int
) -> None:
    ts = T0 + timedelta(microseconds=micros)
    readings = [
        Reading(seq=i + 1, meter_id="m", quantity=quantity, ts=ts, value=v)
        for i, v in enumerate(values)
    ]
    batch = Batch(
        gateway_id="gw",
        batch_id=uuid.uuid4(),
        first_seq=1,
        last_seq=len(values),
        sent_at=ts,
        readings=readings,
    )
    assert decode_batch(encode_batch(batch)) == batch


# --- malformed input names the field --------------------------------------------------------


def test_unknown_top_level_field_is_named() -> None:
    with pytest.raises(BatchInvalid) as caught:
        decode_dict(batch_json(admin=True))
    assert "admin" in error_paths(caught.value)


def test_unknown_field_in_a_reading_is_named() -> None:
    data = batch_json()
    data["readings"][1]["tariff"] = 0
    with pytest.raises(BatchInvalid) as caught:
        decode_dict(data)
    assert "readings.1.tariff" in error_paths(caught.value)


def test_wrong_type_is_named() -> None:
    data = batch_json()
    data["readings"][0]["value"] = "12.5"
    with pytest.raises(BatchInvalid) as caught:
        decode_dict(data)
    assert "readings.0.value" in error_paths(caught.value)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinities_are_rejected(token: str) -> None:
    data = batch_json()
    data["readings"][0]["value"] = float(token)  # json.dumps writes the bare token, as a lax
    raw = json.dumps(data)  # encoder on a gateway would
    assert f'"value": {token}' in raw
    with pytest.raises(BatchInvalid) as caught:
        decode_batch(raw.encode())
    assert "readings.0.value" in error_paths(caught.value)


def test_nan_in_event_details_is_rejected() -> None:
    with pytest.raises(ValidationError, match=r"details\.x: must be a finite number"):
        Event.model_validate({**make_event(1).model_dump(), "details": {"x": float("nan")}})


def test_naive_timestamp_is_rejected() -> None:
    data = batch_json()
    data["readings"][2]["ts"] = "2026-11-01T00:00:00"
    with pytest.raises(BatchInvalid) as caught:
        decode_dict(data)
    assert "readings.2.ts" in error_paths(caught.value)
    assert "timezone" in str(caught.value)


def test_non_utc_offset_is_rejected() -> None:
    ist = timezone(timedelta(hours=5, minutes=30))
    with pytest.raises(ValidationError, match="UTC"):
        Sample(meter_id="m", quantity="1.8.0", ts=datetime(2026, 1, 1, tzinfo=ist), value=1.0)


def test_unknown_quantity_is_rejected() -> None:
    data = batch_json()
    data["readings"][0]["quantity"] = "99.9.9"
    with pytest.raises(BatchInvalid) as caught:
        decode_dict(data)
    assert "readings.0.quantity" in error_paths(caught.value)


def test_unit_disagreeing_with_quantity_is_rejected() -> None:
    with pytest.raises(ValidationError, match="expected 'kWh'"):
        Sample(meter_id="m", quantity="1.8.0", ts=T0, value=1.0, unit="Wh")


def test_oversized_batch_is_rejected_naming_readings() -> None:
    rows = [r.model_dump(mode="json") for r in make_readings(MAX_BATCH_READINGS + 1)]
    data = batch_json(readings=rows, events=[], first_seq=1, last_seq=MAX_BATCH_READINGS + 1)
    with pytest.raises(BatchInvalid) as caught:
        decode_dict(data)
    assert "readings" in error_paths(caught.value)
    assert str(MAX_BATCH_READINGS) in str(caught.value)


def test_seq_range_must_match_the_rows_carried() -> None:
    with pytest.raises(BatchInvalid, match="first_seq/last_seq"):
        decode_dict(batch_json(last_seq=999))


def test_duplicate_seq_is_rejected() -> None:
    data = batch_json()
    data["readings"][1]["seq"] = data["readings"][0]["seq"]
    with pytest.raises(BatchInvalid, match="unique"):
        decode_dict(data)


def test_empty_batch_needs_a_heartbeat() -> None:
    with pytest.raises(BatchInvalid, match="heartbeat"):
        decode_dict(batch_json(readings=[], events=[], first_seq=4, last_seq=4, heartbeat=None))


def test_meter_id_is_bounded_and_plain() -> None:
    data = batch_json()
    data["readings"][0]["meter_id"] = "../../etc/passwd"
    with pytest.raises(BatchInvalid) as caught:
        decode_dict(data)
    assert "readings.0.meter_id" in error_paths(caught.value)


def test_wrong_contract_version_is_rejected() -> None:
    with pytest.raises(BatchInvalid) as caught:
        decode_dict(batch_json(contract_version=2))
    assert "contract_version" in error_paths(caught.value)


def test_malformed_json_is_a_batch_error() -> None:
    with pytest.raises(BatchInvalid, match="JSON"):
        decode_batch(b'{"gateway_id": "gw", ')


def test_models_are_immutable() -> None:
    reading = make_readings(1)[0]
    with pytest.raises(ValidationError):
        reading.value = 3.0  # type: ignore[misc]


def test_timestamps_come_back_in_utc() -> None:
    sample = Sample.model_validate_json(
        '{"meter_id":"m","quantity":"1.8.0","ts":"2026-01-01T00:00:00+00:00","value":1}'
    )
    assert sample.ts.tzinfo is UTC
