"""The public surface of `shared` is deliberate: adding or removing a name is a contract change."""

import ast
from pathlib import Path

import shared
from shared import EVENT_KINDS, QUANTITIES, QuantityKind

EXPECTED = {
    "CONTENT_ENCODINGS",
    "CONTRACT_VERSION",
    "EVENT_KINDS",
    "EVENT_KIND_CODES",
    "GATEWAY_HEADER",
    "IDENTIFIER_PATTERN",
    "MAX_BATCH_EVENTS",
    "MAX_BATCH_READINGS",
    "MAX_BODY_BYTES",
    "MAX_DECOMPRESSED_BYTES",
    "QUANTITIES",
    "QUANTITY_CODES",
    "SIGNATURE_HEADER",
    "CLOUD_SIGNATURE_HEADER",  # the control channel: commands from the cloud
    "MAX_LOG_LINES",
    "MAX_BACKFILL",
    "DEFAULT_MAX_DRIFT_S",
    "backfill_range_problem",
    "Command",
    "CommandArgs",
    "CommandKind",
    "CommandResult",
    "ControlReply",
    "ControlRequest",
    "Outcome",
    "Ack",
    "Batch",
    "BusHealth",
    "BatchInvalid",
    "BatchTooLarge",
    "ContentEncoding",
    "ContractError",
    "EncodedReadings",
    "EncodingError",
    "Event",
    "EventStatus",
    "GridgateError",
    "Heartbeat",
    "MeterHealth",
    "KeyInvalid",
    "PrivateKey",
    "PublicKey",
    "Quality",
    "Quantity",
    "QuantityKind",
    "Reading",
    "ReadingRow",  # a batch as the cloud receives it (shared._received)
    "ReceivedBatch",
    "Refusal",
    "Sample",
    "Severity",
    "SignatureInvalid",
    "SignedBody",
    "compress",
    "configure_logging",
    "decode_batch",
    "decode_received_batch",
    "decompress",
    "describe_validation_error",
    "validation_message",  # settings people write: pydantic's and TOML's words, and the line
    "line_of",
    "toml_problem",
    "encode_batch",
    "encode_batch_rows",
    "encode_readings",
    "generate_private_key",
    "get_quantity",
    "load_public_key",
    "open_batch",
    "public_key_text",
    "read_private_key",
    "seal_batch",
    "seq_problem",
    "sign_body",
    "unseal",
    "verify_body",
    "write_private_key",
    "BUS_KINDS",
    "MAX_BUSES",
    "MODBUS_MODELS",
    "MQTT_PROFILES",
    "SECTIONS",
    "BusSettings",
    "ChecksSettings",
    "ConfigReport",
    "ConfigState",
    "DesiredConfig",
    "FoundMeter",
    "GatewaySettings",
    "MeterSettings",
    "ScanReport",
    "StoreSettings",
    "SyncSettings",
    "check_unique",
    "literal_passwords",
    "VERSION_PATTERN",
    "UpdateReport",
    "WheelRequest",
}


def test_public_names_are_pinned() -> None:
    assert set(shared.__all__) == EXPECTED
    for name in shared.__all__:
        assert hasattr(shared, name), name


def test_quantity_table_follows_obis_conventions() -> None:
    for code, quantity in QUANTITIES.items():
        assert code == quantity.code
        is_energy_register = code.split(".")[1] == "8"
        assert (quantity.kind is QuantityKind.CUMULATIVE) == is_energy_register, code
    assert QUANTITIES["1.8.0"].unit == "kWh"
    assert QUANTITIES["9.8.0"].unit == "kVAh"
    assert QUANTITIES["14.7.0"].unit == "Hz"


def test_every_event_kind_has_a_description() -> None:
    assert all(description for _, description in EVENT_KINDS.values())


def test_the_lazy_names_agree_with_what_type_checkers_read() -> None:
    """`shared` imports a name's module when the name is first asked for (its `__getattr__`);
    the imports type checkers read are the same names from the same modules."""
    tree = ast.parse(Path(shared.__file__).read_text())
    checked = {
        alias.name: node.module
        for block in tree.body
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert checked == shared._MODULE_OF
    assert set(checked) == set(shared.__all__)
