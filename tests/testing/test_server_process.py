"""``ratekeeper serve`` as a process: its command line, readiness and /metrics."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ratekeeper.testing.server_process import ratekeeper_server, serve_argv

pytestmark = pytest.mark.integration


def test_serve_argv_runs_this_interpreter_on_the_given_ports(tmp_path: Path) -> None:
    argv = serve_argv(tmp_path, 1, 2, "--log-level", "WARNING", python_args=("-X", "dev"))
    assert argv[:5] == [sys.executable, "-X", "dev", "-m", "ratekeeper.cli.main"]
    assert argv[5:] == ["serve", "--config", str(tmp_path), "--grpc-port", "1", "--http-port", "2",
                        "--log-level", "WARNING"]  # fmt: skip


def test_a_started_server_is_ready_and_exports_metrics(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "p.yaml").write_text("domain: d\ndescriptors:\n  - key: k\n")
    with ratekeeper_server(config, tmp_path, flags=("--log-level", "WARNING")) as server:
        assert server.metric("ratekeeper_config_load_success_total") == 1
        assert server.grpc_target == f"127.0.0.1:{server.grpc_port}"
    assert not server.process.alive()
