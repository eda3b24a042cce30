"""Enrolling a gateway, reporting what a scan found, and the doctor's checks of a gateway's
set-up.

Enrollment generates the Ed25519 key pair on the gateway (the private key never leaves it, mode
0600), registers the public key with a one-time token, and writes the cloud's address into the
configuration. The key is written only once the cloud has accepted it, so a failed enrollment
leaves the old key (and identity) as they were.
"""

from __future__ import annotations

import grp
import os
import re
import shutil
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from shared import (
    GATEWAY_HEADER,
    SIGNATURE_HEADER,
    BusSettings,
    FoundMeter,
    KeyInvalid,
    ScanReport,
    generate_private_key,
    load_public_key,
    public_key_text,
    read_private_key,
    sign_body,
    write_private_key,
)

from .clock import GatewayClock
from .config import EdgeConfig


class EnrollmentFailed(Exception):
    """The cloud refused or could not be reached; the message says which and what to do."""


def enroll(config: EdgeConfig, cloud_url: str, token: str, timeout_s: float = 10.0) -> str:
    """Register a fresh key for this gateway; returns the board it joined."""
    key = generate_private_key()
    url = cloud_url.rstrip("/") + "/api/v1/gateways/enroll"
    try:
        response = httpx.post(
            url,
            json={
                "token": token,
                "gateway_id": config.gateway.id,
                "public_key": public_key_text(key),
            },
            timeout=timeout_s,
        )
    except httpx.HTTPError as exc:
        raise EnrollmentFailed(
            f"cannot reach the cloud at {cloud_url}: {type(exc).__name__} {exc}."
            " Check the address and this gateway's network (gridgate edge doctor)"
        ) from exc
    if response.status_code != 201:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text[:200]
        raise EnrollmentFailed(
            f"the cloud refused the enrollment ({response.status_code}): {detail}"
        )
    write_private_key(config.key_path, key)
    cloud_key = response.json().get("cloud_public_key")
    if cloud_key:
        load_public_key(cloud_key)  # a malformed key is refused here, not at the first command
        config.cloud_key_path.write_text(cloud_key + "\n")
    if config.source is not None:
        set_cloud_url(config.source, cloud_url)
    return response.json()["board"]


def report_scan(
    config: EdgeConfig, bus: BusSettings, found: list[FoundMeter], timeout_s: float = 10.0
) -> int:
    """Tell the cloud what a scan found on `bus` (signed with this gateway's key), for an admin
    to give the meters to consumers; the cloud then sends the settings that read them."""
    if not config.cloud.url:
        raise EnrollmentFailed("no [cloud] url in the config: enroll the gateway first")
    try:
        key = read_private_key(config.key_path)
    except (OSError, KeyInvalid) as exc:
        raise EnrollmentFailed(
            f"this gateway's key cannot be read ({config.key_path}): enroll it first"
            " (gridgate edge enroll)"
        ) from exc
    report = ScanReport(
        gateway_id=config.gateway.id, sent_at=datetime.now(UTC), bus=bus, found=found
    )
    body = report.model_dump_json().encode()
    url = config.cloud.url.rstrip("/") + "/api/v1/control/discoveries"
    try:
        response = httpx.post(
            url,
            content=body,
            headers={
                "Content-Type": "application/json",
                GATEWAY_HEADER: config.gateway.id,
                SIGNATURE_HEADER: sign_body(key, body),
            },
            timeout=timeout_s,
        )
    except httpx.HTTPError as exc:
        raise EnrollmentFailed(
            f"cannot reach the cloud at {config.cloud.url}: {type(exc).__name__} {exc}"
        ) from exc
    if response.status_code != 201:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text[:200]
        raise EnrollmentFailed(f"the cloud refused the report ({response.status_code}): {detail}")
    return response.json()["recorded"]


def set_cloud_url(path: Path, url: str) -> None:
    """Write `url` as [cloud] url in the TOML file, keeping everything else as it was."""
    text = path.read_text()
    line = f'url = "{url}"'
    section = re.search(r"(?m)^\[cloud\]\s*$", text)
    if section is None:
        text = text.rstrip("\n") + f"\n\n[cloud]\n{line}\n"
    else:
        end = re.search(r"(?m)^\[", text[section.end() :])
        body_end = section.end() + (end.start() if end else len(text) - section.end())
        body = text[section.end() : body_end]
        if re.search(r"(?m)^url\s*=", body):
            body = re.sub(r"(?m)^url\s*=.*$", line, body, count=1)
        else:
            body = "\n" + line + body
        text = text[: section.end()] + body + text[body_end:]
    path.write_text(text)


@dataclass
class Finding:
    check: str
    ok: bool
    detail: str
    fix: str = ""


def _in_dialout() -> bool:
    try:
        group = grp.getgrnam("dialout")
    except KeyError:
        return False
    return group.gr_gid in os.getgroups() or group.gr_gid == os.getgid()


def doctor(config: EdgeConfig, timeout_s: float = 5.0) -> list[Finding]:
    """Everything that keeps a gateway from working, with what to do about it."""
    findings = []
    for bus in config.buses:
        if bus.kind not in ("modbus-rtu", "dlms-hdlc"):
            continue
        port = Path(bus.port or "")
        if not port.exists():
            findings.append(
                Finding(
                    f"port {port}",
                    False,
                    "does not exist",
                    "plug the RS-485 adapter in; check the udev rule's name",
                )
            )
        elif not os.access(port, os.R_OK | os.W_OK):
            fix = "sudo usermod -a -G dialout $USER (then log in again)"
            if _in_dialout():
                fix = f"ls -l {port}: the device is not group dialout; check the udev rule"
            findings.append(Finding(f"port {port}", False, "not readable and writable", fix))
        else:
            findings.append(Finding(f"port {port}", True, "can be opened"))
    clock = GatewayClock.from_config(config.clock).state()
    findings.append(Finding("clock", clock.trusted, clock.detail, clock.fix))
    folder = config.data_dir
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    free_mb = shutil.disk_usage(existing).free / 1024 / 1024
    budget = config.store.disk_budget_mb
    findings.append(
        Finding(
            "disk",
            free_mb >= budget,
            f"{free_mb:,.0f} MB free for a {budget:,.0f} MB budget",
            "" if free_mb >= budget else "free space, or lower [store] disk_budget_mb",
        )
    )
    key = config.key_path
    if not key.exists():
        findings.append(
            Finding(
                "key",
                False,
                f"{key} is missing",
                "enroll: gridgate edge enroll --config FILE --cloud URL --token T",
            )
        )
    else:
        try:
            read_private_key(key)
            findings.append(
                Finding("key", True, f"{key} (mode {stat.S_IMODE(key.stat().st_mode):o})")
            )
        except (KeyInvalid, OSError) as exc:
            findings.append(Finding("key", False, str(exc), f"chmod 600 {key}, or enroll again"))
    if not config.cloud.url:
        findings.append(Finding("cloud", False, "no [cloud] url", "enroll, or set [cloud] url"))
    else:
        try:
            response = httpx.get(config.cloud.url.rstrip("/") + "/health", timeout=timeout_s)
            healthy = response.status_code == 200
            findings.append(
                Finding(
                    "cloud",
                    healthy,
                    f"{config.cloud.url} answered {response.status_code}",
                    "" if healthy else "the cloud is up but unhealthy: tell its operator",
                )
            )
        except httpx.HTTPError as exc:
            findings.append(
                Finding(
                    "cloud",
                    False,
                    f"{config.cloud.url}: {type(exc).__name__}",
                    "check the address, DNS, the firewall and the network",
                )
            )
    return findings
