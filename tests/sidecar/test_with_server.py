"""Sidecars reporting to a real ``ratekeeper serve`` process: one limit held across two of
them, and every call still answered (locally, fail open) once the server is gone.

The bound asserted (docs/envoy.md, sidecar section): over a run of ``T`` seconds against a
token bucket of rate ``r`` and burst ``b``, ``n`` sidecars admit at most
``r·T + b + n·r·(interval + timeout)``: the server's bucket goes into debt for whatever was
admitted and rejects until refill repays it, so what escapes it is what the sidecars admit on
local state alone before their next report is answered, each at most the whole rate locally.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from envoy.service.ratelimit.v3 import rls_pb2

from ratekeeper.sidecar.app import DEGRADED_HEADER
from ratekeeper.testing.server_process import ratekeeper_server
from tests.server.conftest import descriptor
from tests.sidecar.conftest import StartSidecar

pytestmark = pytest.mark.integration

RATE, BURST = 20, 20
CONFIG = f"""
domain: shared
descriptors:
  - key: k
    rate_limit: {{unit: second, requests_per_unit: {RATE}}}
"""
REQUEST = rls_pb2.RateLimitRequest(domain="shared", descriptors=[descriptor(("k", "v"))])
INTERVAL, TIMEOUT = 0.1, 0.05


async def _hammer(stub: Any, per_second: float, seconds: float) -> tuple[int, int]:
    """Calls at ``per_second`` for ``seconds``; (admitted, calls)."""
    admitted = calls = 0
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        answer = await stub.ShouldRateLimit(REQUEST)
        calls += 1
        admitted += answer.overall_code == rls_pb2.RateLimitResponse.OK
        await asyncio.sleep(max(0.0, calls / per_second - elapsed))
    return admitted, calls


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    path.mkdir()
    (path / "shared.yaml").write_text(CONFIG)
    return path


async def test_two_sidecars_hold_one_limit(
    sidecar: StartSidecar, config_dir: Path, tmp_path: Path
) -> None:
    seconds = 6.0
    with ratekeeper_server(config_dir, tmp_path / "logs") as server:
        a, b = [
            await sidecar(servers=(server.grpc_target,), config=str(config_dir)) for _ in range(2)
        ]
        results = await asyncio.gather(
            _hammer(a.stub, 5 * RATE, seconds), _hammer(b.stub, 5 * RATE, seconds)
        )
        admitted = sum(r[0] for r in results)
        calls = sum(r[1] for r in results)
        assert a.sidecar.reporter.machine.stats.answered > 0
    policy = RATE * seconds + BURST
    bound = policy + 2 * RATE * (INTERVAL + TIMEOUT)
    print(f"two sidecars: {calls} calls, {admitted} admitted, policy {policy}, bound {bound}")
    assert calls >= 6 * RATE * seconds  # the load really was several times the limit
    assert 0.8 * policy <= admitted <= bound


async def test_fail_open_once_the_server_is_stopped(
    sidecar: StartSidecar, config_dir: Path, tmp_path: Path
) -> None:
    with ratekeeper_server(config_dir, tmp_path / "logs") as server:
        running = await sidecar(servers=(server.grpc_target,), config=str(config_dir))
        await asyncio.sleep(0.3)  # answered at least once
        server.process.stop()
        admitted, calls = await _hammer(running.stub, 2 * RATE, 2.0)
    # every call answered, by the local limit alone: the burst, then the rate
    assert calls >= 2 * RATE
    assert RATE <= admitted <= BURST + RATE * 2 + 2
    await asyncio.sleep(0.5)  # enough failed reports in a row to call the server unreachable
    url = f"http://127.0.0.1:{running.sidecar.http_port}/healthcheck"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        assert response.headers[DEGRADED_HEADER] == "servers-unreachable"
