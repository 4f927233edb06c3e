"""``ratekeeper sidecar``: its flags, and a real process answering over gRPC and HTTP."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ratekeeper.cli.main import build_parser, main
from ratekeeper.sidecar.app import DEGRADED_HEADER
from ratekeeper.testing.procs import free_port, http_get, http_ok, start

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "config"


def test_server_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["sidecar"])
    assert exc.value.code == 2
    assert "--server" in capsys.readouterr().err


def test_takes_the_serve_flags_and_several_servers() -> None:
    args = build_parser().parse_args(
        ["sidecar", "--server", "a:1,b:2", "--server", "c:3", "--shadow-mode", "--grpc-uds", "s"]
    )
    assert args.server == ["a:1,b:2", "c:3"]
    assert (args.shadow_mode, args.grpc_uds) == ("true", "s")


@pytest.mark.integration
def test_a_sidecar_process_answers_json_with_its_server_away(tmp_path: Path) -> None:
    http_port = free_port()
    argv = [sys.executable, "-m", "ratekeeper.cli.main", "sidecar", "--server", "127.0.0.1:9"]
    argv += ["--config", str(EXAMPLES), "--grpc-port", str(free_port())]
    argv += ["--http-port", str(http_port)]
    with start(argv, name="sidecar", log_dir=tmp_path, ready=http_ok(http_port, "/healthcheck")):
        codes = [_post_json(http_port) for _ in range(4)]
        assert codes == [200, 200, 200, 429]  # (route=root, user=u): 3 per minute
        status, headers, body = http_get(http_port, "/healthcheck")
        assert status == 200
        assert headers[DEGRADED_HEADER] == "servers-unreachable"
        assert body.startswith(b"DEGRADED")


def _post_json(port: int) -> int:
    entries = [{"key": "route", "value": "root"}, {"key": "user", "value": "u"}]
    body = json.dumps({"domain": "rl", "descriptors": [{"entries": entries}]}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/json",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_default_ports_sit_beside_a_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []

    async def fake_run(settings: Any, options: Any) -> int:
        seen.append((settings.listeners, options))
        return 0

    monkeypatch.setattr("ratekeeper.cli.sidecar.run", fake_run)
    monkeypatch.delenv("RATEKEEPER_GRPC_PORT", raising=False)
    monkeypatch.setenv("RATEKEEPER_PORT", "7000")  # a variable still wins over the default
    assert main(["sidecar", "--server", "a:1,b:2", "--log-level", "WARNING"]) == 0
    [(listeners, options)] = seen
    assert (listeners.grpc_port, listeners.http_port) == (8091, 7000)
    assert options.servers == ("a:1", "b:2")
