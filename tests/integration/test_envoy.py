"""Real Envoy → ratekeeper serve (Envoy RLS over gRPC) → upstream, end to end.

One server and one Envoy serve the whole module (each test uses its own users, so tests do not
share buckets); the fail-open test runs its own pair because it stops the server. Limits are
3/minute token buckets: no token refills within a test, so counts are exact.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from ratekeeper.testing.envoy_proxy import EnvoyProxy, Route, envoy_proxy, upstream_http
from ratekeeper.testing.server_process import RatekeeperServer, ratekeeper_server

pytestmark = pytest.mark.integration

DOMAIN = "edge"
POLICY = f"""\
domain: {DOMAIN}
descriptors:
  - key: route
    value: users
    descriptors:
      - key: user
        rate_limit: {{unit: minute, requests_per_unit: 3}}
  - key: route
    value: shadow
    shadow_mode: true
    rate_limit: {{unit: minute, requests_per_unit: 1}}
  - key: route
    value: shared
    rate_limit: {{unit: minute, requests_per_unit: 3}}
    descriptors:
      - key: user
        rate_limit: {{unit: minute, requests_per_unit: 10}}
"""


def _route(name: str) -> dict[str, dict[str, str]]:
    return {"generic_key": {"descriptor_key": "route", "descriptor_value": name}}


_USER = {"request_headers": {"header_name": "x-user", "descriptor_key": "user"}}

#: /users sends (route=users, user=<x-user>), and nothing without the header; /shadow sends
#: (route=shadow); /shared sends two descriptors, (route=shared) and (route=shared, user=...);
#: every other path has no rate limit.
ROUTES = (
    Route("/users", [[_route("users"), _USER]]),
    Route("/shadow", [[_route("shadow")]]),
    Route("/shared", [[_route("shared")], [_route("shared"), _USER]]),
    Route("/"),
)

#: Envoy's per-cluster counters of RLS answers (cluster.upstream.ratelimit.*).
RLS_ANSWERS = ("ratelimit.ok", "ratelimit.over_limit", "ratelimit.error")


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("policy")
    (path / "edge.yaml").write_text(POLICY)
    return path


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    with upstream_http() as port:
        yield port


@pytest.fixture(scope="module")
def rls(policy_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RatekeeperServer]:
    with ratekeeper_server(policy_dir, tmp_path_factory.mktemp("rls-logs")) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(
    rls: RatekeeperServer, upstream: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EnvoyProxy]:
    with _proxy_to(rls, upstream, tmp_path_factory.mktemp("envoy-logs")) as envoy:
        yield envoy


@contextlib.contextmanager
def _proxy_to(
    rls: RatekeeperServer, upstream: int, logs: Path, *, uds: Path | None = None
) -> Iterator[EnvoyProxy]:
    """Envoy in front of ``upstream`` calling ``rls`` (on its unix socket ``uds`` if given), its
    RLS connection already open."""
    where = uds or rls.grpc_port
    with envoy_proxy(
        rls=where, upstream_port=upstream, domain=DOMAIN, routes=ROUTES, log_dir=logs
    ) as envoy:
        # Envoy connects to the RLS on the first call; make that call here, on a user of its
        # own, so no test pays for (or times out on) the HTTP/2 handshake.
        assert envoy.get("/users", {"x-user": "warm-up"})[0] == 200
        yield envoy


def _as(proxy: EnvoyProxy, user: str, times: int) -> list[tuple[int, Mapping[str, str]]]:
    return [proxy.get("/users", {"x-user": user}) for _ in range(times)]


def _rls_calls(proxy: EnvoyProxy) -> int:
    return sum(proxy.counter(answer) for answer in RLS_ANSWERS)


def test_under_the_limit_passes_then_429_with_x_envoy_ratelimited(proxy: EnvoyProxy) -> None:
    answers = _as(proxy, "alice", 5)
    assert [status for status, _ in answers] == [200, 200, 200, 429, 429]
    assert [h.get("x-envoy-ratelimited") for _, h in answers] == [None] * 3 + ["true"] * 2


def test_draft_03_ratelimit_headers_come_back(proxy: EnvoyProxy) -> None:
    answers = _as(proxy, "hana", 4)
    for _, headers in answers:
        # "3, 3;w=60": the limit, then the quota policy (3 per 60-second window).
        assert headers["x-ratelimit-limit"] == "3, 3;w=60"
        assert 0 <= int(headers["x-ratelimit-reset"]) <= 60
    assert [h["x-ratelimit-remaining"] for _, h in answers] == ["2", "1", "0", "0"]


def test_each_x_user_value_gets_its_own_limit(proxy: EnvoyProxy) -> None:
    assert [status for status, _ in _as(proxy, "bob", 4)] == [200, 200, 200, 429]
    status, headers = proxy.get("/users", {"x-user": "carol"})
    assert (status, headers["x-ratelimit-remaining"]) == (200, "2")
    assert _as(proxy, "bob", 1)[0][0] == 429


def test_no_header_means_no_rls_call_and_the_request_passes(
    proxy: EnvoyProxy, rls: RatekeeperServer
) -> None:
    # The nested rule's counter: it moves only for a (route=users, user=...) descriptor.
    hits = {"domain": DOMAIN, "key": "edge.route_users.user"}
    calls, counted = _rls_calls(proxy), rls.metric("ratekeeper_rule_total_hits_total", **hits)
    for _ in range(5):
        status, headers = proxy.get("/users")
        assert status == 200
        assert "x-ratelimit-limit" not in headers
    assert _rls_calls(proxy) == calls
    assert rls.metric("ratekeeper_rule_total_hits_total", **hits) == counted
    # The same witnesses do move for a request that carries the header.
    assert _as(proxy, "dora", 1)[0][0] == 200
    assert _rls_calls(proxy) == calls + 1
    assert rls.metric("ratekeeper_rule_total_hits_total", **hits) == counted + 1


def test_a_shadow_mode_rule_never_returns_429(proxy: EnvoyProxy, rls: RatekeeperServer) -> None:
    rule = {"domain": DOMAIN, "key": "edge.route_shadow"}
    shadowed = rls.metric("ratekeeper_rule_shadow_mode_total", **rule)
    answers = [proxy.get("/shadow") for _ in range(4)]
    assert [status for status, _ in answers] == [200] * 4
    assert all("x-envoy-ratelimited" not in headers for _, headers in answers)
    # The rule was evaluated (1/minute): the three requests past it were over, and let through.
    assert rls.metric("ratekeeper_rule_shadow_mode_total", **rule) == shadowed + 3


def test_two_descriptors_in_one_request_are_each_counted(proxy: EnvoyProxy) -> None:
    # Every user is far under its own 10/minute, but the route-wide descriptor allows 3 in all:
    # the fourth user is refused by it alone.
    statuses = [proxy.get("/shared", {"x-user": f"guest-{n}"})[0] for n in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_envoy_fails_open_when_the_service_is_down(
    policy_dir: Path, upstream: int, tmp_path: Path
) -> None:
    with (
        ratekeeper_server(policy_dir, tmp_path, name="doomed") as rls,
        _proxy_to(rls, upstream, tmp_path) as proxy,
    ):
        assert [status for status, _ in _as(proxy, "erin", 4)] == [200, 200, 200, 429]
        rls.process.stop()
        answers = _as(proxy, "erin", 2)
        assert [status for status, _ in answers] == [200, 200]
        assert all("x-envoy-ratelimited" not in headers for _, headers in answers)
        assert proxy.counter("ratelimit.failure_mode_allowed") == 2


def test_envoy_reaches_the_service_over_a_unix_socket(
    policy_dir: Path, upstream: int, tmp_path: Path
) -> None:
    # A short path: unix socket paths are limited to about 100 bytes, and tmp_path is long.
    with tempfile.TemporaryDirectory(prefix="rk-") as short:
        socket_path = Path(short) / "rls.sock"
        env = {"RATEKEEPER_GRPC_UDS": str(socket_path)}
        with (
            ratekeeper_server(policy_dir, tmp_path, name="uds", env=env) as rls,
            _proxy_to(rls, upstream, tmp_path, uds=socket_path) as proxy,
        ):
            assert [status for status, _ in _as(proxy, "uma", 4)] == [200, 200, 200, 429]
            assert proxy.counter("ratelimit.over_limit") >= 1
