"""No runtime dependency under GPL, AGPL or the Business Source License (LGPL is allowed)."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, distribution

from packaging.requirements import Requirement

FORBIDDEN = re.compile(r"\b(A?GPL|GNU (Affero )?General Public|Business Source|BUSL|BSL)\b", re.I)
LESSER = re.compile(r"\b(LGPL|Lesser General Public|GNU Library)\b", re.I)


def runtime_closure(root: str) -> dict[str, str]:
    """name -> licence text of every installed runtime dependency of `root`, transitively."""
    seen: dict[str, str] = {}
    pending = [root]
    while pending:
        name = pending.pop()
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        key = dist.metadata["Name"].lower()
        if key in seen:
            continue
        meta = dist.metadata
        classifiers = " ".join(c for c in meta.get_all("Classifier") or [] if "License" in c)
        seen[key] = " | ".join(
            filter(
                None, [meta.get("License-Expression"), meta.get("License", "")[:200], classifiers]
            )
        )
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(requirement.name)
    return seen


def is_forbidden(licence: str) -> bool:
    without_lesser = LESSER.sub("", licence)
    return bool(FORBIDDEN.search(without_lesser))


def test_checker_tells_licences_apart() -> None:
    assert is_forbidden("GNU General Public License v3 (GPLv3)")
    assert is_forbidden("AGPL-3.0-only")
    assert is_forbidden("Business Source License 1.1")
    assert not is_forbidden("GNU Lesser General Public License v3 (LGPLv3)")
    assert not is_forbidden("MIT")


def test_no_runtime_dependency_is_gpl_agpl_or_bsl() -> None:
    closure = runtime_closure("gridgate")
    assert "pymodbus" in closure
    assert "dlms-cosem" in closure
    bad = {name: licence for name, licence in closure.items() if is_forbidden(licence)}
    assert not bad, f"forbidden licences at runtime: {bad}"
