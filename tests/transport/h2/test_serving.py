"""The unix-socket gRPC server, called by grpc-core clients (``grpc.aio``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.server.health import ServingHealth
from ratekeeper.sidecar.methods import HEALTH_CHECK, health_check
from ratekeeper.transport.h2.serving import GrpcError, Method, UdsServer

Serve = Callable[[dict[bytes, Method]], Awaitable[grpc.aio.Channel]]


async def _echo(request: bytes) -> bytes:
    return request[::-1]


async def _suspends(request: bytes) -> bytes:
    await asyncio.sleep(0.01)
    await asyncio.sleep(0)
    return b"late:" + request


async def _refuses(request: bytes) -> bytes:
    raise GrpcError(grpc.StatusCode.INVALID_ARGUMENT.value[0], "no: " + request.decode())


async def _breaks(request: bytes) -> bytes:
    raise RuntimeError("a bug")


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    servers: list[tuple[UdsServer, grpc.aio.Channel]] = []

    async def start(methods: dict[bytes, Method]) -> grpc.aio.Channel:
        server = UdsServer(methods)
        path = tmp_path / f"s{len(servers)}.sock"
        await server.start(str(path))
        channel = grpc.aio.insecure_channel(f"unix:{path}")
        servers.append((server, channel))
        return channel

    yield start
    for server, channel in servers:
        await channel.close()
        await server.stop(0)


def _unary(channel: grpc.aio.Channel, path: str) -> grpc.aio.UnaryUnaryMultiCallable:
    return channel.unary_unary(path)


async def test_methods_answer_or_refuse(serve: Serve) -> None:
    methods = {b"/t.S/Echo": _echo, b"/t.S/Late": _suspends, b"/t.S/No": _refuses,
               b"/t.S/Bug": _breaks}  # fmt: skip
    channel = await serve(methods)
    assert await _unary(channel, "/t.S/Echo")(b"abc") == b"cba"
    assert await _unary(channel, "/t.S/Late")(b"x") == b"late:x"
    calls = await asyncio.gather(*(_unary(channel, "/t.S/Echo")(b"%d" % i) for i in range(50)))
    assert calls == [(b"%d" % i)[::-1] for i in range(50)]
    for path, code, detail in (
        ("/t.S/No", grpc.StatusCode.INVALID_ARGUMENT, "no: q"),
        ("/t.S/Bug", grpc.StatusCode.INTERNAL, "internal error"),
        ("/t.S/Missing", grpc.StatusCode.UNIMPLEMENTED, "unknown method /t.S/Missing"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await _unary(channel, path)(b"q")
        assert (refused.value.code(), refused.value.details()) == (code, detail)
    assert await _unary(channel, "/t.S/Echo")(b"still") == b"llits"


async def test_health_check(serve: Serve) -> None:
    health = ServingHealth(MemoryStore())
    channel = await serve({HEALTH_CHECK: health_check(health)})
    stub = health_pb2_grpc.HealthStub(channel)
    serving, not_serving = (health_pb2.HealthCheckResponse.SERVING,
                            health_pb2.HealthCheckResponse.NOT_SERVING)  # fmt: skip
    assert (await stub.Check(health_pb2.HealthCheckRequest())).status == not_serving
    await health.config_loaded()
    for name in ("", "ratelimit"):
        assert (await stub.Check(health_pb2.HealthCheckRequest(service=name))).status == serving
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.Check(health_pb2.HealthCheckRequest(service="other"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_stop_removes_the_socket(tmp_path: Path) -> None:
    path = tmp_path / "gone.sock"
    server = UdsServer({b"/t.S/Echo": _echo})
    await server.start(str(path))
    async with grpc.aio.insecure_channel(f"unix:{path}") as channel:
        assert await _unary(channel, "/t.S/Echo")(b"ab") == b"ba"
        await server.stop(1)
    assert not path.exists()
