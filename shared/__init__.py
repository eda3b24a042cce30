"""The edge<->cloud contract: wire models, quantity codes, batch bytes and signatures.

This package imports nothing else of GridGate's; both the edge daemon and the cloud service speak
only through it.

A name is imported from its module when first asked for (PEP 562): the gateway's daemon uses the
quantities and a few models, and need not load the batch codec, the signatures (cryptography)
or the cloud's parsing of batches to read its meters (each costs megabytes on a Raspberry Pi).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._codec import (
        CONTENT_ENCODINGS,
        GATEWAY_HEADER,
        SIGNATURE_HEADER,
        ContentEncoding,
        SignedBody,
        compress,
        decode_batch,
        decode_received_batch,
        decompress,
        describe_validation_error,
        encode_batch,
        open_batch,
        open_received_batch,
        seal_batch,
    )
    from ._control import (
        CLOUD_SIGNATURE_HEADER,
        DEFAULT_MAX_DRIFT_S,
        MAX_BACKFILL,
        MAX_LOG_LINES,
        Command,
        CommandArgs,
        CommandKind,
        CommandResult,
        ControlReply,
        ControlRequest,
        Outcome,
        backfill_range_problem,
    )
    from ._events import EVENT_KIND_CODES, EVENT_KINDS, EventStatus, Severity
    from ._exceptions import (
        BatchInvalid,
        BatchTooLarge,
        ContractError,
        EncodingError,
        GridgateError,
        KeyInvalid,
        SignatureInvalid,
    )
    from ._gateway_config import (
        BUS_KINDS,
        MAX_BUSES,
        MODBUS_MODELS,
        MQTT_PROFILES,
        SECTIONS,
        BusSettings,
        ChecksSettings,
        ConfigReport,
        ConfigState,
        DesiredConfig,
        FoundMeter,
        GatewaySettings,
        MeterSettings,
        ScanReport,
        StoreSettings,
        SyncSettings,
        check_unique,
        literal_passwords,
    )
    from ._logging import configure_logging
    from ._models import (
        CONTRACT_VERSION,
        IDENTIFIER_PATTERN,
        MAX_BATCH_EVENTS,
        MAX_BATCH_READINGS,
        MAX_BODY_BYTES,
        MAX_DECOMPRESSED_BYTES,
        Ack,
        Batch,
        BusHealth,
        Event,
        Heartbeat,
        MeterHealth,
        Quality,
        Reading,
        Refusal,
        Sample,
    )
    from ._quantities import QUANTITIES, QUANTITY_CODES, Quantity, QuantityKind, get_quantity
    from ._received import ReadingRow, ReceivedBatch
    from ._signing import (
        generate_private_key,
        load_public_key,
        public_key_text,
        read_private_key,
        sign_body,
        verify_body,
        write_private_key,
    )
    from ._software import VERSION_PATTERN, UpdateReport, WheelRequest

__all__ = [
    "BUS_KINDS",
    "CLOUD_SIGNATURE_HEADER",
    "CONTENT_ENCODINGS",
    "CONTRACT_VERSION",
    "DEFAULT_MAX_DRIFT_S",
    "EVENT_KINDS",
    "EVENT_KIND_CODES",
    "GATEWAY_HEADER",
    "IDENTIFIER_PATTERN",
    "MAX_BACKFILL",
    "MAX_BATCH_EVENTS",
    "MAX_BATCH_READINGS",
    "MAX_BODY_BYTES",
    "MAX_BUSES",
    "MAX_DECOMPRESSED_BYTES",
    "MAX_LOG_LINES",
    "MODBUS_MODELS",
    "MQTT_PROFILES",
    "QUANTITIES",
    "QUANTITY_CODES",
    "SECTIONS",
    "SIGNATURE_HEADER",
    "VERSION_PATTERN",
    "Ack",
    "Batch",
    "BatchInvalid",
    "BatchTooLarge",
    "BusHealth",
    "BusSettings",
    "ChecksSettings",
    "Command",
    "CommandArgs",
    "CommandKind",
    "CommandResult",
    "ConfigReport",
    "ConfigState",
    "ContentEncoding",
    "ContractError",
    "ControlReply",
    "ControlRequest",
    "DesiredConfig",
    "EncodingError",
    "Event",
    "EventStatus",
    "FoundMeter",
    "GatewaySettings",
    "GridgateError",
    "Heartbeat",
    "KeyInvalid",
    "MeterHealth",
    "MeterSettings",
    "Outcome",
    "Quality",
    "Quantity",
    "QuantityKind",
    "Reading",
    "ReadingRow",
    "ReceivedBatch",
    "Refusal",
    "Sample",
    "ScanReport",
    "Severity",
    "SignatureInvalid",
    "SignedBody",
    "StoreSettings",
    "SyncSettings",
    "UpdateReport",
    "WheelRequest",
    "backfill_range_problem",
    "check_unique",
    "compress",
    "configure_logging",
    "decode_batch",
    "decode_received_batch",
    "decompress",
    "describe_validation_error",
    "encode_batch",
    "generate_private_key",
    "get_quantity",
    "literal_passwords",
    "load_public_key",
    "open_batch",
    "open_received_batch",
    "public_key_text",
    "read_private_key",
    "seal_batch",
    "sign_body",
    "verify_body",
    "write_private_key",
]


# module -> the names it gives this package
_LOCATIONS = {
    "_codec": (
        "CONTENT_ENCODINGS",
        "GATEWAY_HEADER",
        "SIGNATURE_HEADER",
        "ContentEncoding",
        "SignedBody",
        "compress",
        "decode_batch",
        "decode_received_batch",
        "decompress",
        "describe_validation_error",
        "encode_batch",
        "open_batch",
        "open_received_batch",
        "seal_batch",
    ),
    "_control": (
        "CLOUD_SIGNATURE_HEADER",
        "DEFAULT_MAX_DRIFT_S",
        "MAX_BACKFILL",
        "MAX_LOG_LINES",
        "Command",
        "CommandArgs",
        "CommandKind",
        "CommandResult",
        "ControlReply",
        "ControlRequest",
        "Outcome",
        "backfill_range_problem",
    ),
    "_events": (
        "EVENT_KIND_CODES",
        "EVENT_KINDS",
        "EventStatus",
        "Severity",
    ),
    "_exceptions": (
        "BatchInvalid",
        "BatchTooLarge",
        "ContractError",
        "EncodingError",
        "GridgateError",
        "KeyInvalid",
        "SignatureInvalid",
    ),
    "_gateway_config": (
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
    ),
    "_logging": ("configure_logging",),
    "_models": (
        "CONTRACT_VERSION",
        "IDENTIFIER_PATTERN",
        "MAX_BATCH_EVENTS",
        "MAX_BATCH_READINGS",
        "MAX_BODY_BYTES",
        "MAX_DECOMPRESSED_BYTES",
        "Ack",
        "Batch",
        "BusHealth",
        "Event",
        "Heartbeat",
        "MeterHealth",
        "Quality",
        "Reading",
        "Refusal",
        "Sample",
    ),
    "_quantities": (
        "QUANTITIES",
        "QUANTITY_CODES",
        "Quantity",
        "QuantityKind",
        "get_quantity",
    ),
    "_received": (
        "ReadingRow",
        "ReceivedBatch",
    ),
    "_signing": (
        "generate_private_key",
        "load_public_key",
        "public_key_text",
        "read_private_key",
        "sign_body",
        "verify_body",
        "write_private_key",
    ),
    "_software": (
        "VERSION_PATTERN",
        "UpdateReport",
        "WheelRequest",
    ),
}
_MODULE_OF = {name: module for module, names in _LOCATIONS.items() for name in names}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
