"""The console shows a gateway's settings as the TOML of edge.toml; read back, it is the same
settings (so an edit that changes nothing changes nothing)."""

from __future__ import annotations

import tomllib

from cloud.dashboard.config_pages import as_toml
from shared import GatewaySettings

SETTINGS = {
    "buses": [
        {
            "name": "rs485-1",
            "kind": "modbus-rtu",
            "port": "/dev/rs485-1",
            "baud": 19200,
            "parity": "E",
            "meters": [
                {"id": "m-1", "unit": 1, "profile": "sdm630", "fast_s": 5},
                {"id": "m-2", "unit": 2, "profile": "sdm120", "phases": 1},
            ],
        },
        {"name": "tcp", "kind": "modbus-tcp", "host": "10.0.0.7", "tcp_port": 502},
        {
            "name": "dlms",
            "kind": "dlms-hdlc",
            "port": "/dev/rs485-2",
            "meters": [{"id": "d-1", "hdlc_address": 17, "password_ref": "lls-d1"}],
        },
    ],
    "checks": {"voltage_band": 0.05},
    "store": {"disk_budget_mb": 256},
    "sync": {"sync_interval_s": 30},
}


def test_settings_as_toml_read_back_are_the_same_settings() -> None:
    text = as_toml(SETTINGS)
    assert text.startswith('[[buses]]\nname = "rs485-1"\nkind = "modbus-rtu"\n')
    assert text.count("[[buses.meters]]") == 3  # as a technician writes them, not inline
    assert "fast_s = 10" not in text  # defaults left out
    assert GatewaySettings.model_validate(tomllib.loads(text)) == GatewaySettings.model_validate(
        SETTINGS
    )


def test_no_settings_no_text() -> None:
    assert as_toml(None) == ""
    assert tomllib.loads(as_toml(GatewaySettings().model_dump(mode="json"))) == {}
