"""TLS, mTLS and the shared token, end to end between Limiters and a server on loopback.

Certificates are made per test (:mod:`tests.transport.certs`). Must-show of issue 16 item 6:
a Limiter reports over TLS and over mTLS, and a plaintext client (or one without a client
certificate under mTLS) is refused by a TLS-only server.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest

import ratekeeper
import ratekeeper.aio
from ratekeeper.assigner.options import from_sources
from ratekeeper.errors import ConfigError
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import aio_report_call, report_call
from ratekeeper.server.app import Replica, build
from ratekeeper.server.options import with_options
from ratekeeper.server.security_settings import ListenerTlsSettings
from ratekeeper.server.settings import ServerSettings
from ratekeeper.transport.channels import open_aio_channel, open_channel
from ratekeeper.transport.tls import ListenerTls, TlsError, TlsSettings
from tests.transport.certs import Ca

CONFIG = """
domain: rl
descriptors:
  - key: key
    rate_limit: {unit: minute, requests_per_unit: 5}
"""
KEY = pb.KeyReport(domain="rl", entries=[pb.Entry(key="key", value="k")], admitted=1)

Serve = Callable[..., Awaitable[Replica]]


@pytest.fixture
def ca(tmp_path: Path) -> Ca:
    return Ca.make(tmp_path)


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Serve]:
    started: list[Replica] = []

    async def start(**options: Any) -> Replica:
        config = tmp_path / f"config{len(started)}"
        config.mkdir()
        (config / "rl.yaml").write_text(CONFIG)
        settings = with_options(
            ServerSettings(), grpc_port=0, http_port=0, config=str(config), **options
        )
        replica = Replica(build(settings))
        await replica.start()
        started.append(replica)
        return replica

    yield start
    for replica in started:
        await replica.stop(0)


def _target(replica: Replica) -> str:
    return f"127.0.0.1:{replica.grpc_port}"


async def _two_limiters_share_a_limit(replica: Replica, tls: TlsSettings) -> None:
    """Limiter A admits 5 hits of a 5/min key and reports them; Limiter B, reporting the same
    key, is told to reject it: the counts crossed the TLS channel both ways."""
    limiters = [
        ratekeeper.Limiter(_target(replica), domain="rl", limit="5/minute", timeout=5, tls=tls)
        for _ in range(2)
    ]
    a, b = limiters
    try:
        assert all(a.allow("k") for _ in range(5))
        await asyncio.to_thread(a.flush)
        assert b.allow("k")  # B's own local limit still admits: it has not heard yet
        await asyncio.to_thread(b.flush)
        assert not b.allow("k")
        assert (a.stats.answered, a.stats.failed) >= (1, 0)
        assert b.stats.failed == 0
    finally:
        for limiter in limiters:
            await asyncio.to_thread(limiter.close)


async def test_a_limiter_reports_over_tls(serve: Serve, ca: Ca) -> None:
    server = ca.issue("server", client=False)
    replica = await serve(grpc_tls_cert=server.cert, grpc_tls_key=server.key)
    await _two_limiters_share_a_limit(replica, TlsSettings(ca=ca.file))


async def test_a_limiter_reports_over_mtls(serve: Serve, ca: Ca) -> None:
    server, client = ca.issue("server"), ca.issue("client", server=False)
    replica = await serve(
        grpc_tls_cert=server.cert, grpc_tls_key=server.key, grpc_tls_client_ca=ca.file
    )
    await _two_limiters_share_a_limit(
        replica, TlsSettings(ca=ca.file, cert=client.cert, key=client.key)
    )


async def test_the_aio_limiter_reports_over_mtls(serve: Serve, ca: Ca) -> None:
    server, client = ca.issue("server"), ca.issue("client", server=False)
    replica = await serve(
        grpc_tls_cert=server.cert, grpc_tls_key=server.key, grpc_tls_client_ca=ca.file
    )
    tls = TlsSettings(ca=ca.file, cert=client.cert, key=client.key)
    limiter = ratekeeper.aio.Limiter(
        _target(replica), domain="rl", limit="5/minute", timeout=5, tls=tls
    )
    try:
        assert all(limiter.allow("k") for _ in range(5))
        await limiter.flush()
        assert limiter.stats.answered >= 1
        assert limiter.stats.failed == 0
    finally:
        await limiter.close()


async def test_a_plaintext_client_is_refused_by_a_tls_only_server(serve: Serve, ca: Ca) -> None:
    server = ca.issue("server")
    replica = await serve(grpc_tls_cert=server.cert, grpc_tls_key=server.key)
    channel = open_aio_channel(_target(replica))
    try:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await aio_report_call(channel)(pb.ReportRequest(client_id="c", keys=[KEY]), timeout=5)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    finally:
        await channel.close()
    # ... and a plaintext Limiter only fails its reports (it falls back to local limits).
    limiter = ratekeeper.Limiter(_target(replica), domain="rl", limit="5/minute", timeout=2)
    try:
        assert limiter.allow("k")
        await asyncio.to_thread(limiter.flush)
        assert (limiter.stats.answered, limiter.stats.failed) == (0, 1)
    finally:
        await asyncio.to_thread(limiter.close)


async def test_mtls_refuses_a_client_without_a_certificate_or_with_a_stranger_s(
    serve: Serve, ca: Ca, tmp_path: Path
) -> None:
    server = ca.issue("server")
    replica = await serve(
        grpc_tls_cert=server.cert, grpc_tls_key=server.key, grpc_tls_client_ca=ca.file
    )
    other = tmp_path / "other"
    other.mkdir()
    stranger = Ca.make(other, "stranger").issue("mallory", server=False)
    for tls in (
        TlsSettings(ca=ca.file),
        TlsSettings(ca=ca.file, cert=stranger.cert, key=stranger.key),
    ):
        channel = open_aio_channel(_target(replica), tls=tls)
        try:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await aio_report_call(channel)(
                    pb.ReportRequest(client_id="c", keys=[KEY]), timeout=5
                )
            assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        finally:
            await channel.close()


async def test_a_client_refuses_a_server_its_ca_did_not_sign(
    serve: Serve, ca: Ca, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    impostor = Ca.make(other, "impostor").issue("server")
    replica = await serve(grpc_tls_cert=impostor.cert, grpc_tls_key=impostor.key)
    channel = open_channel(_target(replica), tls=TlsSettings(ca=ca.file))
    try:
        with pytest.raises(grpc.RpcError) as refused:
            await asyncio.to_thread(
                report_call(channel), pb.ReportRequest(client_id="c", keys=[KEY]), timeout=5
            )
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    finally:
        channel.close()


def test_unreadable_files_fail_at_open_naming_the_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(TlsError, match=r"nope\.pem"):
        open_channel("127.0.0.1:1", tls=TlsSettings(ca=missing))
    with pytest.raises(ratekeeper.ConfigError, match="needs its key"):
        TlsSettings(cert=missing)


async def test_the_http_listener_serves_https_only_and_mtls_when_asked(
    serve: Serve, ca: Ca
) -> None:
    server, client = ca.issue("server"), ca.issue("client", server=False)
    replica = await serve(
        http_tls_cert=server.cert, http_tls_key=server.key, http_tls_client_ca=ca.file
    )
    url = f"https://127.0.0.1:{replica.http_port}/healthcheck"
    context = ssl.create_default_context(cafile=ca.file)
    context.load_cert_chain(client.cert, client.key)
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as http,
        http.get(url) as response,
    ):
        assert (response.status, await response.text()) == (200, "OK")
    anonymous = ssl.create_default_context(cafile=ca.file)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=anonymous)) as http:
        with pytest.raises(aiohttp.ClientError):
            async with http.get(url) as response:
                await response.read()
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):  # plaintext HTTP to the TLS port
            async with http.get(f"http://127.0.0.1:{replica.http_port}/healthcheck") as response:
                await response.read()


async def test_under_mtls_a_client_id_is_bound_to_its_certificate(serve: Serve, ca: Ca) -> None:
    # Issue 16 item 2 (authenticated part): mallory, holding her own certificate, sends the
    # victim's client id with the victim's next report number. Unbound, the victim's real
    # report with that number would be taken for a resend and ignored (its 50 hits lost).
    server = ca.issue("server")
    replica = await serve(
        grpc_tls_cert=server.cert, grpc_tls_key=server.key, grpc_tls_client_ca=ca.file
    )
    channels = {}
    for name in ("victim", "mallory"):
        cert = ca.issue(name, server=False)
        tls = TlsSettings(ca=ca.file, cert=cert.cert, key=cert.key)
        channels[name] = open_aio_channel(_target(replica), tls=tls)
    try:
        victim, mallory = (aio_report_call(channels[n]) for n in ("victim", "mallory"))
        key = pb.KeyReport(domain="rl", entries=[pb.Entry(key="key", value="v")])
        await victim(pb.ReportRequest(client_id="app-1", sequence=1, keys=[key]))
        await mallory(pb.ReportRequest(client_id="app-1", sequence=2, keys=[key]))
        key.admitted = 50  # ten times the 5/min policy
        answer = await victim(pb.ReportRequest(client_id="app-1", sequence=2, keys=[key]))
        assert answer.instructions[0].reject_for_ns > 0  # applied: the victim is limited
    finally:
        for channel in channels.values():
            await channel.close()


async def test_a_member_s_peer_channels_use_its_certificate_and_the_token(
    serve: Serve, ca: Ca, tmp_path: Path
) -> None:
    # The opener the cluster's channels take (slicelet, hand-off, forwarding): a member holding
    # a certificate from the cluster CA reaches another member under mTLS and the token.
    from ratekeeper.server.security import peer_channels
    from ratekeeper.server.security_settings import ListenerTlsSettings

    token = tmp_path / "token"
    token.write_text("cluster-token")
    a, b = ca.issue("member-a"), ca.issue("member-b")
    replica = await serve(
        grpc_tls_cert=b.cert,
        grpc_tls_key=b.key,
        grpc_tls_client_ca=ca.file,
        auth_token_file=str(token),
    )
    mine = ListenerTlsSettings(grpc_cert=a.cert, grpc_key=a.key, grpc_client_ca=ca.file)
    channel = peer_channels(mine, "cluster-token")(_target(replica))
    try:
        answer = await aio_report_call(channel)(pb.ReportRequest(client_id="c", keys=[KEY]))
        assert len(answer.instructions) == 1
    finally:
        await channel.close()


def test_a_member_s_cluster_channels_take_the_cluster_tls_or_its_listener_s() -> None:
    # --cluster-tls-*: a member reaches a TLS assigner even when its own listener is plaintext
    assert ListenerTlsSettings().peer() is None
    assert ListenerTlsSettings(cluster_ca="ca.pem").peer() == TlsSettings(ca="ca.pem")
    own = ListenerTlsSettings(grpc_cert="m.crt", grpc_key="m.key", grpc_client_ca="ca.pem")
    assert own.peer() == TlsSettings(ca="ca.pem", cert="m.crt", key="m.key")
    other = ListenerTlsSettings(
        grpc_cert="m.crt", grpc_key="m.key", cluster_cert="c.crt", cluster_key="c.key"
    )
    assert other.peer() == TlsSettings(ca=None, cert="c.crt", key="c.key")
    with pytest.raises(ConfigError, match=r"tls\.cluster_key"):
        ListenerTlsSettings(cluster_cert="c.crt")
    with pytest.raises(ConfigError, match=r"tls\.grpc_cert"):
        ListenerTlsSettings(grpc_client_ca="ca.pem")


def test_the_assigner_s_tls_and_token_options_and_their_checks() -> None:
    env = {"RATEKEEPER_GRPC_TLS_CERT": "a.crt", "RATEKEEPER_GRPC_TLS_KEY": "a.key"}
    settings = from_sources({"grpc_tls_client_ca": "ca.pem", "auth_token_file": "t"}, env)
    assert settings.tls() == ListenerTls("a.crt", "a.key", "ca.pem")
    assert settings.peer_tls() == TlsSettings(ca="ca.pem", cert="a.crt", key="a.key")
    assert settings.auth_token_file == "t"
    assert from_sources({}, {}).tls() is None
    with pytest.raises(ConfigError, match="grpc_tls_key"):
        from_sources({"grpc_tls_cert": "a.crt"}, {})
