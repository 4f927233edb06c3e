"""``ratekeeper serve --backend redis://...`` answers Envoy's ShouldRateLimit from Redis."""

from __future__ import annotations

import sys
from pathlib import Path

import grpc
import pytest
import redis
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc
from integration.procs import free_port, http_ok, start
from redis_server import RedisServer

CONFIG = """\
domain: rl
descriptors:
  - key: key1
    rate_limit: {unit: minute, requests_per_unit: 3}
"""


def request(value: str) -> rls_pb2.RateLimitRequest:
    entry = ratelimit_pb2.RateLimitDescriptor.Entry(key="key1", value=value)
    descriptor = ratelimit_pb2.RateLimitDescriptor(entries=[entry])
    return rls_pb2.RateLimitRequest(domain="rl", descriptors=[descriptor])


@pytest.mark.integration
def test_serve_counts_envoy_requests_in_redis(redis_server: RedisServer, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    grpc_port, http_port = free_port(), free_port()
    argv = [sys.executable, "-m", "ratekeeper.cli.main", "serve", "--config", str(config)]
    argv += ["--grpc-port", str(grpc_port), "--http-port", str(http_port)]
    argv += ["--backend", redis_server.url, "--algorithm", "fixed_window"]
    argv += ["--cache-key-prefix", "serve:"]
    # Ready means /healthcheck says 200, which needs Redis to have answered.
    ready = http_ok(http_port, "/healthcheck")
    with (
        start(argv, name="serve-redis", log_dir=tmp_path, ready=ready, timeout=60),
        grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel,
    ):
        stub = rls_pb2_grpc.RateLimitServiceStub(channel)
        codes = [stub.ShouldRateLimit(request("v"), timeout=5).overall_code for _ in range(4)]
    ok, over = rls_pb2.RateLimitResponse.OK, rls_pb2.RateLimitResponse.OVER_LIMIT
    assert codes == [ok, ok, ok, over]
    client = redis.Redis.from_url(redis_server.url)
    try:
        (key,) = client.keys("serve:rl_key1_v_*")
        assert client.get(key) == b"4"  # the reference counts the refused hit too
    finally:
        client.close()
