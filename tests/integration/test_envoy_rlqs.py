"""Real Envoy (rate_limit_quota filter) → ratekeeper serve (RLQS) → upstream, end to end.

Each Envoy runs docs/envoy/rate_limit_quota.yaml itself, the file docs/envoy.md publishes,
with only its four port numbers replaced: if the guide stops working, this test fails. The
policy has the shape of examples/config/rl.yaml (domain ``rl``, ``route=root`` then ``user``)
with a per-second limit, so that a test sees Envoy's token bucket refill.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ratekeeper.testing.envoy_guide import guide_envoy as envoy_guide
from ratekeeper.testing.envoy_guide import offer, rlqs_config
from ratekeeper.testing.envoy_proxy import envoy_on_file, upstream_http
from ratekeeper.testing.envoy_proxy import user_status as status
from ratekeeper.testing.procs import ManagedProcess, free_port, start
from ratekeeper.testing.server_process import (
    START_TIMEOUT_S,
    RatekeeperServer,
    metric_samples,
    ratekeeper_server,
    serve_argv,
    serving,
)

pytestmark = pytest.mark.integration

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "envoy" / "rate_limit_quota.yaml"
RATE = 5  # per second; the capacity is the same
POLICY = f"""\
domain: rl
descriptors:
  - key: route
    value: root
    descriptors:
      - key: user
        rate_limit: {{unit: second, requests_per_unit: {RATE}}}
"""
#: Envoy reports every 5 s; time for an answer to come back after the first request.
SETTLE_S = 1.0


@contextlib.contextmanager
def guide_envoy(grpc_port: int, upstream: int, log_dir: Path) -> Iterator[int]:
    """Envoy on the guide's file; yields its listener port."""
    ports = {
        "listen": free_port(),
        "admin": free_port(),
        "ratekeeper": grpc_port,
        "upstream": upstream,
    }
    with envoy_guide(rlqs_config(GUIDE, ports), ports, log_dir, "envoy-rlqs") as port:
        yield port


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    with upstream_http() as port:
        yield port


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("rlqs-logs")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, logs: Path) -> Iterator[RatekeeperServer]:
    policy = tmp_path_factory.mktemp("policy")
    (policy / "rl.yaml").write_text(POLICY)
    with ratekeeper_server(policy, logs, name="ratekeeper-rlqs") as running:
        yield running


@pytest.fixture(scope="module")
def envoys(server: RatekeeperServer, upstream: int, logs: Path) -> Iterator[tuple[int, int]]:
    with (
        guide_envoy(server.grpc_port, upstream, logs) as one,
        guide_envoy(server.grpc_port, upstream, logs) as two,
    ):
        yield one, two


def test_beyond_the_limit_envoy_answers_429_and_recovers_as_its_bucket_refills(
    envoys: tuple[int, int],
) -> None:
    port = envoys[0]
    assert status(port, None) == 200  # no x-user: no bucket, never limited
    assert status(port, "alice") == 200  # no assignment yet: allowed, reported at once
    time.sleep(SETTLE_S)
    began = time.monotonic()
    burst = [status(port, "alice") for _ in range(3 * RATE)]
    took = time.monotonic() - began
    assert 429 in burst, burst
    # The assignment's tokens (the capacity less the first request), plus Envoy's own refill
    # while the burst ran (a loaded machine makes it slow).
    assert RATE - 2 <= burst.count(200) <= RATE - 1 + RATE * took + 1, (burst, took)
    time.sleep(1.0)  # Envoy's bucket refills at RATE/s by itself: no round trip needed
    assert status(port, "alice") == 200


def _offer(port: int, user: str, rate: float, until: float, admitted: list[int]) -> None:
    admitted[0] = offer(port, user, rate, until)


def test_two_envoys_sharing_one_limit_admit_the_policy_within_the_documented_bound(
    envoys: tuple[int, int],
) -> None:
    duration, offered = 12.0, 5 * RATE  # each Envoy offers 5× the limit: 10× together
    counts = [[0], [0]]
    start_at = time.monotonic()
    until = start_at + duration
    threads = [
        threading.Thread(target=_offer, args=(port, "shared", offered, until, count))
        for port, count in zip(envoys, counts, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - start_at
    admitted = counts[0][0] + counts[1][0]
    policy = RATE + RATE * elapsed  # the bucket's capacity plus its refill
    # docs/envoy.md: admitted ≤ C + r·T + (s + 1)·(C + n), n Envoys, s sharer changes (here
    # one: the second Envoy joining the first).
    envoys_n, changes = 2, 1
    bound = policy + (changes + 1) * (RATE + envoys_n)
    print(
        f"RLQS two Envoys: admitted {admitted} ({counts}), policy {policy:.0f}, bound {bound:.0f}"
    )
    assert admitted <= bound
    assert admitted >= 0.8 * RATE * elapsed  # the limit is shared, not starved
    assert min(counts[0][0], counts[1][0]) > 0


def test_with_the_server_stopped_a_new_bucket_is_allowed(
    upstream: int, logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    policy = tmp_path_factory.mktemp("policy-stop")
    (policy / "rl.yaml").write_text(POLICY)
    with (
        ratekeeper_server(policy, logs, name="ratekeeper-rlqs-stop") as running,
        guide_envoy(running.grpc_port, upstream, logs) as port,
    ):
        assert status(port, "bob") == 200
        running.process.stop()
        # Fail open: a new bucket has no assignment, and no_assignment_behavior allows.
        assert [status(port, "carol") for _ in range(3 * RATE)] == [200] * (3 * RATE)


def _serve_on(
    grpc_port: int, http_port: int, policy: Path, logs: Path, name: str
) -> contextlib.AbstractContextManager[ManagedProcess]:
    """``ratekeeper serve`` on given ports (a restart must come back on the same gRPC port)."""
    argv = serve_argv(policy, grpc_port, http_port)
    return start(argv, name=name, log_dir=logs, ready=serving(http_port), timeout=START_TIMEOUT_S)


def test_after_a_server_restart_envoy_reconnects_and_is_limited_again(
    upstream: int, logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    policy = tmp_path_factory.mktemp("policy-restart")
    (policy / "rl.yaml").write_text(POLICY)
    grpc_port = free_port()
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(
            _serve_on(grpc_port, free_port(), policy, logs, "ratekeeper-rlqs-1")
        )
        port = stack.enter_context(guide_envoy(grpc_port, upstream, logs))
        assert status(port, "erin") == 200
        time.sleep(SETTLE_S)
        assert 429 in [status(port, "erin") for _ in range(3 * RATE)]
        first.stop()
        http_port = free_port()
        stack.enter_context(_serve_on(grpc_port, http_port, policy, logs, "ratekeeper-rlqs-2"))
        # Envoy reopens the stream on its next 5 s report, which re-subscribes every bucket it
        # holds; keep the bucket busy (an idle one is abandoned) until the new server has
        # answered a report and the limit bites.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            limited = 429 in [status(port, "erin") for _ in range(3 * RATE)]
            if limited and _reports_answered(http_port) > 0:
                break
            time.sleep(0.5)
        else:
            raise AssertionError("not limited by the restarted server within 20 s")


def _reports_answered(http_port: int) -> float:
    return sum(
        s.value
        for s in metric_samples(http_port)
        if s.name == "ratekeeper_call_seconds_count"
        and s.labels.get("call") == "StreamRateLimitQuotas"
    )


GENEROUS = POLICY.replace(f"requests_per_unit: {RATE}", "requests_per_unit: 1000000")


def _statuses(port: int, user: str, seconds: float) -> list[int]:
    until = time.monotonic() + seconds
    got = []
    while time.monotonic() < until:
        got.append(status(port, user))
    return got


def test_after_envoy_and_the_server_stall_together_a_generous_rule_denies_nothing(
    upstream: int, logs: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # docs/envoy.md, failures: a new bucket is debited ahead at its share's full rate; the
    # first pace step after both froze for 5 s debited the whole gap at once (5,000,000 under
    # a 1,000,000/s rule) and Envoy was answered DENY_ALL for ~3 s.
    policy = tmp_path_factory.mktemp("policy-stall")
    (policy / "rl.yaml").write_text(GENEROUS)
    ports = {"listen": free_port(), "admin": free_port(), "upstream": upstream}
    with ratekeeper_server(policy, logs, name="ratekeeper-rlqs-stall") as running:
        ports["ratekeeper"] = running.grpc_port
        config = rlqs_config(GUIDE, ports)
        with envoy_on_file(config, ports["listen"], ports["admin"], logs, "envoy-stall") as envoy:
            port = ports["listen"]
            before = _statuses(port, "frank", 1.0)  # subscribed: paced at 1,000,000/s
            for process in (envoy, running.process):
                process.pause()
            time.sleep(5.0)
            for process in (running.process, envoy):
                process.resume()
            # Envoy's overdue report goes out at once; its answer is what used to deny.
            after = _statuses(port, "frank", 5.0)
    assert set(before) == {200}, before
    assert after.count(429) == 0, (after.count(429), len(after))
