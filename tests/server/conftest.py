"""In-process servers on loopback: real gRPC and HTTP listeners, a hand-driven clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from ratekeeper.assigner.server import AssignerService, running_assigner
from ratekeeper.server.app import Replica, build
from ratekeeper.server.options import with_options
from ratekeeper.server.settings import ServerSettings
from ratekeeper.testing.clock import ManualClock

from .joining import ASSIGNER, Join, joining

#: The rules the RLS tests run against, one per behaviour.
CONFIG = """
domain: test
descriptors:
  - key: key1
    rate_limit: {unit: minute, requests_per_unit: 2}
  - key: key2
    rate_limit: {unit: minute, requests_per_unit: 5}
  - key: window
    rate_limit: {unit: minute, requests_per_unit: 2, algorithm: fixed_window}
  - key: named
    rate_limit: {unit: minute, requests_per_unit: 1, name: base}
  - key: bigger
    rate_limit: {unit: minute, requests_per_unit: 5, name: bigger, replaces: [{name: base}]}
  - key: unlimited
    rate_limit: {unlimited: true}
  - key: white
  - key: shadow
    shadow_mode: true
    rate_limit: {unit: minute, requests_per_unit: 1}
  - key: block
    rate_limit: {unit: second, requests_per_unit: 0}
  - key: quota_a
    quota_mode: true
    rate_limit: {unit: minute, requests_per_unit: 1}
  - key: quota_b
    quota_mode: true
    rate_limit: {unit: minute, requests_per_unit: 5}
  - key: multi
    rate_limits:
      - {unit: second, requests_per_unit: 2}
      - {unit: minute, requests_per_unit: 3}
"""


@dataclass
class Running:
    """One started server and clients for it."""

    server: Replica
    clock: ManualClock
    stub: Any
    channel: grpc.aio.Channel
    http: aiohttp.ClientSession
    config_dir: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}"

    async def ask(self, domain: str, *descriptors: Any, hits_addend: int = 0) -> Any:
        """``ShouldRateLimit`` over gRPC; descriptors as built by :func:`descriptor`."""
        request = rls_pb2.RateLimitRequest(
            domain=domain, descriptors=list(descriptors), hits_addend=hits_addend
        )
        return await self.stub.ShouldRateLimit(request)


def descriptor(*entries: tuple[str, str], hits: int | None = None, limit: Any = None) -> Any:
    """A request descriptor; ``hits`` sets its own hits_addend, ``limit`` an override."""
    d = ratelimit_pb2.RateLimitDescriptor(
        entries=[ratelimit_pb2.RateLimitDescriptor.Entry(key=k, value=v) for k, v in entries]
    )
    if hits is not None:
        d.hits_addend.value = hits
    if limit is not None:
        d.limit.CopyFrom(limit)
    return d


Start = Callable[..., Awaitable[Running]]


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Start]:
    """``await serve(yaml_text, **settings)`` starts a server on free loopback ports."""
    started: list[Running] = []

    async def start(config: str, *, more: Sequence[str] = (), **overrides: Any) -> Running:
        """``more``: further policy files (one domain each) beside ``config``."""
        config_dir = tmp_path / f"config{len(started)}"
        config_dir.mkdir()
        (config_dir / "test.yaml").write_text(config)
        for n, text in enumerate(more):
            (config_dir / f"more{n}.yaml").write_text(text)
        settings = with_options(
            ServerSettings(), grpc_port=0, http_port=0, config=str(config_dir), **overrides
        )
        clock = ManualClock()
        server = Replica(build(settings, clock))
        await server.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        running = Running(
            server,
            clock,
            rls_pb2_grpc.RateLimitServiceStub(channel),
            channel,
            aiohttp.ClientSession(),
            config_dir,
        )
        started.append(running)
        return running

    yield start
    for running in started:
        await running.http.close()
        await running.channel.close()
        await running.server.stop(0)


@pytest.fixture
async def assigner() -> AsyncIterator[AssignerService]:
    """A real assigner on loopback, with :data:`joining.ASSIGNER`'s timings."""
    async with running_assigner(ASSIGNER) as service:
        yield service


@pytest.fixture
async def join(tmp_path: Path) -> AsyncIterator[Join]:
    """``await join(address, **cluster fields)`` starts a server joining through ``address``."""
    async for start in joining(tmp_path):
        yield start
