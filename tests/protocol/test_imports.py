"""Protocol logic, the core and config import no transport and no metrics library.

Checked on the source, every ``import`` statement of every module, so an import inside a
function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ratekeeper

FORBIDDEN = ("grpc", "grpc_health", "aiohttp", "prometheus_client")
PACKAGES = ("protocol", "core", "config")
ROOT = Path(ratekeeper.__file__).parent


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


MODULES = sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_every_package_has_modules() -> None:
    assert {p.relative_to(ROOT).parts[0] for p in MODULES} == set(PACKAGES)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_imports_no_transport(path: Path) -> None:
    bad = {name for name in _imports(path) if name.split(".")[0] in FORBIDDEN}
    assert bad == set(), f"{path.relative_to(ROOT)} imports {sorted(bad)}"
