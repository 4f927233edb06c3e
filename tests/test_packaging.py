"""The wheel users install: built from this tree, installed into a fresh virtual environment,
and serving. Catches what an editable install hides (a module or data file missing from the
wheel, the generated protobuf modules not built, an undeclared dependency)."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from ratekeeper.testing.procs import free_port, http_get, http_ok, start

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.integration


#: The fresh environment must not see this tree's sources (``PYTHONPATH=src`` in a worktree).
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def _run(*argv: str | Path, timeout: float = 600) -> str:
    done = subprocess.run(
        [str(a) for a in argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=CLEAN_ENV,
    )
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a fresh virtual environment with the wheel installed."""
    work = tmp_path_factory.mktemp("wheel")
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", work / "dist", ROOT)
    (wheel,) = (work / "dist").glob("ratekeeper-*.whl")
    venv.create(work / "venv", with_pip=True)
    bin_dir = work / "venv" / "bin"
    _run(bin_dir / "python", "-m", "pip", "install", "-q", wheel)
    return bin_dir


def test_the_wheel_reports_its_version_and_carries_the_generated_protos(installed: Path) -> None:
    assert _run(installed / "ratekeeper", "--version").startswith("ratekeeper ")
    code = "import ratekeeper.proto.ratekeeper.v1.report_pb2 as m; print(m.ReportRequest.__name__)"
    assert _run(installed / "python", "-c", code).strip() == "ReportRequest"


def test_ratekeeper_serve_from_the_wheel_answers(installed: Path, tmp_path: Path) -> None:
    grpc_port, http_port = free_port(), free_port()
    argv = [str(installed / "ratekeeper"), "serve"]
    argv += ["--grpc-port", str(grpc_port), "--http-port", str(http_port)]
    ready = http_ok(http_port, "/healthcheck")
    env = {"PYTHONPATH": ""}
    with start(
        argv, name="wheel-serve", log_dir=tmp_path, ready=ready, timeout=60, cwd=tmp_path, env=env
    ):
        status, _, body = http_get(http_port, "/healthcheck")
        assert status == 200, body


def test_the_wheel_serves_the_operator_page_from_its_package_data(
    installed: Path, tmp_path: Path
) -> None:
    grpc_port, http_port, admin_port = free_port(), free_port(), free_port()
    argv = [str(installed / "ratekeeper"), "serve", "--admin-listen", f"127.0.0.1:{admin_port}"]
    argv += ["--grpc-port", str(grpc_port), "--http-port", str(http_port)]
    ready = http_ok(admin_port, "/healthcheck")
    env = {"PYTHONPATH": ""}
    with start(
        argv, name="wheel-operator", log_dir=tmp_path, ready=ready, timeout=60, cwd=tmp_path,
        env=env,
    ):  # fmt: skip
        for path in ("/operator", "/operator/operator.js", "/operator/operator.css"):
            status, _, body = http_get(admin_port, path)
            assert status == 200, (path, body[:200])
