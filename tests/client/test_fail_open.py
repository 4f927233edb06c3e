"""Fail-open is loud: bad addresses fail at construction; dead servers show in logs, ``ready``,
``stats``, ``servers`` and (when registered) Prometheus metrics."""

from __future__ import annotations

import logging
import time

import pytest
from prometheus_client import CollectorRegistry

import ratekeeper
import ratekeeper.aio
from ratekeeper import Limiter
from ratekeeper.core.slices import Assignment, Generation
from ratekeeper.transport.addresses import check_address

from .conftest import ReportServer


@pytest.mark.parametrize(
    "address",
    ["", "localhost", "localhost:", ":8081", "host:port", "host:0", "host:70000", "a b:1",
     " host:1", "::1:8081", "[::1:8081", "unix:", 8081],
)  # fmt: skip
def test_a_malformed_address_is_a_clear_error_at_construction(address: object) -> None:
    with pytest.raises(ValueError, match=r"server address|a string|servers is"):
        Limiter(address)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ratekeeper.aio.Limiter(["127.0.0.1:1", address])  # type: ignore[list-item]


def test_addresses_gRPC_accepts_pass() -> None:
    for address in [
        "127.0.0.1:8081",
        "rk.svc:80",
        "[::1]:8081",
        "unix:/tmp/rk.sock",
        "dns:///rk:1",
    ]:
        assert check_address(address) == address
    with pytest.raises(ValueError, match="bad:x"):
        Limiter(Assignment(Generation(), (0,), ("bad:x",)))


def test_a_dead_server_is_logged_named_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "ratekeeper")
    registry = CollectorRegistry()
    with Limiter("127.0.0.1:9", limit="100/s", report_interval=0.02, timeout=0.01) as lim:
        lim.register_metrics(registry)
        deadline = time.monotonic() + 10
        while lim.stats.failed < 5 and time.monotonic() < deadline:
            lim.allow("k")
            time.sleep(0.01)
        assert not lim.ready
        health = lim.servers["127.0.0.1:9"]
        assert health.failed >= 5
        assert health.answered == 0
        assert health.last_error is not None
        assert "UNAVAILABLE" in health.last_error
        assert lim.stats.admitted_failing_open > 0
        assert registry.get_sample_value("ratekeeper_client_ready", {"client": lim.client_id}) == 0
        failed = registry.get_sample_value(
            "ratekeeper_client_reports_total",
            {"client": lim.client_id, "server": "127.0.0.1:9", "result": "failed"},
        )
        assert failed is not None
        assert failed >= 5
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # rate-limited
    assert "127.0.0.1:9" in warnings[0]
    assert "UNAVAILABLE" in warnings[0]
    # closing took the metrics away
    assert registry.get_sample_value("ratekeeper_client_ready", {"client": lim.client_id}) is None


def test_a_live_server_makes_the_limiter_ready(report_server: ReportServer) -> None:
    registry = CollectorRegistry()
    with Limiter(report_server.address, limit="1/s", report_interval=0.02) as lim:
        lim.register_metrics(registry)
        assert not lim.ready  # nothing heard yet
        deadline = time.monotonic() + 10
        while not lim.ready and time.monotonic() < deadline:
            time.sleep(0.01)  # no traffic: the first cycle probes the server
        assert lim.ready
        lim.allow("k")
        lim.allow("k")  # rejected locally: 1/s
        lim.flush()
        labels = {"client": lim.client_id}
        assert registry.get_sample_value("ratekeeper_client_ready", labels) == 1
        assert registry.get_sample_value("ratekeeper_client_keys_tracked", labels) == 1
        # the timeout (half the interval), or longer while a round trip on this machine was
        deadline_s = registry.get_sample_value("ratekeeper_client_report_deadline_seconds", labels)
        assert deadline_s is not None
        assert 0.01 <= deadline_s <= 0.02
        assert lim.stats.failed == 0
        assert lim.stats.answered >= 2


def test_the_public_surface_is_the_documented_api() -> None:
    """No state-machine methods on the Limiter: it holds its machine."""
    documented = {
        "acquire", "allow", "client_id", "close", "flush", "limit", "ready",
        "register_metrics", "servers", "start", "stats", "wait_ready",
    }  # fmt: skip
    assert {n for n in dir(Limiter) if not n.startswith("_")} == documented
    assert {n for n in dir(ratekeeper.aio.Limiter) if not n.startswith("_")} == documented
