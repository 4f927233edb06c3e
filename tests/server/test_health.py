"""gRPC health (grpc.health.v1) under "" and "ratelimit", over real loopback."""

from __future__ import annotations

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ratekeeper.config import PolicyTree
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


@pytest.mark.parametrize(("required", "empty_status"), [(False, _SERVING), (True, _NOT_SERVING)])
async def test_a_config_with_no_domain_serves_unless_one_is_required(
    serve: Start, required: bool, empty_status: int
) -> None:
    """As the reference's HEALTHY_WITH_AT_LEAST_ONE_CONFIG_LOADED (default off: serve)."""
    running = await serve(CONFIG, healthy_with_at_least_one_config_loaded=required)
    stub = health_pb2_grpc.HealthStub(running.channel)
    request = health_pb2.HealthCheckRequest(service="ratelimit")
    assert (await stub.Check(request)).status == _SERVING
    components = running.server.components
    loaded = components.policy.policy
    components.policy.policy = PolicyTree.from_specs([])  # a reload that leaves no domain
    await components.health.refresh()
    assert (await stub.Check(request)).status == empty_status
    components.policy.policy = loaded
    await components.health.refresh()
    assert (await stub.Check(request)).status == _SERVING
