"""Each example app (examples/*_app.py) as a real process behind a real ``ratekeeper serve``,
driven with real HTTP requests past its limit: 200s with the RateLimit headers, then 429s.

FastAPI runs under uvicorn, Flask under its development server (werkzeug), Django under
``runserver``: each app's own ``__main__``. The client address comes through
``X-Forwarded-For`` (the apps trust 127.0.0.1 as their proxy), so each test client is its own.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

import ratekeeper
from ratekeeper.testing.procs import free_port, port_open, start
from ratekeeper.testing.server_process import RatekeeperServer, ratekeeper_server

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SRC = Path(ratekeeper.__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RatekeeperServer]:
    with ratekeeper_server(EXAMPLES / "policies.yaml", tmp_path_factory.mktemp("rk")) as srv:
        yield srv


def _lower(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    return {name.lower(): value for name, value in items}


def get(port: int, path: str, client: str) -> tuple[int, dict[str, str], bytes]:
    """``path`` as forwarded by a local proxy for ``client``: status, headers (lower-case), body."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"X-Forwarded-For": f"{client}, 127.0.0.1"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, _lower(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, _lower(err.headers.items()), err.read()


def check_route(port: int, path: str, amount: int, client: str) -> list[bytes]:
    """``amount`` admitted with headers counting down, then refused with Retry-After."""
    for i in range(amount):
        status, headers, _ = get(port, path, client)
        assert status == 200, (path, i, status)
        assert headers.get("ratelimit-policy") == f'"example";q={amount};w=60', (path, i, headers)
        assert headers["ratelimit"].startswith(f'"example";r={amount - 1 - i};t=')
    bodies = []
    for _ in range(2):
        status, headers, body = get(port, path, client)
        assert status == 429
        assert headers["ratelimit-policy"] == f'"example";q={amount};w=60', (path, i, headers)
        assert headers["ratelimit"].startswith('"example";r=0;t=')
        retry = int(headers["retry-after"])
        assert 1 <= retry <= 60
        assert int(headers["ratelimit"].rpartition("t=")[2]) <= retry
        bodies.append(body)
    return bodies


@pytest.mark.parametrize("app", ["fastapi_app", "flask_app", "django_app"])
def test_example_app_answers_429_with_headers_past_its_limit(
    app: str, server: RatekeeperServer, tmp_path: Path
) -> None:
    port = free_port()
    env = {"RATEKEEPER_SERVER": server.grpc_target, "PYTHONPATH": str(SRC)}
    argv = [sys.executable, str(EXAMPLES / f"{app}.py"), str(port)]
    with start(argv, name=app, log_dir=tmp_path, ready=port_open(port), timeout=30, env=env):
        check_route(port, "/hello", 3, f"192.0.2.{10 + len(app)}")
        refused = check_route(port, "/search", 5, f"198.51.100.{len(app)}")
        if app == "flask_app":  # its on_limited hook
            assert json.loads(refused[0]) == {"error": "slow down"}
        # another client, and the unlimited route, are still admitted
        assert get(port, "/hello", "203.0.113.9")[0] == 200
        for _ in range(10):
            status, headers, _ = get(port, "/health", "192.0.2.1")
            assert status == 200
            assert "ratelimit" not in headers
