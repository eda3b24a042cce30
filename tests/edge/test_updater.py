"""Versions side by side without pip: the hash check, the marker, the flip, and the guard
script that undoes an update that has not proved itself (run as systemd would, before a start)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from edge import updater
from edge.updater import HashMismatch, Layout

GUARD = Path(__file__).resolve().parents[2] / "systemd" / "gridgate-edge-guard"


def installed(tmp_path: Path, *versions: str) -> Layout:
    layout = Layout(tmp_path / "prefix")
    for version in versions:
        (layout.version_dir(version) / "bin").mkdir(parents=True)
        (layout.version_dir(version) / updater.INSTALLED_STAMP).write_text("1\n")
    updater.flip(layout, versions[0])
    return layout


def guard(layout: Layout, **env: str) -> str:
    done = subprocess.run(
        ["/bin/sh", str(GUARD), str(layout.prefix)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    return done.stdout + done.stderr


def test_a_wheel_with_another_hash_is_refused_and_nothing_flips(tmp_path: Path) -> None:
    layout = installed(tmp_path, "1.0.0", "1.1.0")
    wheel = tmp_path / "gridgate-1.1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK\x03\x04 not what the cloud hashed")
    with pytest.raises(HashMismatch, match="not installed"):
        updater.check_wheel(wheel, "0" * 64)
    assert layout.current_version() == "1.0.0"
    assert updater.pending(layout) is None
    updater.check_wheel(wheel, updater.sha256_of(wheel))  # the right one passes


def test_a_version_that_a_shell_would_act_on_is_refused(tmp_path: Path) -> None:
    layout = installed(tmp_path, "1.0.0")
    for bad in ("../etc", "1.0; rm -rf /", "", "a" * 80, "1.0.0\n"):
        with pytest.raises(updater.UpdateError):
            layout.version_dir(bad)


def test_begin_confirm_and_roll_back(tmp_path: Path) -> None:
    layout = installed(tmp_path, "1.0.0", "1.1.0")
    marker = updater.begin(
        layout, command_id="c-1", from_version="1.0.0", to_version="1.1.0", grace_s=60
    )
    assert layout.current_version() == "1.1.0"
    assert updater.pending(layout) == marker
    assert marker["deadline"] > time.time()
    outcome = updater.confirm(layout, marker)
    assert outcome["outcome"] == "confirmed"
    assert updater.pending(layout) is None
    assert updater.unreported(layout) == outcome
    updater.forget_outcome(layout)

    marker = updater.begin(
        layout, command_id="c-2", from_version="1.1.0", to_version="1.0.0", grace_s=60
    )
    updater.roll_back(layout, marker, "it did not sync")
    assert layout.current_version() == "1.1.0"
    assert updater.unreported(layout)["outcome"] == "rolled_back"
    with pytest.raises(updater.UpdateError):  # a version that is not there is never flipped to
        updater.flip(layout, "9.9.9")


def test_the_guard_counts_starts_then_rolls_back(tmp_path: Path) -> None:
    layout = installed(tmp_path, "1.0.0", "1.1.0")
    updater.begin(layout, command_id="c-3", from_version="1.0.0", to_version="1.1.0", grace_s=600)
    for start in (1, 2, 3):
        guard(layout)
        assert updater.pending(layout)["starts"] == start
        assert layout.current_version() == "1.1.0"
    said = guard(layout)  # the fourth start of a version that never confirmed
    assert "started 3 times" in said
    assert layout.current_version() == "1.0.0"
    assert updater.pending(layout) is None
    outcome = json.loads(layout.outcome.read_text())
    assert outcome["outcome"] == "rolled_back"
    assert (outcome["command"], outcome["from"], outcome["to"]) == ("c-3", "1.0.0", "1.1.0")
    assert guard(layout) == ""  # nothing pending: nothing done


def test_the_guard_rolls_back_past_the_deadline(tmp_path: Path) -> None:
    layout = installed(tmp_path, "1.0.0", "1.1.0")
    marker = updater.begin(
        layout, command_id="c-4", from_version="1.0.0", to_version="1.1.0", grace_s=600
    )
    layout.marker.write_text(json.dumps(marker | {"deadline": 1000}, indent=1, sort_keys=True))
    assert "before its deadline" in guard(layout)
    assert layout.current_version() == "1.0.0"
    assert updater.unreported(layout)["outcome"] == "rolled_back"


def test_the_guard_leaves_a_marker_it_cannot_act_on(tmp_path: Path) -> None:
    layout = installed(tmp_path, "1.1.0")
    layout.marker.write_text('{\n "from": "1.0.0",\n "to": "1.1.0"\n}\n')  # 1.0.0 is not there
    assert "no installed version" in guard(layout)
    assert layout.current_version() == "1.1.0"
