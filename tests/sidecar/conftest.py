"""In-process sidecars on loopback, and the reference server they are compared with."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.ratelimit.v3 import rls_pb2_grpc

from ratekeeper.server.options import with_options
from ratekeeper.server.settings import ServerSettings
from ratekeeper.sidecar.app import Sidecar, SidecarOptions

#: The example config shipped with the project.
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "config"
#: A server address nothing listens on (reports fail at once).
NOWHERE = "127.0.0.1:9"


@dataclass
class RunningSidecar:
    sidecar: Sidecar
    stub: Any
    channel: grpc.aio.Channel


StartSidecar = Callable[..., Awaitable[RunningSidecar]]


@pytest.fixture
async def sidecar() -> AsyncIterator[StartSidecar]:
    """``await sidecar(servers=..., clock=..., target=..., **settings)`` on free ports."""
    started: list[RunningSidecar] = []

    async def start(
        servers: tuple[str, ...] = (NOWHERE,),
        clock: Callable[[], int] | None = None,
        target: str | None = None,
        report_interval: float = 0.1,
        **overrides: Any,
    ) -> RunningSidecar:
        values: dict[str, Any] = {"grpc_port": 0, "http_port": 0, "config": str(EXAMPLES)}
        settings = with_options(ServerSettings(), **(values | overrides))
        options = SidecarOptions(servers, report_interval=report_interval)
        sc = Sidecar(settings, options, clock or time.time_ns)
        await sc.start()
        channel = grpc.aio.insecure_channel(target or f"127.0.0.1:{sc.grpc_port}")
        running = RunningSidecar(sc, rls_pb2_grpc.RateLimitServiceStub(channel), channel)
        started.append(running)
        return running

    yield start
    for running in started:
        await running.channel.close()
        await running.sidecar.stop(0)
