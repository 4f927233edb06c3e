"""The three architectures of the seed, as data, and the decision each client makes.

An :class:`Architecture` says which processes the runner starts (Redis or not, the service's
flags) and which *decider* each simulated client uses. A decider is what an application would
call on its request path: ``decide(key) -> admitted``. The decider times exactly that call.

* ``rls``: an Envoy RLS ``ShouldRateLimit`` over gRPC, one per request, that the request waits
  for; failing open on errors as Envoy's ``ratelimit`` filter does by default
  (``failure_mode_deny: false``). Calls are issued when requests arrive, without waiting for
  earlier ones (open loop), as a proxy serving concurrent requests does.
* ``limiter``: ``ratekeeper.Limiter`` deciding locally and reporting in the background.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ratekeeper.testing.procs import ToolMissing
from ratekeeper.testing.redis_server import redis_binary

__all__ = [
    "ARCHITECTURES",
    "DOMAIN",
    "KEY_NAME",
    "Architecture",
    "Decider",
    "DeciderFactory",
    "Done",
    "make_decider",
    "unavailable_reason",
]

#: The rate limit domain and descriptor key every shape's keys live under.
DOMAIN = "bench"
KEY_NAME = "key"

#: ``done(admitted, error, latency_ns)``: how a decision ended and how long the call took.
Done = Callable[[bool, bool, int], None]
#: ``decide(key_value, done)``: start one decision; ``done`` is called exactly once, possibly
#: from another thread, once it is known. The decider times the call itself.
Decider = Callable[[str, Done], None]
#: ``(target, policy config path, client_id) -> (decide, close)``.
DeciderFactory = Callable[[str, Path, str], tuple[Decider, Callable[[], None]]]


@dataclass(frozen=True, slots=True)
class Architecture:
    """One corner of the design space, as the runner starts and drives it."""

    #: Short label used in tables and plots.
    name: str
    #: What it is, for the table's legend.
    title: str
    #: Counters live in a real redis-server (the service reaches it through the network model).
    redis: bool
    #: Extra ``ratekeeper serve`` flags.
    serve_args: tuple[str, ...]
    #: The client's decider (a key of ``_DECIDERS``).
    client: str
    #: Servers: 1 is ``ratekeeper serve`` alone; more is a cluster (an assigner and that many
    #: ``serve --join`` members; clients are given member 0's address).
    servers: int = 1


ARCHITECTURES: dict[str, Architecture] = {
    "A": Architecture(
        "A",
        "legacy: sync RLS call per request → service → Redis fixed window",
        redis=True,
        # The legacy service waits for Redis (envoyproxy/ratelimit's REDIS_TIMEOUT is 10 s):
        # with our 50 ms default, emulated cloud latency trips the store and the service
        # answers OK to everything, which would measure fail-open, not the legacy design.
        serve_args=("--algorithm", "fixed_window", "--redis-timeout", "1"),
        client="rls",
    ),
    "B": Architecture(
        "B",
        "sync in-memory: sync RLS call per request → service, in-memory token buckets",
        redis=False,
        serve_args=(),
        client="rls",
    ),
    "C": Architecture(
        "C",
        "batch reporting: Limiter decides locally, reports every 100 ms",
        redis=False,
        serve_args=(),
        client="limiter",
    ),
    "B3": Architecture(
        "B3",
        "B on a cluster of 3: RLS calls to one member, forwarded to each key's owner",
        redis=False,
        serve_args=(),
        client="rls",
        servers=3,
    ),
    "C3": Architecture(
        "C3",
        "C on a cluster of 3: each Limiter routes its reports to each key's owner",
        redis=False,
        serve_args=(),
        client="limiter",
        servers=3,
    ),
}


def _rls(target: str, config: Path, client_id: str) -> tuple[Decider, Callable[[], None]]:
    import grpc
    from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
    from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

    from ratekeeper.transport.channels import open_channel

    channel = open_channel(target)
    grpc.channel_ready_future(channel).result(timeout=30)
    call = rls_pb2_grpc.RateLimitServiceStub(channel).ShouldRateLimit
    over = rls_pb2.RateLimitResponse.OVER_LIMIT
    requests: dict[str, object] = {}

    def decide(key: str, done: Done) -> None:
        request = requests.get(key)
        if request is None:  # built once per key, before the first timed call
            entry = ratelimit_pb2.RateLimitDescriptor.Entry(key=KEY_NAME, value=key)
            descriptor = ratelimit_pb2.RateLimitDescriptor(entries=[entry])
            request = requests[key] = rls_pb2.RateLimitRequest(
                domain=DOMAIN, descriptors=[descriptor], hits_addend=1
            )
        began = time.perf_counter_ns()

        def finished(future: grpc.Future) -> None:
            elapsed = time.perf_counter_ns() - began
            try:
                done(future.result().overall_code != over, False, elapsed)
            except grpc.RpcError:  # fail open, as Envoy's filter does by default
                done(True, True, elapsed)

        call.future(request, timeout=2.0).add_done_callback(finished)

    return decide, channel.close


def _limiter(target: str, config: Path, client_id: str) -> tuple[Decider, Callable[[], None]]:
    from ratekeeper.client.limiter import Limiter

    # The same policy file the service loads, so client and server agree on every limit.
    limiter = Limiter(target, domain=DOMAIN, policies=config, client_id=client_id)
    allow, timer = limiter.allow, time.perf_counter_ns

    def decide(key: str, done: Done) -> None:
        began = timer()
        admitted = allow(key)
        done(admitted, False, timer() - began)

    return decide, limiter.close


_DECIDERS: dict[str, DeciderFactory] = {"rls": _rls, "limiter": _limiter}


def make_decider(
    arch: Architecture, target: str, config: Path, client_id: str
) -> tuple[Decider, Callable[[], None]]:
    """A connected decider for one simulated client of ``arch``."""
    return _DECIDERS[arch.client](target, config, client_id)


def unavailable_reason(arch: Architecture) -> str | None:
    """Why ``arch`` cannot run on this machine or at this commit (None: it can)."""
    if arch.redis:
        try:
            redis_binary()
        except ToolMissing as exc:
            return str(exc)
    if arch.client == "limiter" and importlib.util.find_spec("ratekeeper.client.limiter") is None:
        return "ratekeeper.Limiter (the batch-reporting client) is missing"
    if importlib.util.find_spec("ratekeeper.cli.serve") is None:
        return "ratekeeper serve is missing"
    return None
