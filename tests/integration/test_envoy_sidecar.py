"""Real Envoy (ratelimit filter) → ``ratekeeper sidecar`` (unix socket) → ``ratekeeper serve``.

Each Envoy runs docs/envoy/ratelimit_sidecar.yaml itself, the file docs/envoy.md publishes,
with only its three port numbers and its socket path replaced: if the guide stops working, this
test fails. The policy has the shape of examples/config/rl.yaml (domain ``rl``, ``route=root``
then ``user``) with a per-second limit, so that a test sees the bucket refill.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ratekeeper.testing.envoy_guide import guide_envoy as envoy_guide
from ratekeeper.testing.envoy_guide import offer, ratelimit_config, sidecar_process
from ratekeeper.testing.envoy_proxy import upstream_http
from ratekeeper.testing.envoy_proxy import user_status as status
from ratekeeper.testing.procs import free_port
from ratekeeper.testing.server_process import ratekeeper_server

pytestmark = pytest.mark.integration

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "envoy" / "ratelimit_sidecar.yaml"
RATE = 10  # per second; the burst is the same
POLICY = f"""\
domain: rl
descriptors:
  - key: route
    value: root
    descriptors:
      - key: user
        rate_limit: {{unit: second, requests_per_unit: {RATE}}}
"""
#: The sidecar's report interval and its report timeout (half of it), in seconds.
INTERVAL, TIMEOUT = 0.1, 0.05
#: Seconds two Envoys offer 10× the limit (docs/envoy.md reports a 30 s run as well).
DURATION_S = 8.0


@contextlib.contextmanager
def sidecar(
    server_grpc: int, policy: Path, logs: Path, name: str, grpc_port: int = 0
) -> Iterator[Path]:
    """``ratekeeper sidecar`` on a unix socket (and ``grpc_port``); yields the socket path."""
    target = f"127.0.0.1:{server_grpc}"
    with sidecar_process(target, policy, logs, name, grpc_port=grpc_port) as running:
        yield running.socket


@contextlib.contextmanager
def guide_envoy(socket: Path | int, upstream: int, logs: Path) -> Iterator[int]:
    ports = {"listen": free_port(), "admin": free_port(), "upstream": upstream}
    with envoy_guide(ratelimit_config(GUIDE, ports, socket), ports, logs, "envoy") as port:
        yield port


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    with upstream_http() as port:
        yield port


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy"
    path.mkdir()
    (path / "rl.yaml").write_text(POLICY)
    return path


def test_429_beyond_the_limit_then_recovery(upstream: int, policy: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with (
        ratekeeper_server(policy, logs, name="server") as server,
        sidecar(server.grpc_port, policy, logs, "sidecar") as socket,
        guide_envoy(socket, upstream, logs) as port,
    ):
        assert status(port, None) == 200  # no x-user: no descriptor, never limited
        burst = [status(port, "alice") for _ in range(3 * RATE)]
        assert 429 in burst, burst
        assert burst.count(200) >= RATE
        time.sleep(1.2)
        assert status(port, "alice") == 200


def test_over_tcp_as_the_guide_says(upstream: int, policy: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    grpc_port = free_port()
    with (
        ratekeeper_server(policy, logs, name="server") as server,
        sidecar(server.grpc_port, policy, logs, "sidecar", grpc_port),
        guide_envoy(grpc_port, upstream, logs) as port,
    ):
        burst = [status(port, "erin") for _ in range(3 * RATE)]
        assert 429 in burst, burst
        assert burst.count(200) >= RATE


def _offer(port: int, user: str, rate: float, until: float, admitted: list[int]) -> None:
    admitted[0] = offer(port, user, rate, until)


def test_two_envoys_with_their_sidecars_share_one_limit(
    upstream: int, policy: Path, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(ratekeeper_server(policy, logs, name="server"))
        ports = [
            stack.enter_context(
                guide_envoy(
                    stack.enter_context(sidecar(server.grpc_port, policy, logs, f"sidecar{i}")),
                    upstream,
                    logs,
                )
            )
            for i in range(2)
        ]
        duration, offered = DURATION_S, 5 * RATE  # each Envoy offers 5×: 10× together
        counts = [[0], [0]]
        began = time.monotonic()
        threads = [
            threading.Thread(target=_offer, args=(p, "shared", offered, began + duration, c))
            for p, c in zip(ports, counts, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - began
    admitted = counts[0][0] + counts[1][0]
    policy_allows = RATE + RATE * elapsed
    bound = policy_allows + 2 * RATE * (INTERVAL + TIMEOUT)  # docs/envoy.md, sidecar section
    print(f"sidecar two Envoys: admitted {admitted} {counts}, policy {policy_allows:.0f}")
    assert admitted <= bound
    assert admitted >= 0.8 * RATE * elapsed
    assert min(counts[0][0], counts[1][0]) > 0


def test_fail_open(upstream: int, policy: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    with (
        ratekeeper_server(policy, logs, name="server") as server,
        contextlib.ExitStack() as stack,
    ):
        socket = stack.enter_context(sidecar(server.grpc_port, policy, logs, "sidecar"))
        port = stack.enter_context(guide_envoy(socket, upstream, logs))
        assert status(port, "bob") == 200
        server.process.stop()
        # the server away: the sidecar still answers, from its local limit alone
        answers = [status(port, "carol") for _ in range(3 * RATE)]
        assert answers.count(200) >= RATE
        assert 429 in answers
        stack.close()  # the sidecar gone too: Envoy allows (failure_mode_deny: false)
        port_alone = stack.enter_context(guide_envoy(socket, upstream, logs))
        assert [status(port_alone, "dave") for _ in range(RATE)] == [200] * RATE
