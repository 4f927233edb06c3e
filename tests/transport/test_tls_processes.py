"""TLS between real processes: ``ratekeeper serve`` configured by its RATEKEEPER_* twins, a
Limiter reporting over mTLS with the token, and a ``ratekeeper sidecar`` whose upstream channel
is mTLS with the token (issue 16 item 6)."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import ratekeeper
from ratekeeper.testing.procs import free_port, http_get, http_ok, start
from ratekeeper.testing.server_process import ratekeeper_server
from ratekeeper.transport.tls import TlsSettings
from tests.transport.certs import Ca

pytestmark = pytest.mark.integration

CONFIG = """
domain: rl
descriptors:
  - key: key
    rate_limit: {unit: minute, requests_per_unit: 5}
"""
TOKEN = "process-token-9f8e7d"


def _secured_server(tmp_path: Path, ca: Ca) -> tuple[Path, dict[str, str], list[str]]:
    (tmp_path / "rl.yaml").write_text(CONFIG)
    server = ca.issue("server")
    (tmp_path / "token").write_text(TOKEN)
    env = {
        "RATEKEEPER_GRPC_TLS_CERT": server.cert,
        "RATEKEEPER_GRPC_TLS_KEY": server.key,
        "RATEKEEPER_GRPC_TLS_CLIENT_CA": ca.file,
    }
    return tmp_path / "rl.yaml", env, ["--auth-token-file", str(tmp_path / "token")]


def _reports_answered(http_port: int) -> float:
    """``ratekeeper_call_seconds_count{call="report"}``, read with the token /metrics needs."""
    status, _, body = http_get(http_port, "/metrics", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    for line in body.decode().splitlines():
        if line.startswith('ratekeeper_call_seconds_count{call="report"}'):
            return float(line.split()[-1])
    return 0.0


def test_a_limiter_reports_to_a_served_process_over_mtls_with_the_token(tmp_path: Path) -> None:
    ca = Ca.make(tmp_path)
    config, env, flags = _secured_server(tmp_path, ca)
    client = ca.issue("client", server=False)
    tls = TlsSettings(ca=ca.file, cert=client.cert, key=client.key)
    with ratekeeper_server(config, tmp_path, env=env, flags=flags) as served:
        limiters = [
            ratekeeper.Limiter(
                served.grpc_target,
                domain="rl",
                limit="5/minute",
                timeout=5,
                tls=tls,
                auth_token=TOKEN,
            )
            for _ in range(2)
        ]
        a, b = limiters
        try:
            assert all(a.allow("k") for _ in range(5))
            a.flush()
            assert b.allow("k")
            b.flush()
            assert not b.allow("k")  # A's five crossed mTLS and were counted
            assert (a.stats.failed, b.stats.failed) == (0, 0)
            wrong = ratekeeper.Limiter(
                served.grpc_target, domain="rl", limit="5/minute", timeout=5, tls=tls
            )
            try:
                wrong.allow("k")
                wrong.flush()  # no token: UNAUTHENTICATED, counted as a failed report
                assert (wrong.stats.answered, wrong.stats.failed) == (0, 1)
            finally:
                wrong.close()
        finally:
            for limiter in limiters:
                limiter.close()
        log = served.process.log_text()
    assert "tls=grpc" in log
    assert "auth=token" in log
    assert TOKEN not in log


def test_a_sidecar_reports_upstream_over_mtls_with_the_token(tmp_path: Path) -> None:
    ca = Ca.make(tmp_path)
    config, env, flags = _secured_server(tmp_path, ca)
    client = ca.issue("sidecar", server=False)
    with ratekeeper_server(config, tmp_path, env=env, flags=flags) as served:
        http_port = free_port()
        argv = [sys.executable, "-m", "ratekeeper.cli.main", "sidecar"]
        argv += ["--server", served.grpc_target, "--config", str(config)]
        argv += ["--grpc-port", str(free_port()), "--http-port", str(http_port)]
        argv += ["--upstream-tls-ca", ca.file, "--upstream-tls-cert", client.cert]
        argv += ["--upstream-tls-key", client.key]
        argv += ["--upstream-auth-token-file", str(tmp_path / "token")]
        with start(
            argv, name="sidecar", log_dir=tmp_path, ready=http_ok(http_port, "/healthcheck")
        ):
            body = {"domain": "rl", "descriptors": [{"entries": [{"key": "key", "value": "s"}]}]}
            request = urllib.request.Request(
                f"http://127.0.0.1:{http_port}/json",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 200
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                reports = _reports_answered(served.http_port)
                if reports > 0:
                    break
                time.sleep(0.2)
            assert reports > 0  # the sidecar's reports reached the server over mTLS
            status, headers, text = http_get(http_port, "/healthcheck")
            assert (status, text) == (200, b"OK"), (headers, text)
