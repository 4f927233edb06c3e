"""The sidecar over loopback gRPC: the server's answers, from local state alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from ratekeeper.server.app import Replica, build
from ratekeeper.server.options import with_options
from ratekeeper.server.settings import ServerSettings
from ratekeeper.sidecar.app import DEGRADED_HEADER
from ratekeeper.testing.clock import ManualClock
from tests.server.conftest import descriptor
from tests.sidecar.conftest import EXAMPLES, StartSidecar

#: Requests against the shipped example config, one per behaviour it shows. Not ``search``: a
#: sliding window, which the sidecar holds to a token bucket of the same rate (the local
#: limiter's one algorithm; the server stays exact for it once the counts are reported).
REQUESTS: list[tuple[str, list[Any], int]] = [
    ("rl", [descriptor(("remote_address", "10.0.0.1"))], 0),
    ("rl", [descriptor(("route", "root"), ("user", "alice"))], 0),
    ("rl", [descriptor(("route", "root"), ("user", "ops"))], 0),
    ("rl", [descriptor(("path", "/api/a"))], 40),
    ("rl", [descriptor(("path", "/api/b"))], 0),
    ("rl", [descriptor(("path", "/static/x.png"))], 20),
    ("rl", [descriptor(("client", "new-partner"))], 0),
    ("rl", [descriptor(("tenant", "acme")), descriptor(("tier", "premium"))], 0),
    ("rl", [descriptor(("source_cluster", "internal"))], 0),
    ("rl", [descriptor(("unknown", "x"))], 0),
    ("api", [descriptor(("api_key", "k1"))], 3),
    ("api", [descriptor(("export", "e"))], 0),
    ("api", [descriptor(("login", "bob"), hits=2)], 0),
    ("nodomain", [descriptor(("a", "b"))], 0),
]


def _request(domain: str, descriptors: list[Any], hits_addend: int) -> Any:
    return rls_pb2.RateLimitRequest(domain=domain, descriptors=descriptors, hits_addend=hits_addend)


async def test_answers_as_the_server_does_on_the_example_config(sidecar: StartSidecar) -> None:
    clock = ManualClock()
    headers = {"limit_response_headers_enabled": True}
    settings = with_options(
        ServerSettings(), grpc_port=0, http_port=0, config=str(EXAMPLES), **headers
    )
    server = Replica(build(settings, clock))
    await server.start()
    running = await sidecar(clock=clock, **headers)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    reference = rls_pb2_grpc.RateLimitServiceStub(channel)
    try:
        for round_ in range(8):
            for domain, descriptors, hits in REQUESTS:
                request = _request(domain, descriptors, hits)
                want = await reference.ShouldRateLimit(request)
                got = await running.stub.ShouldRateLimit(request)
                assert got == want, (round_, domain, descriptors)
            clock.advance(0.7)
    finally:
        await channel.close()
        await server.stop(0)


async def test_serves_a_unix_socket(sidecar: StartSidecar, tmp_path: Path) -> None:
    path = tmp_path / "rls.sock"
    running = await sidecar(grpc_uds=str(path), target=f"unix:{path}")
    request = _request("rl", [descriptor(("route", "root"), ("user", "u"))], 0)
    codes = [(await running.stub.ShouldRateLimit(request)).overall_code for _ in range(4)]
    ok, over = rls_pb2.RateLimitResponse.OK, rls_pb2.RateLimitResponse.OVER_LIMIT
    assert codes == [ok, ok, ok, over]


async def test_healthcheck_names_the_degraded_state(sidecar: StartSidecar) -> None:
    running = await sidecar()  # its server is nowhere: every call answered locally
    url = f"http://127.0.0.1:{running.sidecar.http_port}/healthcheck"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        assert response.headers[DEGRADED_HEADER] == "servers-unreachable"
        assert (await response.text()).startswith("DEGRADED")
