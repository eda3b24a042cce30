"""The systemd units, tmpfiles and udev files, and the idempotent gateway install script."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SYSTEMD = ROOT / "systemd"


def unit(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False)
    parser.optionxform = str  # keys are case-sensitive in systemd
    parser.read(SYSTEMD / name)
    return parser


def test_the_edge_unit_is_watched_and_hardened() -> None:
    service = unit("gridgate-edge.service")["Service"]
    assert service["Type"] == "notify"
    assert service["WatchdogSec"]
    assert service["Restart"] == "always"
    assert service["User"] == "gridgate"
    assert "dialout" in service["SupplementaryGroups"]
    assert service["StateDirectory"] == "gridgate"
    assert service["LogsDirectory"] == "gridgate"
    for setting, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
        "CapabilityBoundingSet": "",
    }.items():
        assert service[setting] == value, setting
    assert "edge run --config" in service["ExecStart"]
    assert service["ExecStart"].startswith("/opt/gridgate/current/bin/gridgate")
    assert service["ExecStartPre"].startswith("-/usr/local/lib/gridgate/gridgate-edge-guard")
    cloud = unit("gridgate-cloud.service")["Service"]
    assert "cloud serve" in cloud["ExecStart"]
    assert cloud["NoNewPrivileges"] == "yes"


# a container or a non-systemd machine has no systemd-analyze (this machine and CI have it)
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    for name in ("gridgate-edge.service", "gridgate-cloud.service"):
        text = (
            (SYSTEMD / name)
            .read_text()
            .replace("/opt/gridgate/venv/bin/gridgate", "/bin/true")
            .replace("/opt/gridgate/current/bin/gridgate", "/bin/true")
            .replace("/usr/local/lib/gridgate/gridgate-edge-guard", "/bin/true")
        )
        (tmp_path / name).write_text(text)
        result = subprocess.run(
            ["systemd-analyze", "verify", str(tmp_path / name)],
            capture_output=True,
            text=True,
            check=False,
        )
        problems = [
            line
            for line in result.stderr.splitlines()
            if "gridgate" in line and "user" not in line.lower()
        ]
        assert not problems, result.stderr


def test_the_install_script_is_idempotent(tmp_path: Path) -> None:
    stage = tmp_path / "root"
    script = SYSTEMD / "install-edge.sh"
    first = subprocess.run(
        [str(script), "--root", str(stage)], capture_output=True, text=True, check=True
    )
    assert "installed /etc/systemd/system/gridgate-edge.service" in first.stdout
    files = {p.relative_to(stage): p.read_bytes() for p in stage.rglob("*") if p.is_file()}
    assert Path("etc/gridgate/edge.toml") in files
    assert Path("etc/udev/rules.d/99-gridgate-rs485.rules") in files
    assert Path("usr/local/lib/gridgate/gridgate-edge-guard") in files
    second = subprocess.run(
        [str(script), "--root", str(stage)], capture_output=True, text=True, check=True
    )
    assert second.stdout.strip() == "nothing to change"
    assert {p.relative_to(stage): p.read_bytes() for p in stage.rglob("*") if p.is_file()} == files
    # an edited config is the technician's: never overwritten
    (stage / "etc/gridgate/edge.toml").write_text("# mine\n")
    subprocess.run([str(script), "--root", str(stage)], check=True, capture_output=True)
    assert (stage / "etc/gridgate/edge.toml").read_text() == "# mine\n"


def test_the_example_config_is_valid() -> None:
    from edge.config import load_config

    config = load_config(SYSTEMD / "edge.example.toml")
    assert config.buses[0].meters[0].profile == "sdm630"
