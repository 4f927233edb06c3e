"""``ratekeeper ready`` is logged only once the process serves; until then the log says why not.

Real ``ratekeeper serve`` processes: with its Redis down at start-up, and with
``--healthy-with-at-least-one-config-loaded`` and no domain, the server starts its listeners,
warns ``not serving yet (<why>)`` (``/healthcheck`` 500), and logs the ready line when health
turns SERVING.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from ratekeeper.testing.procs import log_line, start
from ratekeeper.testing.redis_server import RedisServer
from tests.server.test_app import ONE_PER_MINUTE, REQUEST, Serve, wait_for

pytestmark = pytest.mark.integration

NOT_YET = (
    r"WARNING .*ratekeeper started, not serving yet \((?P<why>.*?)\): "
    r"grpc=127\.0\.0\.1:(\d+) http=127\.0\.0\.1:(\d+)"
)


class Waiting(Serve):
    """A server that started without serving: its ports come from the warning line."""

    def __init__(self, tmp_path: Path, *flags: str) -> None:
        argv = [sys.executable, "-m", "ratekeeper.cli.main", "serve", *flags]
        env = {"RATEKEEPER_GRPC_PORT": "0", "RATEKEEPER_PORT": "0"}
        self.proc = start(
            argv, name="serve", log_dir=tmp_path / "logs", ready=log_line(NOT_YET), env=env
        )
        match = re.search(NOT_YET, self.proc.log_text())
        assert match is not None
        self.why = match["why"]
        self.grpc_port, self.http_port = int(match[2]), int(match[3])

    def ready_logged(self) -> bool:
        return "ratekeeper ready grpc=" in self.proc.log_text()


def test_no_ready_line_while_redis_is_down_then_ready_once_it_answers(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.stop()
    config = tmp_path / "config"
    config.mkdir()
    (config / "test.yaml").write_text(ONE_PER_MINUTE)
    server = Waiting(tmp_path, "--backend", redis.url, "--config", str(config))
    try:
        assert server.why == "the store does not answer"
        assert server.get("/healthcheck") == (500, "NOT SERVING")
        assert not server.ready_logged()
        redis.start()
        wait_for(server.ready_logged, timeout=30)
        assert server.get("/healthcheck")[0] == 200
        redis.stop()  # later changes are logged too (an idle store learns it on its next call)
        assert server.post_json(REQUEST) == 200  # fail open
        log = server.proc.log_text
        wait_for(lambda: "WARNING ratekeeper.server.health: not serving: the store" in log())
        redis.start()
        wait_for(lambda: "INFO ratekeeper.server.health: serving again" in log(), timeout=30)
    finally:
        server.proc.stop()
        redis.stop()


def test_no_ready_line_until_a_domain_loads_when_one_is_required(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    flags = ["--config", str(config), "--reload-interval", "0.1"]
    server = Waiting(tmp_path, *flags, "--healthy-with-at-least-one-config-loaded")
    try:
        required = "--healthy-with-at-least-one-config-loaded requires"
        assert server.why == f"no domain loaded, which {required}"
        assert server.get("/healthcheck") == (500, "NOT SERVING")
        (config / "test.yaml").write_text(ONE_PER_MINUTE)
        wait_for(server.ready_logged)
        assert server.get("/healthcheck") == (200, "OK")
    finally:
        server.proc.stop()
