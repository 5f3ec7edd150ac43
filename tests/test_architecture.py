"""The layout is the architecture: obsd's imports form no cycle, and the layers point one way.

The core imports no adapter, no daemon module and no I/O library; adapters import no daemon
module; obsctl imports nothing heavy from obsd. Every import counts, those under
TYPE_CHECKING too: a cycle hidden there is still a cycle in the design.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("obsd", "obsctl")
# What the pure core may import beyond the standard library's pure parts.
CORE_MAY_IMPORT = {"msgspec"}
IO_MODULES = {
    "anyio",
    "httpx",
    "h11",
    "ctypes",
    "socket",
    "subprocess",
    "threading",
    "asyncio",
    "platformdirs",
    "os",
    "time",
    "shutil",
    "fcntl",
    "mmap",
    "select",
    "signal",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> Iterator[str]:
    """Every module `path` imports (absolute names)."""
    tree = ast.parse(path.read_text())
    package = (
        module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    )
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def graph() -> dict[str, set[str]]:
    """obsd's and obsctl's modules and the project modules each imports."""
    paths = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    modules = {module_name(p): p for p in paths}
    return {
        name: {m for m in imports_of(path) if m in modules and m != name}
        for name, path in modules.items()
    }


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the modules along it, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_import_graph_has_no_cycle() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize(
    "path", sorted((ROOT / "obsd" / "core").glob("*.py")), ids=lambda p: p.name
)
def test_the_core_does_no_io(path: Path) -> None:
    imported = {name.split(".")[0] for name in imports_of(path)}
    project = {name for name in imports_of(path) if name.startswith("obsd.")}
    assert not imported & IO_MODULES, f"{path.name} imports {imported & IO_MODULES}"
    assert all(name.startswith("obsd.core") for name in project), project


def test_adapters_know_nothing_of_the_daemon() -> None:
    for path in (ROOT / "obsd" / "adapters").glob("*.py"):
        assert not [m for m in imports_of(path) if m.startswith("obsd.daemon")], path.name


def test_obsctl_uses_only_the_core_and_the_paths_of_obsd() -> None:
    for path in (ROOT / "obsctl").glob("*.py"):
        used = {m for m in imports_of(path) if m.startswith("obsd.")}
        allowed = ("obsd.core", "obsd.paths", "obsd.sim", "obsd.daemon.main")
        assert all(m.startswith(allowed) for m in used), (path.name, used)
