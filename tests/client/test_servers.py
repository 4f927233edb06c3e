"""The client against real ``ratekeeper serve`` processes: fail open, one report per server.

(a) With its server stopped, or hanging (a socket that accepts and never answers), a Limiter
    decides at the same latency as with a live one: nothing on the decision path waits on the
    network, and it fails open.
(b) With keys spread over three servers (an assignment splitting the hash space three ways),
    a client sends at most one report per server per cycle, whatever its request rate: counted
    on the servers, through their ``/metrics``.
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterator

import pytest
from integration.procs import ManagedProcess, free_port, http_ok, start
from integration.services import RatekeeperServer

from ratekeeper import Limiter
from ratekeeper.core.slices import HASH_SPACE, Assignment, Generation

pytestmark = pytest.mark.integration

CONFIG = """\
domain: default
descriptors:
  - key: key
    rate_limit:
      unit: second
      requests_per_unit: 1000000
"""
REPORTS = "ratekeeper_call_seconds_count"


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RatekeeperServer]]:
    """Three ``ratekeeper serve`` processes, started in parallel (each takes seconds to import)."""
    root = tmp_path_factory.mktemp("servers")
    (root / "config.yaml").write_text(CONFIG)
    with contextlib.ExitStack() as stack:
        started: list[tuple[ManagedProcess, int, int]] = []
        for i in range(3):
            grpc_port, http_port = free_port(), free_port()
            argv = [sys.executable, "-m", "ratekeeper.cli.main", "serve"]
            argv += ["--config", str(root / "config.yaml")]
            argv += ["--grpc-port", str(grpc_port), "--http-port", str(http_port)]
            proc = stack.enter_context(start(argv, name=f"rk{i}", log_dir=root))
            started.append((proc, grpc_port, http_port))
        for proc, _, http_port in started:
            proc.wait_ready(http_ok(http_port, "/healthcheck"), timeout=60)
        yield [RatekeeperServer(proc, g, h) for proc, g, h in started]


@contextlib.contextmanager
def hanging_server() -> Iterator[str]:
    """A listening socket that never accepts: connections open, no answer ever comes."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def allow_ns(lim: Limiter, calls: int) -> float:
    """Mean ns per ``allow`` over ``calls`` calls (all on one key)."""
    allow = lim.allow
    t0 = time.perf_counter_ns()
    for _ in range(calls):
        allow("k")
    return (time.perf_counter_ns() - t0) / calls


def test_decisions_do_not_wait_on_dead_or_hanging_servers(
    servers: list[RatekeeperServer],
) -> None:
    live_server = servers[0]
    dead = f"127.0.0.1:{free_port()}"
    with hanging_server() as hanging:
        limiters = {
            name: Limiter(address, limit="1000000/s", report_interval=0.05)
            for name, address in (("live", live_server.grpc_target), ("dead", dead),
                                  ("hanging", hanging))
        }  # fmt: skip
        try:
            for lim in limiters.values():
                assert lim.allow("k")
            time.sleep(0.3)  # a few cycles: the dead and hanging reporters are failing by now
            samples: dict[str, list[float]] = {name: [] for name in limiters}
            for _ in range(15):  # interleaved, so machine noise hits all three alike
                for name, lim in limiters.items():
                    samples[name].append(allow_ns(lim, 2000))
            medians = {name: statistics.median(s) for name, s in samples.items()}
            for name in ("dead", "hanging"):
                assert medians[name] <= 1.5 * medians["live"] + 200, medians
                assert limiters[name].stats.failed > 0
                assert limiters[name].stats.answered == 0
            assert limiters["live"].stats.answered > 0
            assert all(m < 5_000 for m in medians.values()), medians
        finally:
            for lim in limiters.values():
                lim.close()
    print("allow() median ns:", {n: round(m) for n, m in medians.items()})


def test_at_most_one_report_per_server_per_cycle(servers: list[RatekeeperServer]) -> None:
    third = HASH_SPACE // 3
    assignment = Assignment(
        Generation(1, 1), (0, third, 2 * third), tuple(s.grpc_target for s in servers)
    )
    before = [s.metric(REPORTS, call="report") for s in servers]
    hits = [0, 0]
    lim = Limiter(assignment, report_interval=0.1)
    stop = threading.Event()

    def hammer(i: int) -> None:
        n = 0
        while not stop.is_set():
            for k in range(300):
                lim.allow(f"user{k}")
            n += 300
        hits[i] = n

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    stop.set()
    for t in threads:
        t.join()
    lim.close()
    cycles = lim.stats.cycles
    reports = [s.metric(REPORTS, call="report") - b for s, b in zip(servers, before, strict=True)]
    print(f"{sum(hits)} hits, {cycles} cycles, reports per server {reports}")
    assert sum(hits) > 100 * sum(reports)  # the request rate is far above the report rate
    for count in reports:
        assert 1 <= count <= cycles
    # every call the client made, answered or not (a loaded machine times some out): still <= 3
    assert lim.stats.answered + lim.stats.failed <= 3 * cycles
