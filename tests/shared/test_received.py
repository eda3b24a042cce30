"""The cloud's receiving shape (`ReceivedBatch`) gives `Batch`'s verdicts on the same bytes."""

from __future__ import annotations

import json
from datetime import UTC

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import (
    MAX_BATCH_READINGS,
    Batch,
    BatchInvalid,
    Quality,
    Reading,
    ReadingRow,
    ReceivedBatch,
    decode_batch,
    decode_received_batch,
    encode_batch,
)
from tests.shared.factories import make_batch


def batch_json() -> dict:
    return json.loads(encode_batch(make_batch(readings=6, events=2)))


def verdicts(data: dict) -> tuple[list[str] | None, list[str] | None]:
    """The error paths each decoder names for the same bytes (None: it accepted them)."""
    raw = json.dumps(data).encode()
    found = []
    for decode in (decode_batch, decode_received_batch):
        try:
            decode(raw)
        except BatchInvalid as exc:
            found.append([path for path, _ in exc.errors])
        else:
            found.append(None)
    return found[0], found[1]


def assert_same_verdict(data: dict) -> None:
    model, received = verdicts(data)
    assert (model is None) == (received is None), (model, received)
    if model is not None:
        # the same fields, except that a unit the model refuses on the reading is named down
        # to `readings.N.unit`
        assert received is not None
        assert all(any(r.startswith(m) for r in received) for m in model), (model, received)


def test_the_shapes_have_the_same_fields_in_the_same_order() -> None:
    assert list(ReceivedBatch.model_fields) == list(Batch.model_fields)
    assert set(ReadingRow.__annotations__) == set(Reading.model_fields)


def test_rows_carry_what_the_models_carry() -> None:
    batch = make_batch(readings=50, events=3)
    received = decode_received_batch(encode_batch(batch))
    assert received.readings == [
        {**r.model_dump(), "quality": r.quality.value} for r in batch.readings
    ]
    assert received.events == batch.events
    assert received.heartbeat == batch.heartbeat
    assert (received.batch_id, received.first_seq, received.last_seq, received.sent_at) == (
        batch.batch_id,
        batch.first_seq,
        batch.last_seq,
        batch.sent_at,
    )
    assert all(row["ts"].utcoffset().total_seconds() == 0 for row in received.readings)
    assert received.sent_at.tzinfo is UTC


def test_unit_and_quality_left_out_are_filled() -> None:
    data = batch_json()
    del data["readings"][0]["unit"], data["readings"][0]["quality"]
    row = decode_received_batch(json.dumps(data).encode()).readings[0]
    assert (row["unit"], row["quality"]) == ("kWh", Quality.OK.value)
    assert type(row["quality"]) is str  # what COPY writes, not an enum's name


def test_a_unit_that_disagrees_is_named_on_its_reading() -> None:
    data = batch_json()
    data["readings"][3]["unit"] = "Wh"
    with pytest.raises(BatchInvalid, match=r"readings\.3\.unit: .*expected 'kWh'"):
        decode_received_batch(json.dumps(data).encode())
    assert_same_verdict(data)


CHANGES = [
    ("readings", 1, "tariff", 0),
    ("readings", 0, "value", "12.5"),
    ("readings", 0, "value", True),
    ("readings", 0, "value", 10**400),
    ("readings", 2, "ts", "2026-11-01T00:00:00"),
    ("readings", 2, "ts", "2026-11-01T05:30:00+05:30"),
    ("readings", 2, "ts", "2026-11-01T00:00:00-00:00"),
    ("readings", 2, "ts", "2026-11-01"),
    ("readings", 2, "ts", 1_700_000_000),
    ("readings", 0, "quantity", "99.9.9"),
    ("readings", 0, "meter_id", "../../etc/passwd"),
    ("readings", 0, "meter_id", "m" * 65),
    ("readings", 0, "seq", 0),
    ("readings", 0, "seq", "1"),
    ("readings", 0, "quality", "OK"),
    ("readings", 0, "quality", "estimated"),
    ("readings", 0, "unit", None),
    ("readings", 0, "unit", ""),
    ("readings", 1, "seq", 1),  # a duplicate seq
    ("readings", 5, "seq", 10_000),  # outside first_seq..last_seq
]


@pytest.mark.parametrize(("where", "index", "field", "value"), CHANGES)
def test_a_changed_reading_gets_the_same_verdict(
    where: str, index: int, field: str, value: object
) -> None:
    data = batch_json()
    data[where][index][field] = value
    assert_same_verdict(data)


@pytest.mark.parametrize(
    "changes",
    [
        {"admin": True},
        {"contract_version": 2},
        {"last_seq": 999},
        {"first_seq": 99, "last_seq": 1},
        {"readings": [], "events": [], "first_seq": 4, "last_seq": 4, "heartbeat": None},
        {"readings": [], "events": [], "first_seq": 4, "last_seq": 4},
        {"readings": "many"},
        {"sent_at": "yesterday"},
        {"batch_id": "not-a-uuid"},
    ],
)
def test_a_changed_envelope_gets_the_same_verdict(changes: dict) -> None:
    data = batch_json()
    data.update(changes)
    assert_same_verdict(data)


def test_a_seq_problem_reads_the_same() -> None:
    data = batch_json()
    data["last_seq"] = 999
    raw = json.dumps(data).encode()
    with pytest.raises(BatchInvalid) as model:
        decode_batch(raw)
    with pytest.raises(BatchInvalid) as received:
        decode_received_batch(raw)
    assert str(model.value) == str(received.value)


def test_too_many_readings_are_refused_naming_readings() -> None:
    row = batch_json()["readings"][0]
    rows = [{**row, "seq": i + 1} for i in range(MAX_BATCH_READINGS + 1)]
    data = {**batch_json(), "readings": rows, "events": [], "first_seq": 1}
    data["last_seq"] = len(rows)
    with pytest.raises(BatchInvalid) as caught:
        decode_received_batch(json.dumps(data).encode())
    assert "readings" in [path for path, _ in caught.value.errors]
    assert_same_verdict(data)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(
        [
            "2026-11-01T00:00:00Z",
            "2026-11-01T00:00:00.123456+00:00",
            "2026-11-01T00:00:00+01:00",
            "2026-11-01T00:00:00",
            "2026-11-01",
            "1.8.0",
            "32.7.0",
            "kWh",
            "V",
            "ok",
            "suspect",
            "m-2",
        ]
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=4,
)


@settings(max_examples=300, deadline=None)
@given(
    index=st.integers(min_value=0, max_value=5),
    field=st.sampled_from(["meter_id", "quantity", "ts", "value", "unit", "quality", "seq", "x"]),
    value=json_values,
    drop=st.booleans(),
)
def test_any_change_to_a_reading_gets_the_same_verdict(
    index: int, field: str, value: object, drop: bool
) -> None:
    data = batch_json()
    if drop:
        data["readings"][index].pop(field, None)
    else:
        data["readings"][index][field] = value
    assert_same_verdict(data)
