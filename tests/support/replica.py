"""A PostgreSQL primary and its streaming replica of a test's own, on free ports in a temporary
folder: the shared test server cannot take a replica without a restart (its pg_hba refuses
replication), and a test must not restart it.

The binaries are Debian's (`/usr/lib/postgresql/*/bin`) or pgserver's; without either the test
is skipped. PostgreSQL refuses to run as root, so under root the servers run as the `postgres`
(or pgserver's `pgserver`) system user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.support.services import free_tcp_port

NEEDED = ("initdb", "pg_ctl", "pg_basebackup")


def _binaries() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    try:
        import pgserver._commands as pgserver_commands

        candidates.append(str(pgserver_commands.POSTGRES_BIN_PATH))
    except ImportError:
        pass
    for folder in candidates:
        if all((Path(folder) / name).exists() for name in NEEDED):
            return Path(folder)
    return None


def _server_user() -> pwd.struct_passwd | None:
    """Who runs the servers: this user, or under root a system user PostgreSQL accepts."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    for name in ("postgres", "pgserver"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    return None


@contextmanager
def primary_and_replica() -> Iterator[tuple[str, str]]:
    """(primary URL, replica URL): a fresh cluster and a hot standby streaming from it."""
    binaries = _binaries()
    if binaries is None:
        pytest.skip(f"no PostgreSQL binaries ({', '.join(NEEDED)}) to build a replica with")
    user = _server_user()
    if user is None:
        pytest.skip("running as root and no postgres or pgserver user to run PostgreSQL as")
    folder = Path(tempfile.mkdtemp(prefix="gg-replica-"))  # short: sockets live here
    os.chown(folder, user.pw_uid, user.pw_gid)

    def run(*args: str | Path) -> None:
        subprocess.run(
            [str(a) for a in args],
            check=True,
            capture_output=True,
            user=user.pw_uid,
            group=user.pw_gid,
            cwd=folder,
        )

    def options(port: int) -> str:
        return (
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c wal_level=replica"
            " -c max_wal_senders=4 -c fsync=off -c shared_buffers=16MB"
        )

    primary, replica = folder / "primary", folder / "replica"
    primary_port, replica_port = free_tcp_port(), free_tcp_port()
    started: list[Path] = []
    try:
        run(binaries / "initdb", "-D", primary, "--auth=trust", "-U", "postgres", "--no-sync")
        run(binaries / "pg_ctl", "-D", primary, "-l", folder / "primary.log", "-w", "-t", "60",
            "-o", options(primary_port), "start")  # fmt: skip
        started.append(primary)
        run(binaries / "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary_port),
            "-U", "postgres", "-D", replica, "-R", "-X", "stream", "--no-sync")  # fmt: skip
        run(binaries / "pg_ctl", "-D", replica, "-l", folder / "replica.log", "-w", "-t", "60",
            "-o", options(replica_port), "start")  # fmt: skip
        started.append(replica)
        yield (
            f"postgresql://postgres@127.0.0.1:{primary_port}/postgres",
            f"postgresql://postgres@127.0.0.1:{replica_port}/postgres",
        )
    except subprocess.CalledProcessError as exc:
        logs = "".join(p.read_text()[-1500:] for p in folder.glob("*.log"))
        raise AssertionError(
            f"{exc.cmd[0]} failed: {exc.stderr.decode(errors='replace')[-1500:]}\n{logs}"
        ) from exc
    finally:
        for data in reversed(started):
            subprocess.run(
                [str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                user=user.pw_uid,
                group=user.pw_gid,
            )
        shutil.rmtree(folder, ignore_errors=True)


def wait_for_replay(primary_url: str, replica_url: str, timeout_s: float = 60) -> None:
    """Return once the replica has replayed everything the primary has written so far."""
    with psycopg.connect(primary_url, autocommit=True) as conn:
        target = conn.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(replica_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            caught_up = conn.execute(
                "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)
            ).fetchone()[0]
            if caught_up:
                return
            time.sleep(0.05)
    raise AssertionError(f"the replica did not replay up to {target} in {timeout_s} s")
