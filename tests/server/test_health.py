"""gRPC health (grpc.health.v1) under "" and "ratelimit", over real loopback."""

from __future__ import annotations

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.server.conftest import Start

CONFIG = "domain: test\ndescriptors:\n  - key: k\n"
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.mark.parametrize("service", ["", "ratelimit"])
async def test_serving_then_not_serving_on_shutdown(serve: Start, service: str) -> None:
    running = await serve(CONFIG)
    stub = health_pb2_grpc.HealthStub(running.channel)
    request = health_pb2.HealthCheckRequest(service=service)
    assert (await stub.Check(request)).status == _SERVING
    await running.server.components.health.shutting_down()
    assert (await stub.Check(request)).status == _NOT_SERVING


async def test_watch_sees_the_change(serve: Start) -> None:
    running = await serve(CONFIG)
    stub = health_pb2_grpc.HealthStub(running.channel)
    call = stub.Watch(health_pb2.HealthCheckRequest(service="ratelimit"))
    assert (await call.read()).status == _SERVING
    await running.server.components.health.shutting_down()
    assert (await call.read()).status == _NOT_SERVING
    call.cancel()
