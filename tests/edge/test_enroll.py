"""`gridgate edge enroll` and `gridgate edge doctor` against the real cloud on a real port."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from cloud.services import enrollment
from edge.config import load_config
from shared import generate_private_key, write_private_key
from tests.cloud.conftest import Cloud
from tests.support.services import free_tcp_port

EDGE = [sys.executable, "-m", "gridgate", "--log-level", "ERROR", "edge"]


async def gridgate(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *EDGE, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


def write_config(folder: Path, gateway: str, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "edge.toml"
    path.write_text(
        f'# a technician\'s config\n[gateway]\nid = "{gateway}"\ndata_dir = "data"\n\n'
        f"[clock]\nrequire_ntp = false\n{extra}"
    )
    return path


async def test_enroll_then_doctor(
    cloud: Cloud, board: str, served: httpx.AsyncClient, tmp_path: Path
) -> None:
    url = str(served.base_url).rstrip("/")
    async with cloud.pool.connection() as conn:
        token, _ = await enrollment.create_token(conn, board_code=board, ttl_s=600, actor="t")
        old, _ = await enrollment.create_token(conn, board_code=board, ttl_s=600, actor="t")
        await conn.execute(
            "UPDATE enrollment_tokens SET expires_at = now() - interval '1 minute'"
            " WHERE expires_at = (SELECT max(expires_at) FROM enrollment_tokens)"
        )
        await conn.commit()
    gateway = f"gw-{uuid.uuid4().hex[:6]}"
    config = write_config(tmp_path / "gw", gateway)

    code, _, err = await gridgate("enroll", "-c", str(config), "--cloud", url, "--token", old)
    assert code == 2
    assert "expired" in err
    assert not (tmp_path / "gw" / "data" / "gateway.key").exists()  # nothing written on failure

    code, out, err = await gridgate("enroll", "-c", str(config), "--cloud", url, "--token", token)
    assert code == 0, err
    assert f"on board {board}" in out
    key = tmp_path / "gw" / "data" / "gateway.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    loaded = load_config(config)
    assert loaded.cloud.url == url
    # the cloud's key, to check its commands by, is kept beside the gateway's own
    cloud_key = (await served.get("/api/v1/control/cloud-key")).json()["public_key"]
    assert loaded.cloud_key_path.read_text().strip() == cloud_key
    assert config.read_text().startswith("# a technician's config")  # the rest is kept
    async with cloud.pool.connection() as conn:
        cursor = await conn.execute(
            "SELECT status FROM gateways WHERE gateway_code = %s", (gateway,)
        )
        assert (await cursor.fetchone())["status"] == "active"

    code, _, err = await gridgate("enroll", "-c", str(config), "--cloud", url, "--token", token)
    assert code == 2
    assert "already used" in err
    nobody = f"http://127.0.0.1:{free_tcp_port()}"
    code, _, err = await gridgate("enroll", "-c", str(config), "--cloud", nobody, "--token", token)
    assert code == 2
    assert "cannot reach the cloud" in err

    code, out, err = await gridgate("doctor", "-c", str(config))
    assert code == 0, out + err
    assert "ok   key" in out
    assert "ok   cloud" in out

    broken = write_config(
        tmp_path / "broken",
        "gw-broken",
        f'\n[cloud]\nurl = "{nobody}"\n\n[[buses]]\nname = "b"\nkind = "modbus-rtu"\n'
        f'port = "{tmp_path / "ttyUSB7"}"\n',
    )
    code, out, _ = await gridgate("doctor", "-c", str(broken))
    assert code == 1
    assert "ttyUSB7: does not exist" in out
    assert "gridgate edge enroll" in out  # no key yet
    assert "FIX  cloud" in out

    code, out, _ = await gridgate("doctor", "-c", str(write_config(tmp_path / "new", "gw-new", "")))
    assert code == 1
    assert "FIX  cloud: no [cloud] url\n     → enroll, or set [cloud] url" in out  # not markup


def _findings(config_path: Path) -> dict[str, bool]:
    from edge.enrollment import doctor

    return {f.check.split(" ")[0]: f.ok for f in doctor(load_config(config_path))}


@pytest.mark.parametrize(
    "problem", [None, "port", "permission", "clock", "disk", "key", "mode", "cloud"]
)
async def test_the_doctor_reports_each_problem_only_when_present(
    served: httpx.AsyncClient, tmp_path: Path, problem: str | None
) -> None:
    if problem == "permission" and os.geteuid() == 0:
        # root opens any device whatever its mode (CI runs as root); as any other user this case
        # runs and must report the port
        pytest.skip("root can open any device: the permission check cannot fail here")
    port = tmp_path / "ttyFAKE"
    port.write_bytes(b"")
    url = str(served.base_url).rstrip("/")
    settings = {
        "cloud": f"http://127.0.0.1:{free_tcp_port()}" if problem == "cloud" else url,
        "not_before": "2099-01-01T00:00:00Z" if problem == "clock" else "2026-01-01T00:00:00Z",
        "budget": 10**9 if problem == "disk" else 1,
    }
    config = tmp_path / "gw" / "edge.toml"
    config.parent.mkdir()
    config.write_text(
        f'[gateway]\nid = "gw-doc"\ndata_dir = "data"\n\n[cloud]\nurl = "{settings["cloud"]}"\n\n'
        f"[store]\ndisk_budget_mb = {settings['budget']}\n\n[clock]\nrequire_ntp = false\n"
        f'not_before = "{settings["not_before"]}"\n\n[[buses]]\nname = "b"\nkind = "modbus-rtu"\n'
        f'port = "{port}"\n'
    )
    key = tmp_path / "gw" / "data" / "gateway.key"
    if problem != "key":
        write_private_key(key, generate_private_key())
    if problem == "mode":
        key.chmod(0o644)
    if problem == "port":
        port.unlink()
    if problem == "permission":
        port.chmod(0)
    found = await asyncio.to_thread(_findings, config)
    failing = {check for check, ok in found.items() if not ok}
    expected = {
        None: set(),
        "port": {"port"},
        "permission": {"port"},
        "clock": {"clock"},
        "disk": {"disk"},
        "key": {"key"},
        "mode": {"key"},
        "cloud": {"cloud"},
    }[problem]
    assert failing == expected, found
