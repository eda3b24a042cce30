"""Software updates end to end, with versions of this project built here as wheels: a real
`gridgate cloud serve`, a simulated Modbus TCP meter, and the daemon run from
`<prefix>/current/bin/gridgate` by a loop that does what systemd does (the guard before every
start, a restart after every exit).

A version whose daemon cannot start is installed, tried, and undone by the guard; the old
version runs again, says so in its heartbeat, and the cloud records the update as rolled back
and never hands that version out again. A good version confirms itself and stays."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import zipfile
from pathlib import Path

import httpx
import psycopg
import pytest

from edge import updater
from edge.updater import Layout
from firmware_sim.clock import SimClock
from firmware_sim.fleet import MeterSpec, build_modbus_meters
from firmware_sim.tcp_server import ModbusTcpServer
from shared import generate_private_key, public_key_text, write_private_key
from tests.cloud.test_crash import prepare, start
from tests.edge.test_commands_crash import config_text
from tests.support.services import free_tcp_port, isolated_database
from tests.support.timing import HTTP_TIMEOUT_S

ROOT = Path(__file__).resolve().parents[2]
GUARD = ROOT / "systemd" / "gridgate-edge-guard"
OLD, BROKEN, GOOD = "0.9.1", "0.9.2", "0.9.3"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.name != "posix", reason="symlinks")]


def build_wheel(source: Path, version: str, out: Path) -> Path:
    """This working tree as a wheel of `version`."""
    tree = out / f"src-{version}"
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=source, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        if (source / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / name, tree / name)
    pyproject = tree / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('version = "0.1.0"', f'version = "{version}"', 1)
    )
    # an offline machine builds with the local index's setuptools (build isolation)
    index = ["--index-url", "file:///opt/pypi/simple"] if Path("/opt/pypi/simple").is_dir() else []
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", *index, "-w", str(out),
         str(tree)],
        check=True,
    )  # fmt: skip
    return out / f"gridgate-{version}-py3-none-any.whl"


def derive_wheel(base: Path, version: str, out: Path, *, broken: bool = False) -> Path:
    """`base` (a wheel built from this tree) as a wheel of `version` — its dist-info renamed,
    its METADATA and RECORD rewritten (broken: its daemon raises as it starts). One build
    instead of three: pip's build takes half a minute on a loaded machine."""
    old_version = base.name.split("-")[1]
    target = out / f"gridgate-{version}-py3-none-any.whl"
    old_info, new_info = f"gridgate-{old_version}.dist-info/", f"gridgate-{version}.dist-info/"
    record: list[str] = []
    with (
        zipfile.ZipFile(base) as source,
        zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as wheel,
    ):
        for item in source.infolist():
            name = item.filename.replace(old_info, new_info, 1)
            if name == new_info + "RECORD":
                continue
            data = source.read(item)
            if name == new_info + "METADATA":
                data = data.replace(
                    f"Version: {old_version}\n".encode(), f"Version: {version}\n".encode(), 1
                )
            if broken and name == "edge/daemon.py":
                anchor = b"    async def run(self) -> None:\n"
                assert anchor in data, "the daemon's run() moved: break it elsewhere"
                crash = f'        raise RuntimeError("version {version} is broken")\n'.encode()
                data = data.replace(anchor, anchor + crash, 1)
            wheel.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(data)}")
        record.append(f"{new_info}RECORD,,")
        wheel.writestr(new_info + "RECORD", "\n".join(record) + "\n")
    return target


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wheels")
    old = build_wheel(ROOT, OLD, out)
    return {
        OLD: old,
        BROKEN: derive_wheel(old, BROKEN, out, broken=True),
        GOOD: derive_wheel(old, GOOD, out),
    }


def install_old(prefix: Path, wheel: Path) -> Layout:
    """What install-edge.sh leaves: the dependencies in a base environment (here, the one the
    tests run in) and the first version beside it, current."""
    layout = Layout(prefix)
    prefix.mkdir(parents=True)
    (prefix / "base.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    updater.install(layout, OLD, wheel)
    updater.flip(layout, OLD)
    return layout


class Supervisor:
    """systemd's part: the guard before every start, the daemon from `current`, restarted after
    every exit (a few hundred ms later), a bounded number of times."""

    def __init__(self, layout: Layout, config: Path, log: Path) -> None:
        self.layout, self.config, self.log = layout, config, log
        self.starts: list[str] = []  # the version each start ran
        self.process: asyncio.subprocess.Process | None = None
        self.stopped = False
        # the daemon imports its own version's code, never this checkout's
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    async def run(self, max_starts: int = 15) -> None:
        while not self.stopped and len(self.starts) < max_starts:
            with self.log.open("ab") as sink:
                guard = await asyncio.create_subprocess_exec(
                    "/bin/sh", str(GUARD), str(self.layout.prefix), stdout=sink, stderr=sink
                )
                await guard.wait()
                self.starts.append(self.layout.current_version() or "")
                self.process = await asyncio.create_subprocess_exec(
                    str(self.layout.current / "bin" / "gridgate"),
                    "--log-level", "INFO", "edge", "run", "--config", str(self.config),
                    stdout=sink, stderr=sink, cwd=self.config.parent, env=self.env,
                )  # fmt: skip
                await self.process.wait()
            await asyncio.sleep(0.3)  # RestartSec

    async def stop(self) -> None:
        self.stopped = True
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(self.process.wait(), 60)


async def until(check, what: str, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while True:
        found = await asyncio.to_thread(check)
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


def one(url: str, query: str, *params) -> tuple | None:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchone()


async def run_update(
    postgres_server: str, tmp_path: Path, wheels: dict[str, Path], version: str, check
) -> None:
    """Version OLD running against a cloud; `version` registered and made the gateway's
    target; then `check(url, layout, supervisor, gateway_id)`."""
    clock = SimClock()
    tcp = ModbusTcpServer(
        build_modbus_meters([MeterSpec(1, "sdm630")], clock, seed=3, turnaround_s=0.002),
        "127.0.0.1",
        0,
    )
    layout = await asyncio.to_thread(install_old, tmp_path / "opt", wheels[OLD])
    with isolated_database(postgres_server) as url:
        token, code = await prepare(url)
        port = free_tcp_port()
        cloud = await asyncio.to_thread(start, url, port, tmp_path / "cloud.log")
        key = generate_private_key()
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=HTTP_TIMEOUT_S
        ) as client:
            enrolled = await client.post(
                "/api/v1/gateways/enroll",
                json={"token": token, "gateway_id": code, "public_key": public_key_text(key)},
            )
            assert enrolled.status_code == 201, enrolled.text
        write_private_key(tmp_path / "data" / "gateway.key", key)
        (tmp_path / "data" / "cloud.pub").write_text(enrolled.json()["cloud_public_key"])
        await tcp.start()
        config = tmp_path / "edge.toml"
        text = config_text(code, f"http://127.0.0.1:{port}", tcp.port)
        text = text.split('[[buses.meters]]\nid = "tcp-9"')[0]  # the one quick meter
        config.write_text(text + f'\n[update]\nprefix = "{layout.prefix}"\nhealth_grace_s = 120\n')
        supervisor = Supervisor(layout, config, tmp_path / "daemon.log")
        running = asyncio.create_task(supervisor.run())
        try:
            gateway_id = (
                await until(
                    lambda: one(
                        url,
                        "SELECT id FROM gateways WHERE gateway_code = %s AND software_version = %s",
                        code,
                        OLD,
                    ),
                    f"the gateway reporting {OLD}",
                )
            )[0]
            data = wheels[version].read_bytes()
            with psycopg.connect(url) as conn:  # what the release page and the target set do
                conn.execute(
                    "INSERT INTO software_releases (version, source, filename, sha256,"
                    " size_bytes, wheel) VALUES (%s, 'wheel', %s, %s, %s, %s)",
                    (
                        version,
                        wheels[version].name,
                        updater.sha256_of(wheels[version]),
                        len(data),
                        data,
                    ),
                )
                conn.execute(
                    "INSERT INTO gateway_software_targets (gateway_id, version) VALUES (%s, %s)",
                    (gateway_id, version),
                )
            await check(url, layout, supervisor, gateway_id)
        finally:
            await supervisor.stop()
            running.cancel()
            await tcp.stop()
            if cloud.poll() is None:
                cloud.terminate()
                await asyncio.to_thread(cloud.wait)


async def test_a_version_that_cannot_start_is_rolled_back_by_the_guard(
    postgres_server: str, tmp_path: Path, wheels: dict[str, Path]
) -> None:
    async def check(url: str, layout: Layout, supervisor: Supervisor, gateway_id: int) -> None:
        outcome = await until(
            lambda: one(
                url,
                "SELECT outcome, detail FROM gateway_updates WHERE gateway_id = %s"
                " AND version = %s AND outcome IS NOT NULL",
                gateway_id,
                BROKEN,
            ),
            "the update's outcome",
        )
        assert outcome[0] == "rolled_back", outcome
        assert "rolled back to 0.9.1" in outcome[1]
        installed = one(
            url,
            "SELECT status, detail FROM gateway_commands WHERE gateway_id = %s AND kind = 'update'",
            gateway_id,
        )
        assert installed == ("succeeded", f"installed {BROKEN}, restarting (it has 120 s to"
                             " prove itself)"), installed  # fmt: skip
        assert BROKEN in supervisor.starts  # it was tried
        assert supervisor.starts[-1] == OLD  # and the old version runs again
        reported = one(url, "SELECT count(*) FROM ingest_batches")[0]
        await until(  # heartbeats of the old version after the rollback
            lambda: one(url, "SELECT count(*) FROM ingest_batches")[0] > reported + 5,
            "more heartbeats",
        )
        assert one(url, "SELECT software_version FROM gateways WHERE id = %s", gateway_id) == (OLD,)
        handed = one(
            url,
            "SELECT count(*) FROM gateway_commands WHERE gateway_id = %s AND kind = 'update'",
            gateway_id,
        )
        assert handed == (1,)  # never handed the broken version again
        assert layout.current_version() == OLD
        assert updater.pending(layout) is None
        assert updater.unreported(layout) is None  # the cloud has it

    await run_update(postgres_server, tmp_path, wheels, BROKEN, check)
    log = (tmp_path / "daemon.log").read_text()
    assert "version 0.9.2 is broken" in log
    assert "gridgate-edge-guard: version 0.9.2 was started 3 times" in log


async def test_a_good_version_confirms_itself_and_stays(
    postgres_server: str, tmp_path: Path, wheels: dict[str, Path]
) -> None:
    async def check(url: str, layout: Layout, supervisor: Supervisor, gateway_id: int) -> None:
        outcome = await until(
            lambda: one(
                url,
                "SELECT outcome FROM gateway_updates WHERE gateway_id = %s AND version = %s"
                " AND outcome IS NOT NULL",
                gateway_id,
                GOOD,
            ),
            "the update's outcome",
        )
        assert outcome == ("confirmed",)
        await until(
            lambda: one(
                url,
                "SELECT 1 FROM gateways WHERE id = %s AND software_version = %s",
                gateway_id,
                GOOD,
            ),
            f"a heartbeat of {GOOD}",
        )
        assert layout.current_version() == GOOD
        assert updater.pending(layout) is None
        assert supervisor.starts == [OLD, GOOD]

    await run_update(postgres_server, tmp_path, wheels, GOOD, check)
