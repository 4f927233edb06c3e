"""The shared token, the admin listener and log redaction, over real loopback (issue 16 item 6)."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import pytest

from ratekeeper.proto import cluster
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import aio_report_call
from ratekeeper.server import redact
from ratekeeper.transport.channels import open_aio_channel
from tests.server.conftest import Start, descriptor

CONFIG = """
domain: rl
descriptors:
  - key: key
    rate_limit: {unit: minute, requests_per_unit: 5}
"""
TOKEN = "s3cret-token-0123456789"
KEY = pb.KeyReport(domain="rl", entries=[pb.Entry(key="key", value="k")], admitted=1)


@pytest.fixture
def token_file(tmp_path: Path) -> str:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n")
    return str(path)


async def test_report_and_watch_require_the_token_and_rls_does_not(
    serve: Start, token_file: str
) -> None:
    running = await serve(CONFIG, auth_token_file=token_file)
    target = f"127.0.0.1:{running.server.grpc_port}"
    request = pb.ReportRequest(client_id="c", keys=[KEY])
    for token in (None, "wrong"):
        channel = open_aio_channel(target, token=token)
        try:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await aio_report_call(channel)(request)
            assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await cluster.aio_assigner_calls(channel).watch(cluster_pb2.WatchRequest())
            assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
        finally:
            await channel.close()
    channel = open_aio_channel(target, token=TOKEN)
    try:
        answer = await aio_report_call(channel)(request)
        assert len(answer.instructions) == 1
    finally:
        await channel.close()
    # Envoy's RLS call carries no token: it stays open.
    assert (await running.ask("rl", descriptor(("key", "k")))).overall_code == 1


async def test_admin_endpoints_require_the_token_and_health_does_not(
    serve: Start, token_file: str
) -> None:
    running = await serve(CONFIG, auth_token_file=token_file)
    for path in ("/metrics", "/rlconfig"):
        async with running.http.get(running.base_url + path) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"] == "Bearer"
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with running.http.get(running.base_url + path, headers=headers) as response:
            assert response.status == 200
    async with running.http.get(running.base_url + "/healthcheck") as response:
        assert response.status == 200


async def test_admin_endpoints_move_to_their_own_listener(serve: Start) -> None:
    running = await serve(CONFIG, admin_listen="127.0.0.1:0")
    admin = f"http://127.0.0.1:{running.server.admin_port}"
    assert running.server.admin_port not in (0, running.server.http_port)
    for path in ("/metrics", "/rlconfig"):
        async with running.http.get(running.base_url + path) as response:
            assert response.status == 404
        async with running.http.get(admin + path) as response:
            assert response.status == 200
    async with running.http.get(admin + "/healthcheck") as response:
        assert response.status == 200
    async with running.http.post(
        running.base_url + "/json",
        json={"domain": "rl", "descriptors": [{"entries": [{"key": "key", "value": "k"}]}]},
    ) as response:
        assert response.status == 200


def test_every_log_line_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    redactor = redact.Redactor([TOKEN])
    log = logging.getLogger("ratekeeper.test.redact")
    caplog.handler.addFilter(redactor)
    try:
        with caplog.at_level(logging.INFO, logger="ratekeeper.test.redact"):
            log.info("backend=%s", "redis://default:S3cretPW@10.0.0.1:6379/0")
            log.info("sent authorization: Bearer abc.DEF-123")
            log.info("token file says %s", TOKEN)
            try:
                raise RuntimeError("cannot reach rediss://u:pw@host:6380")
            except RuntimeError:
                log.exception("store failed")
    finally:
        caplog.handler.removeFilter(redactor)
    text = caplog.text
    for secret in ("S3cretPW", "abc.DEF-123", TOKEN, ":pw@"):
        assert secret not in text, text
    assert "redis://default:***@10.0.0.1:6379/0" in text
    assert "Bearer ***" in text
