"""A large report gets its answer with the default settings (issue 15, item 4).

With a fixed 50 ms deadline a report of 2,000 keys or more never got an answer: the server
took longer than that to apply it, the client gave up, and the resend timed out the same way.
A report's deadline now grows with its keys (``client.reports.report_timeout``). A real
``ratekeeper serve`` process; the client knows nothing of the keys' limits, so every limit it
ends up with came in the server's answer.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import grpc
import pytest

from ratekeeper import Limiter
from ratekeeper.client.machine import LimiterMachine
from ratekeeper.client.options import LimiterOptions
from ratekeeper.client.reports import report_timeout
from ratekeeper.core.limits import Limit, Unit
from ratekeeper.proto.report import report_call
from ratekeeper.testing.server_process import RatekeeperServer, ratekeeper_server

KEYS = 5_000
CONFIG = """\
domain: large
descriptors:
  - key: key
    rate_limit: {unit: second, requests_per_unit: 1000}
"""
SERVER_LIMITS = (Limit(1000, Unit.SECOND),)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RatekeeperServer]:
    root = tmp_path_factory.mktemp("large")
    (root / "config").mkdir()
    (root / "config" / "large.yaml").write_text(CONFIG)
    with ratekeeper_server(root / "config", root / "logs") as running:
        yield running


def test_the_deadline_grows_with_the_report() -> None:
    base = LimiterMachine("127.0.0.1:1").timeout
    assert base == 0.05  # the default: half the default interval
    assert report_timeout(base, 0) == base
    assert report_timeout(base, KEYS) > report_timeout(base, 100) > base


def test_a_5000_key_report_with_the_default_settings_gets_its_instructions(
    server: RatekeeperServer,
) -> None:
    machine = LimiterMachine(server.grpc_target, LimiterOptions(domain="large"))
    now = time.monotonic_ns()
    for i in range(KEYS):
        assert machine.decide(f"k{i}", 1, now).allowed
    (out,) = machine.collect(now)
    assert len(out.request.keys) == KEYS  # one report, not split over cycles
    with grpc.insecure_channel(server.grpc_target) as channel:
        answer = report_call(channel)(out.request, timeout=out.timeout)
    machine.answered(out.address, answer, time.monotonic_ns())
    assert machine.stats.answered == 1
    assert machine.stats.failed == 0
    assert all(st.limits == SERVER_LIMITS for st in machine.states.values())


def test_a_limiter_hit_on_5000_keys_at_once_gets_every_key_answered(
    server: RatekeeperServer,
) -> None:
    with Limiter(server.grpc_target, domain="large") as lim:
        for i in range(KEYS):
            assert lim.allow(f"k{i}")
        states = dict(lim._machine.states)  # a copy: idle keys are pruned from the table
        assert len(states) == KEYS
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if all(st.limits == SERVER_LIMITS for st in states.values()):
                break
            time.sleep(0.05)
        assert all(st.limits == SERVER_LIMITS for st in states.values())
        assert lim.stats.failed == 0
