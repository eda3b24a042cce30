"""DESIGN.md's arrows, enforced: which top-level package may import which."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = {"shared", "protocols", "firmware_sim", "edge", "cloud", "gridgate"}
ALLOWED = {
    "shared": set(),
    "protocols": {"shared"},
    "firmware_sim": {"protocols", "shared"},
    "edge": {"protocols", "shared"},
    "cloud": {"shared"},
    "gridgate": OURS - {"gridgate"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_design_allows(package: str) -> None:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for imported in imported_packages(path) - ALLOWED[package] - {package}:
            bad.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert not bad, "imports against DESIGN.md's arrows:\n" + "\n".join(bad)


def test_nothing_imports_the_gridgate_face() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for package in ALLOWED
        if package != "gridgate"
        for path in (ROOT / package).rglob("*.py")
        if "gridgate" in imported_packages(path)
    ]
    assert not offenders
