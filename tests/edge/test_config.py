"""Configuration: every problem named with its file, line and key; `gridgate edge check-config`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import ConfigError, load_config

GOOD = """
[gateway]
id = "gw-1"

[cloud]
url = "https://cloud.example.in"

[[buses]]
name = "rs485-1"
kind = "modbus-rtu"
port = "/dev/ttyUSB0"

[[buses.meters]]
id = "m-1"
unit = 1
profile = "sdm630"

[[buses.meters]]
id = "m-2"
unit = 2
profile = "sdm120"
phases = 1
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return caught.value.problems


def test_a_good_file_loads_with_paths_beside_it(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    assert [m.id for m in config.buses[0].meters] == ["m-1", "m-2"]
    assert config.store_path == tmp_path / "data" / "edge.sqlite"
    assert config.key_path == tmp_path / "data" / "gateway.key"


@pytest.mark.parametrize(
    ("change", "line", "key", "words"),
    [
        (("unit = 2", "unit = 300"), 20, "buses.0.meters.1.unit", "less than or equal to 247"),
        (('profile = "sdm120"', 'profile = "sdm999"'), 21, "buses.0.meters.1.profile", "sdm999"),
        (("unit = 2", "unit = 1"), 18, "buses.0.meters.1", "share address 1"),
        (('id = "m-2"', 'id = "m-1"'), None, "(top level)", "m-1"),
        (('kind = "modbus-rtu"', 'kind = "rs232"'), 10, "buses.0.kind", "modbus-rtu"),
        (("phases = 1", "phases = 2"), 22, "buses.0.meters.1.phases", "1 or 3"),
        (('url = "https://cloud.example.in"', 'url = "ftp://x"'), 6, "cloud.url", "pattern"),
        (("cloud.example.in", "cloud..example.in"), 6, "cloud.url", "is not a host name"),
        (("cloud.example.in", "cloud.example.in:99999"), 6, "cloud.url", "0 to 65535"),
        (("[[buses.meters]]", "[[buses.meter]]"), 18, "buses.0.meter", "not a setting known here"),
        (("unit = 2", 'unit = "two"'), 20, "buses.0.meters.1.unit", "not a whole number"),
    ],
)
def test_every_problem_names_file_line_and_key(
    tmp_path: Path, change: tuple[str, str], line: int | None, key: str, words: str
) -> None:
    old, new = change
    text = GOOD[::-1].replace(old[::-1], new[::-1], 1)[::-1]  # the last occurrence
    found = problems(tmp_path, text)
    assert len(found) >= 1
    where = f"{tmp_path / 'edge.toml'}:{line}: " if line else f"{tmp_path / 'edge.toml'}: "
    assert any(p.startswith(where + key) and words in p for p in found), found


def test_broken_toml_and_missing_files(tmp_path: Path) -> None:
    [syntax] = problems(tmp_path, GOOD.replace('id = "gw-1"', 'id = "gw-1'))
    assert "not valid TOML" in syntax
    assert "line 3" in syntax
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")


def test_check_config_command(tmp_path: Path) -> None:
    good = write(tmp_path, GOOD)
    ok = subprocess.run(
        [sys.executable, "-m", "gridgate", "edge", "check-config", str(good)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "1 bus, 2 meters" in ok.stdout
    good.write_text(GOOD.replace("unit = 2", "unit = 0"))
    bad = subprocess.run(
        [sys.executable, "-m", "gridgate", "edge", "check-config", str(good)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert f"{good}:20: buses.0.meters.1.unit" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_the_shared_schema_knows_exactly_the_profiles_the_gateway_has() -> None:
    # the cloud validates desired settings with `shared` alone: its lists must be the gateway's
    from importlib import resources

    from protocols.modbus.profile import builtin_profiles
    from shared import MODBUS_MODELS, MQTT_PROFILES

    assert set(MODBUS_MODELS) == set(builtin_profiles())
    mqtt = resources.files("protocols.mqtt").joinpath("profiles").iterdir()
    assert set(MQTT_PROFILES) == {p.name.removesuffix(".toml") for p in mqtt}


DLMS = """
[[buses]]
name = "dlms"
kind = "dlms-hdlc"
port = "/dev/ttyUSB1"

[[buses.meters]]
id = "d-1"
hdlc_address = 17
password_ref = "lls-d1"
"""


def test_a_password_named_by_reference_comes_from_the_gateways_secrets(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD + '\n[secrets]\nlls-d1 = "12345678"\n' + DLMS))
    meter = config.buses[1].meters[0]
    assert config.password(meter) == "12345678"
    assert "12345678" not in repr(config)  # secrets never reach a log line
    assert "12345678" not in config.settings().model_dump_json()
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD + DLMS))
    [problem] = caught.value.problems
    assert ":32: buses.1.meters.0.password_ref: no secret 'lls-d1'" in problem


def test_pinned_sections_stay_as_the_file_says(tmp_path: Path) -> None:
    from shared import GatewaySettings

    config = load_config(write(tmp_path, GOOD + '\n[remote]\npin = ["buses"]\n'))
    cloud = GatewaySettings.model_validate(
        {"buses": [], "checks": {"min_samples": 3}, "sync": {"sync_interval_s": 60}}
    )
    merged = config.with_settings(cloud, config.remote.pin)
    assert [m.id for b in merged.buses for m in b.meters] == ["m-1", "m-2"]  # pinned
    assert merged.checks.min_samples == 3
    assert merged.cloud.sync_interval_s == 60
    assert merged.cloud.url == "https://cloud.example.in"  # the file's own, always
    assert merged.source == config.source
