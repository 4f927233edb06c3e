"""The sidecar's listeners are set up as the server's (issue 16 items 6 and 8c): idle and slow
sockets closed after their timeouts, TLS and mTLS on gRPC and HTTP, the admin paths behind the
token."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiohttp
import grpc
import pytest
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from ratekeeper.transport.channels import open_aio_channel
from ratekeeper.transport.tls import TlsSettings
from tests.server.conftest import descriptor
from tests.server.test_idle_connections import H2_PREFACE, HTTP_PARTIAL, SLACK_S, TIMEOUT_S
from tests.server.test_idle_connections import _hold as hold
from tests.sidecar.conftest import StartSidecar
from tests.transport.certs import Ca

#: Held sockets per listener (the server's test holds 450; the setup is the same one).
SOCKETS = 150
OK = rls_pb2.RateLimitResponse.OK
REQUEST = rls_pb2.RateLimitRequest(domain="rl", descriptors=[descriptor(("path", "/a"))])


async def _held(port: int, kinds: list[tuple[bytes, bool]]) -> list[float]:
    return list(await asyncio.gather(*(hold(port, *kinds[n % len(kinds)]) for n in range(SOCKETS))))


async def test_idle_and_slow_sockets_are_closed_on_both_listeners(sidecar: StartSidecar) -> None:
    running = await sidecar(
        http_idle_timeout=TIMEOUT_S,
        grpc_max_connection_idle=TIMEOUT_S,
        grpc_handshake_timeout=TIMEOUT_S,
    )
    sc = running.sidecar
    http = asyncio.create_task(
        _held(sc.http_port, [(b"", False), (HTTP_PARTIAL, False), (HTTP_PARTIAL, True)])
    )
    grpc_ = asyncio.create_task(_held(sc.grpc_port, [(b"", False), (H2_PREFACE, False)]))
    await asyncio.sleep(0.3)
    assert (await running.stub.ShouldRateLimit(REQUEST)).overall_code == OK  # served meanwhile
    for closed_after in (await http, await grpc_):
        assert max(closed_after) <= TIMEOUT_S + SLACK_S, sorted(closed_after)[-5:]
        assert min(closed_after) >= TIMEOUT_S * 0.5  # closed by the timeout, not at once


async def test_grpc_and_http_serve_tls_only_with_mtls_and_the_admin_token(
    sidecar: StartSidecar, tmp_path: Path
) -> None:
    ca = Ca.make(tmp_path)
    server, envoy = ca.issue("sidecar"), ca.issue("envoy", server=False)
    (tmp_path / "token").write_text("admin-token")
    running = await sidecar(
        grpc_tls_cert=server.cert,
        grpc_tls_key=server.key,
        grpc_tls_client_ca=ca.file,
        http_tls_cert=server.cert,
        http_tls_key=server.key,
        auth_token_file=str(tmp_path / "token"),
    )
    target = f"127.0.0.1:{running.sidecar.grpc_port}"
    secure = open_aio_channel(target, tls=TlsSettings(ca=ca.file, cert=envoy.cert, key=envoy.key))
    anonymous = open_aio_channel(target, tls=TlsSettings(ca=ca.file))
    try:
        answer = await rls_pb2_grpc.RateLimitServiceStub(secure).ShouldRateLimit(REQUEST)
        assert answer.overall_code == OK
        for refused in (running.stub, rls_pb2_grpc.RateLimitServiceStub(anonymous)):
            with pytest.raises(grpc.aio.AioRpcError) as error:  # plaintext; no certificate
                await refused.ShouldRateLimit(REQUEST, timeout=5)
            assert error.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        await secure.close()
        await anonymous.close()
    base = f"https://127.0.0.1:{running.sidecar.http_port}"
    context = ssl.create_default_context(cafile=ca.file)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http:
        async with http.get(base + "/healthcheck") as response:
            assert response.status == 200  # the sidecar's own health answer, over HTTPS
        async with http.get(base + "/metrics") as response:
            assert response.status == 401
        headers = {"Authorization": "Bearer admin-token"}
        async with http.get(base + "/metrics", headers=headers) as response:
            assert response.status == 200
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):  # plaintext HTTP to the HTTPS port
            async with http.get(f"http://127.0.0.1:{running.sidecar.http_port}/healthcheck"):
                pass
