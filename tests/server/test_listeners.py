"""The report listener (``--report-port``) against grpcio clients: the gRPC port's contract on
the server's own HTTP/2 (plaintext, TLS and mTLS, the token, message limits, refusals, many
connections, idle sockets, a large report while ShouldRateLimit stays answered, stop)."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import grpc
import grpc.aio
import pytest
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

import ratekeeper
import ratekeeper.aio
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import aio_report_call
from ratekeeper.transport.channels import open_aio_channel
from ratekeeper.transport.tls import TlsSettings
from tests.transport.certs import Ca

from .conftest import Running, Start, descriptor

CONFIG = """
domain: rl
descriptors:
  - key: key
    rate_limit: {unit: minute, requests_per_unit: 5}
"""
TOKEN = "s3cret-token-0123456789"


def _key(value: str = "k", admitted: int = 1) -> pb.KeyReport:
    return pb.KeyReport(domain="rl", entries=[pb.Entry(key="key", value=value)], admitted=admitted)


def _report(*keys: pb.KeyReport, client: str = "c") -> pb.ReportRequest:
    return pb.ReportRequest(client_id=client, keys=list(keys) or [_key()])


def _target(running: Running) -> str:
    return f"127.0.0.1:{running.server.report_port}"


async def test_reports_and_rls_on_the_report_port_and_the_port_is_announced(
    serve: Start,
) -> None:
    running = await serve(CONFIG, report_port=0)
    assert running.server.report_port > 0
    main = aio_report_call(running.channel)
    announced = await main(_report(_key("a")))
    assert announced.report_port == running.server.report_port
    channel = grpc.aio.insecure_channel(_target(running))
    try:
        answer = await aio_report_call(channel)(_report(_key("a", 5), _key("b", 1)))
        assert len(answer.instructions) == 2
        assert answer.report_port == running.server.report_port
        # the counts were applied: key "a" has had 6 of its 5 a minute
        assert answer.instructions[0].reject_for_ns > 0
        assert answer.instructions[1].reject_for_ns == 0
        stub = rls_pb2_grpc.RateLimitServiceStub(channel)
        request = rls_pb2.RateLimitRequest(domain="rl", descriptors=[descriptor(("key", "b"))])
        rls = await stub.ShouldRateLimit(request)
        assert rls.overall_code == rls_pb2.RateLimitResponse.OK
    finally:
        await channel.close()


async def test_without_the_option_there_is_no_report_port(serve: Start) -> None:
    running = await serve(CONFIG)
    assert running.server.report_port == 0
    assert (await aio_report_call(running.channel)(_report())).report_port == 0


async def test_malformed_reports_are_refused_as_on_the_grpc_port(serve: Start) -> None:
    running = await serve(CONFIG, report_port=0)
    channel = grpc.aio.insecure_channel(_target(running))
    try:
        raw = channel.unary_unary("/ratekeeper.v1.ReportService/Report")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await raw(b"\xff\xff\xff")
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        empty = pb.KeyReport(domain="", entries=[], admitted=1)
        for call in (aio_report_call(channel), aio_report_call(running.channel)):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call(_report(_key("a"), empty))
            assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
            assert "keys[1]" in (refused.value.details() or "")
        unknown = channel.unary_unary("/ratekeeper.v1.ReportService/Nope")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await unknown(b"")
        assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED
    finally:
        await channel.close()


async def test_a_message_over_grpcs_limit_is_refused(serve: Start) -> None:
    running = await serve(CONFIG, report_port=0)
    channel = grpc.aio.insecure_channel(_target(running))
    try:
        huge = _report(_key("x" * 1000), client="c" * (4 << 20))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await aio_report_call(channel)(huge)
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        # the connection goes on serving
        assert len((await aio_report_call(channel)(_report())).instructions) == 1
    finally:
        await channel.close()


async def test_report_needs_the_token_and_rls_does_not(serve: Start, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    running = await serve(CONFIG, report_port=0, auth_token_file=str(token_file))
    for token in (None, "wrong"):
        channel = open_aio_channel(_target(running), token=token)
        try:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await aio_report_call(channel)(_report())
            assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
            stub = rls_pb2_grpc.RateLimitServiceStub(channel)
            request = rls_pb2.RateLimitRequest(domain="rl", descriptors=[descriptor(("key", "k"))])
            assert (await stub.ShouldRateLimit(request)).overall_code == 1
        finally:
            await channel.close()
    channel = open_aio_channel(_target(running), token=TOKEN)
    try:
        assert len((await aio_report_call(channel)(_report())).instructions) == 1
    finally:
        await channel.close()


async def test_tls_and_mtls_bind_the_client_id(serve: Start, tmp_path: Path) -> None:
    ca = Ca.make(tmp_path)
    server, client = ca.issue("server"), ca.issue("alice")
    tls = {"grpc_tls_cert": server.cert, "grpc_tls_key": server.key}
    running = await serve(CONFIG, report_port=0, **tls)
    plain = grpc.aio.insecure_channel(_target(running))
    secure = open_aio_channel(_target(running), tls=TlsSettings(ca=ca.file))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await aio_report_call(plain)(_report(), timeout=5)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        assert len((await aio_report_call(secure)(_report())).instructions) == 1
    finally:
        await plain.close()
        await secure.close()
    mutual = await serve(CONFIG, report_port=0, grpc_tls_client_ca=ca.file, **tls)
    identity = TlsSettings(ca=ca.file, cert=client.cert, key=client.key)
    channel = open_aio_channel(_target(mutual), tls=identity)
    anonymous = open_aio_channel(_target(mutual), tls=TlsSettings(ca=ca.file))
    try:
        sequenced = pb.ReportRequest(client_id="me", keys=[_key()], sequence=1)
        assert len((await aio_report_call(channel)(sequenced)).instructions) == 1
        # the client id is bound to the certificate, as on the gRPC port
        assert "alice/me" in mutual.server.components.reports._sequences
        with pytest.raises(grpc.aio.AioRpcError):
            await aio_report_call(anonymous)(_report(), timeout=5)
    finally:
        await channel.close()
        await anonymous.close()
    page = await mutual.http.get(f"{mutual.base_url}/metrics")
    assert page.status == 200


async def test_many_connections_are_served(serve: Start) -> None:
    running = await serve(CONFIG, report_port=0)
    channels = [grpc.aio.insecure_channel(_target(running)) for _ in range(60)]
    try:
        answers = await asyncio.gather(
            *(aio_report_call(c)(_report(client=f"c{n}")) for n, c in enumerate(channels))
        )
        assert all(len(a.instructions) == 1 for a in answers)
    finally:
        await asyncio.gather(*(c.close() for c in channels))


async def test_silent_sockets_are_closed_within_the_handshake_timeout(serve: Start) -> None:
    running = await serve(CONFIG, report_port=0, grpc_handshake_timeout=0.3)
    loop = asyncio.get_running_loop()
    held = []
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", running.server.report_port))
        sock.setblocking(False)
        held.append(sock)
    try:
        start = time.monotonic()
        # generous: each must be closed by the server (EOF) well within a few seconds
        for sock in held:
            assert await asyncio.wait_for(loop.sock_recv(sock, 65_536), 5.0) is not None
            while await asyncio.wait_for(loop.sock_recv(sock, 65_536), 5.0):
                pass
        assert time.monotonic() - start < 5.0
        channel = grpc.aio.insecure_channel(_target(running))
        try:
            assert len((await aio_report_call(channel)(_report())).instructions) == 1
        finally:
            await channel.close()
    finally:
        for sock in held:
            sock.close()


async def test_rls_stays_answered_while_a_10000_key_report_is_applied(serve: Start) -> None:
    running = await serve(CONFIG, report_port=0)
    channel = grpc.aio.insecure_channel(_target(running))
    try:
        call = aio_report_call(channel)
        big = _report(*(_key(f"k{n}") for n in range(10_000)), client="big")
        stub = rls_pb2_grpc.RateLimitServiceStub(channel)
        request = rls_pb2.RateLimitRequest(domain="rl", descriptors=[descriptor(("key", "r"))])
        await stub.ShouldRateLimit(request)
        report = asyncio.ensure_future(call(big, timeout=60))
        slowest = 0.0
        while not report.done():
            start = time.perf_counter()
            await stub.ShouldRateLimit(request)
            slowest = max(slowest, time.perf_counter() - start)
        assert len((await report).instructions) == 10_000
        assert slowest < 1.0  # generous: the report alone takes several times this, unchunked
    finally:
        await channel.close()


async def test_stop_answers_calls_in_flight_then_closes(serve: Start) -> None:
    running = await serve(CONFIG, report_port=0)
    channel = grpc.aio.insecure_channel(_target(running))
    try:
        call = aio_report_call(channel)
        assert len((await call(_report())).instructions) == 1
        big = asyncio.ensure_future(call(_report(*(_key(f"k{n}") for n in range(3000)))))
        await asyncio.sleep(0.05)
        await running.server.stop(5.0)
        assert len((await big).instructions) == 3000
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(_report(), timeout=2)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        await channel.close()


async def test_limiters_follow_the_announced_port_with_tls_and_token(
    serve: Start, tmp_path: Path
) -> None:
    ca = Ca.make(tmp_path)
    server = ca.issue("server")
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    running = await serve(
        CONFIG,
        report_port=0,
        auth_token_file=str(token_file),
        grpc_tls_cert=server.cert,
        grpc_tls_key=server.key,
    )
    target = f"127.0.0.1:{running.server.grpc_port}"
    tls = TlsSettings(ca=ca.file)
    async with ratekeeper.aio.Limiter(
        target, domain="rl", report_interval=3600, tls=tls, auth_token=TOKEN
    ) as limiter:
        assert [limiter.allow("k") for _ in range(3)] == [True] * 3
        await limiter.flush()  # to the gRPC port: its answer names the listener
        assert running.server.report_connections == 0
        limiter.allow("k")
        await limiter.flush()  # to the listener
        assert running.server.report_connections == 1
        assert limiter.stats.answered == 2
    loop = asyncio.get_running_loop()

    def threaded() -> int:
        with ratekeeper.Limiter(
            target, domain="rl", report_interval=3600, tls=tls, auth_token=TOKEN
        ) as limiter:
            for _ in range(3):
                limiter.allow("j")
                limiter.flush()
            return limiter.stats.answered

    assert await loop.run_in_executor(None, threaded) == 3


async def test_a_limiter_falls_back_to_the_address_when_the_listener_is_gone(
    serve: Start,
) -> None:
    running = await serve(CONFIG, report_port=0)
    target = f"127.0.0.1:{running.server.grpc_port}"
    async with ratekeeper.aio.Limiter(target, domain="rl", report_interval=3600) as limiter:
        for _ in range(2):
            limiter.allow("k")
            await limiter.flush()
        assert running.server.report_connections == 1
        assert running.server._reports is not None
        await running.server._reports.stop(0)  # the port closes; the gRPC port serves on
        for _ in range(3):
            limiter.allow("k")
            await limiter.flush()
        assert limiter.stats.answered == 4  # one report lost to the closed port, then back
