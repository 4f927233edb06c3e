"""A config invalid or absent at start-up: the server serves with no rules, then loads it.

As envoyproxy/ratelimit starts anyway (``--serve-without-config``, on by default): every
descriptor is answered OK, ``/healthcheck`` says ``DEGRADED no config loaded ...``,
``ratekeeper_config_loaded`` is 0 and the log says why; once the files are valid the poll (or
SIGHUP) loads them and the rules hold. Real ``ratekeeper serve`` processes.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.server.test_app import ONE_PER_MINUTE, REQUEST, Serve, launch, wait_for

pytestmark = pytest.mark.integration

__all__ = ["launch"]  # the fixture, shared with test_app

INVALID = "domain: test\ndescriptors:\n  - key: key1\n    nonsense: true\n"


def _degraded(serve: Serve) -> str:
    status, body = serve.get("/healthcheck")
    assert status == 200
    return body


def test_an_invalid_config_serves_no_rules_until_it_is_fixed(
    launch: Callable[..., Serve], tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "test.yaml").write_text(INVALID)
    serve = launch("--config", str(config), "--reload-interval", "0.1")
    log = serve.proc.log_text()
    assert re.search(r"ERROR .*no config loaded, serving with no rules .*test\.yaml:4", log)
    assert _degraded(serve).startswith(f"DEGRADED no config loaded from {config}: ")
    assert serve.metric("ratekeeper_config_loaded") == 0
    assert serve.metric("ratekeeper_config_load_error_total") == 1
    assert [serve.post_json(REQUEST) for _ in range(3)] == [200, 200, 200]  # no rule: OK
    assert serve.get("/rlconfig")[1].startswith("no config loaded")

    (config / "test.yaml").write_text(ONE_PER_MINUTE)
    wait_for(lambda: serve.metric("ratekeeper_config_loaded") == 1)
    assert serve.get("/healthcheck") == (200, "OK")
    assert serve.metric("ratekeeper_config_load_success_total") == 1
    assert re.search(r"INFO .*config loaded from .*: serving its rules", serve.proc.log_text())
    assert [serve.post_json(REQUEST) for _ in range(2)] == [200, 429]  # the rule holds now


def test_an_absent_config_serves_until_it_appears_and_sighup_loads_it(
    launch: Callable[..., Serve], tmp_path: Path
) -> None:
    config = tmp_path / "not-yet"
    serve = launch("--config", str(config), "--reload-interval", "0")
    assert "no such file or directory" in _degraded(serve)
    config.mkdir()
    (config / "test.yaml").write_text(ONE_PER_MINUTE)
    serve.proc.popen.send_signal(signal.SIGHUP)
    wait_for(lambda: serve.metric("ratekeeper_config_loaded") == 1)
    assert [serve.post_json(REQUEST) for _ in range(2)] == [200, 429]


def test_a_failed_reload_while_serving_without_says_so(
    launch: Callable[..., Serve], tmp_path: Path
) -> None:
    config = tmp_path / "test.yaml"
    config.write_text(INVALID)
    serve = launch("--config", str(config), "--reload-interval", "0.1")
    config.write_text(INVALID + "  - key: key2\n")
    wait_for(lambda: serve.metric("ratekeeper_config_load_error_total") == 2)
    assert "config load error, still serving with no config loaded" in serve.proc.log_text()
    assert serve.metric("ratekeeper_config_loaded") == 0
