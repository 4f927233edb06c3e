"""The deployment examples in deploy/: valid for their schema, and every ratekeeper command
line in them one the CLI accepts (so a renamed flag breaks this test, not a user's rollout)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from ratekeeper.cli.main import build_parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
#: The oldest Kubernetes the manifests promise to work on.
KUBERNETES = "1.30.0"


def _documents() -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{path.name}:{doc['kind']}", doc)
        for path in MANIFESTS
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


@pytest.mark.parametrize(("name", "doc"), _documents(), ids=[n for n, _ in _documents()])
def test_each_manifest_is_valid_for_its_schema(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES, strict=True)


def _ratekeeper_args() -> list[list[str]]:
    found = []
    for _, doc in _documents():
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            if "ratekeeper/ratekeeper" in container["image"]:
                found.append(list(container["args"]))
    return found


@pytest.mark.parametrize("args", _ratekeeper_args(), ids=lambda a: a[0])
def test_every_ratekeeper_command_line_parses(args: list[str]) -> None:
    build_parser().parse_args(args)


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    unit = (DEPLOY / "systemd" / "ratekeeper.service").read_text()
    installed = Path(sys.executable).parent / "ratekeeper"  # verify needs a real executable
    path = tmp_path / "ratekeeper.service"
    path.write_text(unit.replace("/opt/ratekeeper/bin/ratekeeper", str(installed)))
    done = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "ExecStart=/opt/ratekeeper/bin/ratekeeper serve" in unit
