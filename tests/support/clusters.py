"""PostgreSQL servers of a test's own, on free ports in a temporary folder: a primary and its
streaming replica (the shared test server cannot take a replica without a restart — its pg_hba
refuses replication — and a test must not restart it), or one server a test may kill.

The binaries are Debian's (`/usr/lib/postgresql/*/bin`) or pgserver's; without either the test
is skipped. PostgreSQL refuses to run as root, so under root the servers run as the `postgres`
(or pgserver's `pgserver`) system user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil
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


@dataclass
class Cluster:
    """One PostgreSQL server of a test's own: its data folder, port, and the user it runs as."""

    binaries: Path
    user: pwd.struct_passwd
    folder: Path  # the temporary folder: sockets and logs
    name: str  # the data folder's name within it
    port: int = field(default_factory=free_tcp_port)

    @property
    def data(self) -> Path:
        return self.folder / self.name

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, program: str, *args: str | Path) -> None:
        subprocess.run(
            [str(self.binaries / program), *(str(a) for a in args)],
            check=True,
            capture_output=True,
            user=self.user.pw_uid,
            group=self.user.pw_gid,
            cwd=self.folder,
        )

    def initdb(self) -> None:
        self.run("initdb", "-D", self.data, "--auth=trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c wal_level=replica"
            " -c max_wal_senders=4 -c shared_buffers=16MB"
        )
        log = self.folder / f"{self.name}.log"
        self.run("pg_ctl", "-D", self.data, "-l", log, "-w", "-t", "120", "-o", options, "start")

    def kill(self) -> None:
        """SIGKILL to the server and every process of it at once, as a power cut would."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        postmaster = psutil.Process(pid)
        victims = [postmaster, *postmaster.children(recursive=True)]
        for victim in victims:
            with contextlib.suppress(psutil.NoSuchProcess):
                victim.kill()
        psutil.wait_procs(victims, timeout=30)

    def stop(self) -> None:
        subprocess.run(
            [str(self.binaries / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True,
            user=self.user.pw_uid,
            group=self.user.pw_gid,
        )


@contextmanager
def _folder() -> Iterator[tuple[Path, pwd.struct_passwd, Path]]:
    """(binaries, server user, a temporary folder that user owns); skips without binaries."""
    binaries = _binaries()
    if binaries is None:
        pytest.skip(f"no PostgreSQL binaries ({', '.join(NEEDED)}) to start a server with")
    user = _server_user()
    if user is None:
        pytest.skip("running as root and no postgres or pgserver user to run PostgreSQL as")
    folder = Path(tempfile.mkdtemp(prefix="gg-pg-"))  # short: sockets live here
    os.chown(folder, user.pw_uid, user.pw_gid)
    try:
        yield binaries, user, folder
    except subprocess.CalledProcessError as exc:
        logs = "".join(p.read_text()[-1500:] for p in folder.glob("*.log"))
        raise AssertionError(
            f"{exc.cmd[0]} failed: {exc.stderr.decode(errors='replace')[-1500:]}\n{logs}"
        ) from exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def own_cluster() -> Iterator[Cluster]:
    """A fresh PostgreSQL server, running, that the test may kill and start again."""
    with _folder() as (binaries, user, folder):
        cluster = Cluster(binaries, user, folder, "main")
        cluster.initdb()
        try:
            cluster.start()
            yield cluster
        finally:
            cluster.stop()


@contextmanager
def primary_and_replica() -> Iterator[tuple[str, str]]:
    """(primary URL, replica URL): a fresh cluster and a hot standby streaming from it."""
    with _folder() as (binaries, user, folder):
        primary = Cluster(binaries, user, folder, "primary")
        replica = Cluster(binaries, user, folder, "replica")
        started: list[Cluster] = []
        try:
            primary.initdb()
            primary.start()
            started.append(primary)
            replica.run(
                "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                "-D", replica.data, "-R", "-X", "stream", "--no-sync",
            )  # fmt: skip
            replica.start()
            started.append(replica)
            yield primary.url, replica.url
        finally:
            for cluster in reversed(started):
                cluster.stop()


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
