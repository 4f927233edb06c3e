"""The boundaries of docs/architecture.md, checked on the source: who may import what.

Imports are read from the syntax tree (every ``import``, at module level, in functions and under
``TYPE_CHECKING``), not by importing: importing ``ratekeeper.core`` runs ``ratekeeper/__init__``,
which re-exports the client and so pulls in gRPC whatever ``core`` itself needs.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PACKAGE = SRC / "ratekeeper"
BENCH = ROOT / "bench"
TESTS = ROOT / "tests"

#: Subpackages that hold logic only (no transport, no metrics exporter), and what they may not
#: reach, directly or through the ratekeeper modules they import.
PURE = ("core", "config", "protocol")
TRANSPORTS = ("grpc", "grpc_health", "aiohttp", "prometheus_client")


@dataclass(frozen=True, slots=True)
class Module:
    """One source file and the absolute module names it imports."""

    name: str
    path: Path
    imports: frozenset[str]


def _module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.AST, name: str, is_package: bool) -> Iterator[str]:
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            yield base
            # ``from pkg import mod`` imports the submodule when there is one.
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _read(path: Path, base: Path) -> Module:
    name = _module_name(path, base)
    tree = ast.parse(path.read_text(), str(path))
    imports = frozenset(_imports(tree, name, path.name == "__init__.py"))
    return Module(name, path, imports)


@functools.cache
def _modules(base: Path, top: str) -> dict[str, Module]:
    return {
        m.name: m
        for path in sorted((base / top).rglob("*.py"))
        if "_pb2" not in path.name
        for m in [_read(path, base)]
    }


def _ratekeeper() -> dict[str, Module]:
    return _modules(SRC, "ratekeeper")


def _internal(imported: str, known: dict[str, Module]) -> str | None:
    """The ratekeeper module an import names (``pkg.name`` may be a module or a symbol)."""
    while imported:
        if imported in known:
            return imported
        imported = imported.rpartition(".")[0]
    return None


def _reach(start: str) -> dict[str, str]:
    """Every ratekeeper module ``start`` imports, directly or not: {module: who imports it}.

    A subpackage's ``__init__`` counts (it runs on import); the root ``ratekeeper/__init__`` does
    not, as it is the public facade over everything.
    """
    known = _ratekeeper()
    seen, todo = {start: start}, [start]
    while todo:
        current = todo.pop()
        for imported in known[current].imports:
            target = _internal(imported, known)
            if target is None or target in seen:
                continue
            parents = target.split(".")
            for depth in range(2, len(parents) + 1):
                parent = ".".join(parents[:depth])
                if parent in known and parent not in seen:
                    seen[parent] = current
                    todo.append(parent)
            if target not in seen:
                seen[target] = current
                todo.append(target)
    return seen


def _top(name: str) -> str:
    return name.split(".")[0]


def _pure_modules() -> list[str]:
    present = [p for p in PURE if (PACKAGE / p).is_dir()]
    return [
        name for name in _ratekeeper() if name.split(".")[1:2] and name.split(".")[1] in present
    ]


@pytest.mark.parametrize("name", _pure_modules())
def test_pure_layers_import_no_transport(name: str) -> None:
    reach = _reach(name)
    known = _ratekeeper()
    for module, via in reach.items():
        for imported in known[module].imports:
            assert _top(imported) not in TRANSPORTS, (
                f"{name} reaches {imported} through {module} (imported by {via}): "
                f"{', '.join(PURE)} must stay free of gRPC, aiohttp and Prometheus"
            )


def _subpackage(name: str) -> str | None:
    """``<x>`` of ``ratekeeper.<x>...`` (``None`` for the root facade and for non-ratekeeper)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "ratekeeper" else None


@functools.cache
def _layer_graph() -> dict[str, set[str]]:
    known = _ratekeeper()
    graph: dict[str, set[str]] = {}
    for module in known.values():
        source = _subpackage(module.name)
        if source is None:
            continue
        edges = graph.setdefault(source, set())
        for imported in module.imports:
            target = _internal(imported, known)
            layer = _subpackage(target) if target else None
            if layer is not None and layer != source:
                edges.add(layer)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


_ALL = frozenset(
    {"errors", "core", "config", "proto", "backends", "transport", "protocol", "server"}
    | {"client", "aio", "cli", "testing", "assigner"}
)

#: What each folder of src/ratekeeper may import from the others: the table of
#: docs/architecture.md ("Boundaries"); change both together.
ALLOWED: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "version": frozenset(),
    "core": frozenset({"errors"}),
    "config": frozenset({"core", "errors"}),
    "proto": frozenset({"core", "protocol", "backends", "errors"}),
    "backends": frozenset({"core", "errors"}),
    "transport": frozenset({"core", "errors"}),
    "protocol": frozenset({"core", "config", "backends", "errors"}),
    "assigner": frozenset({"core", "config", "proto", "transport", "errors"}),
    "server": frozenset(
        {"assigner", "protocol", "backends", "config", "core", "proto", "transport", "errors"}
    ),
    "client": frozenset({"core", "config", "proto", "transport", "errors"}),
    "aio": frozenset({"client", "core", "config", "proto", "transport", "errors"}),
    "sidecar": frozenset(
        {"server", "protocol", "backends", "client", "aio", "config", "core", "proto", "errors"}
    ),
    "cli": frozenset(
        {
            "server",
            "sidecar",
            "assigner",
            "config",
            "core",
            "proto",
            "transport",
            "errors",
            "version",
        }
    ),
    "testing": _ALL - {"cli", "testing"},
}


@pytest.mark.parametrize("layer", sorted(_layer_graph()))
def test_each_folder_imports_only_what_the_architecture_allows(layer: str) -> None:
    assert layer in ALLOWED, (
        f"ratekeeper.{layer} is a new folder: add its row to ALLOWED here and to the "
        "Boundaries table of docs/architecture.md"
    )
    extra = sorted(_layer_graph()[layer] - ALLOWED[layer])
    importers = {
        target: sorted(
            m.name
            for m in _ratekeeper().values()
            if _subpackage(m.name) == layer
            and any(_subpackage(_internal(i, _ratekeeper()) or "") == target for i in m.imports)
        )
        for target in extra
    }
    assert not extra, f"ratekeeper.{layer} may not import {extra}: {importers}"


def test_the_boundaries_table_is_the_documented_one() -> None:
    doc = (ROOT / "docs" / "architecture.md").read_text()
    for layer in ALLOWED:
        folder = f"`{layer}.py`" if layer in ("errors", "version") else f"`{layer}/`"
        assert f"| {folder} |" in doc, f"docs/architecture.md has no Boundaries row for {layer}"


def test_no_import_cycles_between_subpackages() -> None:
    graph = _layer_graph()
    cycles = _cycles(graph)
    detail = {c: sorted(graph[c]) for cycle in cycles for c in cycle}
    assert cycles == [], f"subpackages importing each other in a ring: {cycles}; edges {detail}"


def test_the_cycle_finder_finds_a_ring() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def _shipped_and_bench() -> list[Module]:
    return [*_ratekeeper().values(), *_modules(ROOT, "bench").values()]


def _test_suite_names() -> set[str]:
    """Top-level names the test suite makes importable (pytest puts tests/ on sys.path)."""
    names = {"tests"}
    for entry in TESTS.iterdir():
        if entry.suffix == ".py" or (entry / "__init__.py").is_file():
            names.add(entry.stem)
    return names - {"ratekeeper", "bench"}


@pytest.mark.parametrize("module", _shipped_and_bench(), ids=lambda m: m.name)
def test_nothing_shipped_or_benchmarked_imports_the_test_suite(module: Module) -> None:
    forbidden = _test_suite_names()
    bad = sorted(i for i in module.imports if _top(i) in forbidden)
    assert not bad, f"{module.path.relative_to(ROOT)} imports the test suite: {bad}"


def _touches_sys_path(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == "path"
            and isinstance(node.value, ast.Name)
            and node.value.id == "sys"
        ):
            return True
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "sys"
            and any(alias.name == "path" for alias in node.names)
        ):
            return True
        if isinstance(node, ast.Attribute) and node.attr == "addsitedir":
            return True
    return False


@pytest.mark.parametrize("module", _shipped_and_bench(), ids=lambda m: m.name)
def test_nothing_shipped_or_benchmarked_edits_sys_path(module: Module) -> None:
    tree = ast.parse(module.path.read_text())
    assert not _touches_sys_path(tree), f"{module.path.relative_to(ROOT)} touches sys.path"


def test_the_sys_path_check_sees_an_edit() -> None:
    assert _touches_sys_path(ast.parse("import sys\nsys.path.insert(0, 'x')"))
    assert _touches_sys_path(ast.parse("from sys import path"))
    assert not _touches_sys_path(ast.parse("import os\nos.path.join('a')"))


def test_the_transport_check_sees_the_server() -> None:
    """Not vacuous: the server's composition root does reach gRPC through what it imports."""
    known = _ratekeeper()
    reach = _reach("ratekeeper.server.app")
    assert "ratekeeper.core.limits" in reach
    assert any(
        _top(i) == "grpc" for m in reach if m != "ratekeeper.server.app" for i in known[m].imports
    )
