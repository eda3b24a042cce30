"""The architecture's arrows, enforced (docs/architecture.md): which top-level package may
import which, no circles of imports among a package's modules, and access control below
every service of the cloud."""

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
    assert not bad, "imports against the architecture's arrows:\n" + "\n".join(bad)


def test_nothing_imports_the_gridgate_face() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for package in ALLOWED
        if package != "gridgate"
        for path in (ROOT / package).rglob("*.py")
        if "gridgate" in imported_packages(path)
    ]
    assert not offenders


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_imports(path: Path) -> set[str]:
    """The modules of ours that `path` imports, anywhere in it (a late import inside a
    function is an arrow too), resolved to module names."""
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path.parent)
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] in OURS}


def _graph(package: str) -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in (ROOT / package).rglob("*.py")}
    return {
        name: {m for m in module_imports(path) if m in modules and m != name}
        for name, path in modules.items()
    }


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


@pytest.mark.parametrize("package", ["cloud", "edge", "shared"])
def test_no_circle_of_imports(package: str) -> None:
    """Modules of a package import each other one way (a package's __init__ re-exporting its
    own modules is not an arrow back)."""
    graph = _graph(package)
    for name, targets in graph.items():
        graph[name] = {t for t in targets if not name.startswith(t + ".") and t != name}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_access_control_sits_below_every_service() -> None:
    """cloud.access (who is calling, what they may do and reach) imports no service, route or
    dashboard: each of those checks access through it."""
    for path in (ROOT / "cloud" / "access").rglob("*.py"):
        for imported in module_imports(path):
            assert not imported.startswith(
                ("cloud.services", "cloud.api", "cloud.dashboard", "cloud.app")
            ), f"{path.relative_to(ROOT)} imports {imported}"
