"""Software versions side by side on a gateway, and the switch between them.

    <prefix>/versions/<version>/    one virtual environment per version, never changed once made
    <prefix>/current -> versions/X  what the service runs (`current/bin/gridgate edge run`)
    <prefix>/base.pth               where the dependencies live (the base environment that
                                    install-edge.sh made), copied into each version's
                                    site-packages so a new version reuses them and pip installs
                                    only what it needs that is missing or different
    <prefix>/update-pending.json    a switch that has not proved itself yet: from, to, deadline,
                                    starts, command
    <prefix>/update-outcome.json    how it ended (confirmed / rolled back), until the cloud knows

An update installs the new version beside the running one (nothing the running one uses is
touched), writes the marker, flips `current` with one rename, and the daemon stops; the service
manager starts the new version. That version confirms once it is healthy, before the marker's
deadline. If it cannot (it does not start, keeps crashing, or never gets healthy), something
that is not part of any version puts the old one back: the guard (`systemd/gridgate-edge-guard`,
run before every start) once the deadline has passed or the starts run out, or the new daemon
itself when it sees the deadline pass. Both write the outcome the same way.

The marker is written one key a line, sorted, so that the guard, a POSIX shell script, can read
it with sed; versions are checked against `shared.VERSION_PATTERN` before they get there.
Everything here is blocking file-system and subprocess work: the daemon runs it in a thread.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared import VERSION_PATTERN, GridgateError

MARKER = "update-pending.json"
OUTCOME = "update-outcome.json"
INSTALLED_STAMP = ".installed"  # written last: a version without it is a broken install
MAX_STARTS = 3  # starts the guard allows a new version before it gives up on it
PIP_TIMEOUT_S = 900.0


class UpdateError(GridgateError):
    """An update could not be installed; the version that runs is unchanged."""


class HashMismatch(UpdateError):
    """The wheel is not the one the cloud named: it is not installed."""


def check_version(version: str) -> str:
    if not re.fullmatch(VERSION_PATTERN, version):
        raise UpdateError(f"{version!r} is not a version this gateway installs")
    return version


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_wheel(path: Path, sha256: str) -> None:
    """Raise `HashMismatch` unless the file's sha256 is `sha256`."""
    found = sha256_of(path)
    if found != sha256.lower():
        raise HashMismatch(
            f"the wheel's sha256 is {found}, the cloud named {sha256}: not installed"
        )


@dataclass(frozen=True)
class Layout:
    prefix: Path

    @property
    def versions(self) -> Path:
        return self.prefix / "versions"

    @property
    def current(self) -> Path:
        return self.prefix / "current"

    @property
    def marker(self) -> Path:
        return self.prefix / MARKER

    @property
    def outcome(self) -> Path:
        return self.prefix / OUTCOME

    @property
    def downloads(self) -> Path:
        return self.prefix / "downloads"

    def version_dir(self, version: str) -> Path:
        return self.versions / check_version(version)

    def is_installed(self, version: str) -> bool:
        return (self.version_dir(version) / INSTALLED_STAMP).exists()

    def current_version(self) -> str | None:
        try:
            return Path(os.readlink(self.current)).name
        except OSError:
            return None


def detect_layout() -> Layout | None:
    """The layout this process runs from, when it runs from `<prefix>/versions/<version>`."""
    here = Path(sys.prefix)
    if here.parent.name == "versions":
        return Layout(here.parent.parent)
    return None


def install(layout: Layout, version: str, wheel: Path | None, *, python: str | None = None) -> Path:
    """Make `versions/<version>`: a virtual environment that sees the base's dependencies, with
    the wheel (or `gridgate==<version>` from the package index) installed by pip. An install
    that was cut short is made again; a finished one is kept as it is."""
    target = layout.version_dir(version)
    if layout.is_installed(version):
        return target
    shutil.rmtree(target, ignore_errors=True)
    layout.versions.mkdir(parents=True, exist_ok=True)
    interpreter = python or getattr(sys, "_base_executable", None) or sys.executable
    _run([interpreter, "-m", "venv", "--without-pip", str(target)], "making the environment")
    python_path = target / "bin" / "python"
    base = layout.prefix / "base.pth"
    if base.exists():
        site = _run(
            [str(python_path), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            "finding its site-packages",
        ).strip()
        shutil.copyfile(base, Path(site) / "gridgate-base.pth")
    requirement = str(wheel) if wheel is not None else f"gridgate=={version}"
    _run(
        [str(python_path), "-m", "pip", "install", "--no-input", "--disable-pip-version-check",
         "--quiet", requirement],
        f"installing {requirement}",
    )  # fmt: skip
    installed = _run(
        # isolated (-I): not the working directory's copy of the source (an egg-info there)
        [
            str(python_path),
            "-I",
            "-c",
            "import importlib.metadata as m; print(m.version('gridgate'))",
        ],
        "reading the installed version",
    ).strip()
    if installed != version:
        raise UpdateError(f"asked for {version}, the package installed is {installed}")
    (target / INSTALLED_STAMP).write_text(f"{time.time():.0f}\n")
    return target


def _run(argv: list[str], what: str) -> str:
    try:
        # argv is ours: interpreters of the versions directory and a checked version or wheel path
        done = subprocess.run(  # noqa: S603
            argv, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UpdateError(f"{what} failed: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-600:]
        raise UpdateError(f"{what} failed ({done.returncode}): {tail}")
    return done.stdout


def flip(layout: Layout, version: str) -> None:
    """Point `current` at `versions/<version>` in one rename: a power cut leaves the old link or
    the new one, never none."""
    if not layout.is_installed(version):
        raise UpdateError(f"version {version} is not installed under {layout.versions}")
    staging = layout.prefix / f".current.{os.getpid()}"
    staging.unlink(missing_ok=True)
    staging.symlink_to(Path("versions") / version)
    os.replace(staging, layout.current)
    _sync_dir(layout.prefix)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    with staging.open("w") as f:
        f.write(json.dumps(data, indent=1, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(staging, path)
    _sync_dir(path.parent)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except ValueError:  # cut short by a power cut: treat as what it meant
        return {}


def begin(
    layout: Layout, *, command_id: str, from_version: str, to_version: str, grace_s: float
) -> dict[str, Any]:
    """Write the marker, then flip: the switch to `to_version` must prove itself within
    `grace_s` seconds of now (wall clock, which the guard can read too)."""
    marker = {
        "command": command_id,
        "deadline": int(time.time() + grace_s),
        "from": check_version(from_version),
        "starts": 0,
        "to": check_version(to_version),
    }
    if not layout.is_installed(from_version):
        raise UpdateError(f"the running version {from_version} is not under {layout.versions}")
    _write_json(layout.marker, marker)
    flip(layout, to_version)
    return marker


def pending(layout: Layout) -> dict[str, Any] | None:
    """The switch that has not proved itself yet, if any."""
    return _read_json(layout.marker)


def confirm(layout: Layout, marker: dict[str, Any]) -> dict[str, Any]:
    """The new version is healthy: keep it, and say so."""
    outcome = _outcome(marker, "confirmed", f"version {marker['to']} is healthy")
    _write_json(layout.outcome, outcome)
    layout.marker.unlink(missing_ok=True)
    return outcome


def roll_back(layout: Layout, marker: dict[str, Any], reason: str) -> dict[str, Any]:
    """Put the version the update replaced back in `current`, and say why."""
    flip(layout, marker["from"])
    outcome = _outcome(marker, "rolled_back", reason)
    _write_json(layout.outcome, outcome)
    layout.marker.unlink(missing_ok=True)
    return outcome


def _outcome(marker: dict[str, Any], outcome: str, detail: str) -> dict[str, Any]:
    return {
        "command": marker.get("command"),
        "detail": detail[:500],
        "from": marker.get("from"),
        "outcome": outcome,
        "to": marker.get("to"),
    }


def unreported(layout: Layout) -> dict[str, Any] | None:
    """How the last update ended, until `forget_outcome` (after the cloud has it)."""
    return _read_json(layout.outcome)


def forget_outcome(layout: Layout) -> None:
    layout.outcome.unlink(missing_ok=True)
