"""``ratekeeper serve --backend redis://...``: Envoy's ShouldRateLimit and batch reports, counted
in Redis."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from ratekeeper.proto.ratekeeper.v1 import report_pb2
from ratekeeper.proto.report import report_call
from ratekeeper.testing.procs import free_port, http_ok, start
from ratekeeper.testing.redis_server import RedisServer

CONFIG = """\
domain: rl
descriptors:
  - key: key1
    rate_limit: {unit: minute, requests_per_unit: 3}
"""
OK, OVER = rls_pb2.RateLimitResponse.OK, rls_pb2.RateLimitResponse.OVER_LIMIT


@contextlib.contextmanager
def serve(redis_url: str, tmp_path: Path, *flags: str) -> Iterator[grpc.Channel]:
    """``ratekeeper serve`` on Redis, ready (``/healthcheck`` 200 needs Redis to have answered);
    yields a gRPC channel to it."""
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    grpc_port, http_port = free_port(), free_port()
    argv = [sys.executable, "-m", "ratekeeper.cli.main", "serve", "--config", str(config)]
    argv += ["--grpc-port", str(grpc_port), "--http-port", str(http_port)]
    argv += ["--backend", redis_url, "--cache-key-prefix", "serve:", *flags]
    # A generous timeout: a store error would be answered OK (fail open) and hide the count.
    argv += ["--redis-timeout", "1"]
    ready = http_ok(http_port, "/healthcheck")
    with (
        start(argv, name="serve-redis", log_dir=tmp_path, ready=ready, timeout=60),
        grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel,
    ):
        yield channel


def should_rate_limit(channel: grpc.Channel, value: str) -> int:
    entry = ratelimit_pb2.RateLimitDescriptor.Entry(key="key1", value=value)
    descriptor = ratelimit_pb2.RateLimitDescriptor(entries=[entry])
    request = rls_pb2.RateLimitRequest(domain="rl", descriptors=[descriptor])
    stub = rls_pb2_grpc.RateLimitServiceStub(channel)
    code: int = stub.ShouldRateLimit(request, timeout=5).overall_code
    return code


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.mark.integration
def test_envoy_requests_are_counted_in_the_reference_fixed_window(
    redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    with serve(redis_server.url, tmp_path, "--algorithm", "fixed_window") as channel:
        codes = [should_rate_limit(channel, "fixed") for _ in range(4)]
    assert codes == [OK, OK, OK, OVER]
    (key,) = redis_client.keys("serve:rl_key1_fixed_*")
    assert redis_client.get(key) == b"4"  # the reference counts the refused hit too


@pytest.mark.integration
def test_batch_reports_drive_the_redis_token_bucket_into_debt(
    redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    key = report_pb2.KeyReport(
        domain="rl", entries=[report_pb2.Entry(key="key1", value="bucket")], admitted=10
    )
    report = report_pb2.ReportRequest(client_id="c1", interval_ns=100_000_000, keys=[key])
    with serve(redis_server.url, tmp_path) as channel:
        assert should_rate_limit(channel, "bucket") == OK  # 2 tokens left of 3
        response = report_call(channel)(report, timeout=5)
        assert should_rate_limit(channel, "bucket") == OVER
    # 3 - 1 - 10 = 8 tokens of debt, capped at the horizon of 2 periods (6 tokens), repaid at
    # 3 a minute: rejected for about 120 s.
    (instruction,) = response.instructions
    assert 110e9 < instruction.reject_for_ns <= 120e9
    level = int(redis_client.hget("serve:rl_key1_bucket_tb60", "l") or 0)
    assert -6 * 60 * 10**9 <= level < -5 * 60 * 10**9  # tokens x period_ns: at the debt floor
    assert redis_client.pttl("serve:rl_key1_bucket_tb60") <= 190_000  # full again in 180 s


@pytest.mark.integration
def test_a_hostile_report_on_redis_blocks_a_key_at_most_the_horizon_and_poisons_nothing(
    redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # Issue 16 item 1 on the Redis Lua path: `admitted: 2**64-1` refuses that key alone, and
    # `admitted: 10**11` (which blocked a key for 31.7 years, its TTL 7e10 s) is clamped, its
    # debt floored at two periods, its TTL the time to refill from there.
    def key(value: str, admitted: int) -> report_pb2.KeyReport:
        entry = report_pb2.Entry(key="key1", value=value)
        return report_pb2.KeyReport(domain="rl", entries=[entry], admitted=admitted)

    keys = [key("poisoned", 2**64 - 1), key("huge", 10**11), key("good", 1)]
    report = report_pb2.ReportRequest(client_id="c1", interval_ns=100_000_000, keys=keys)
    with serve(redis_server.url, tmp_path) as channel:
        poisoned, huge, good = report_call(channel)(report, timeout=5).instructions
        assert should_rate_limit(channel, "poisoned") == OK  # nothing of it was applied
        assert should_rate_limit(channel, "good") == OK  # 1 reported + 1 of 3 a minute
    assert poisoned.error
    assert poisoned.valid_for_ns == 0
    assert (huge.error, good.error) == ("", "")
    # 3 a minute: two periods of debt (120 s) and the next token (20 s) at most
    assert 0 < huge.reject_for_ns <= 140 * 10**9
    level = int(redis_client.hget("serve:rl_key1_huge_tb60", "l") or 0)
    assert level == -6 * 60 * 10**9  # the floor: 6 tokens x period_ns
    assert 0 < redis_client.pttl("serve:rl_key1_huge_tb60") <= 181_000  # 9 tokens at 3/min
    assert redis_client.exists("serve:rl_key1_poisoned_tb60")  # made by the RLS call alone
    assert int(redis_client.hget("serve:rl_key1_poisoned_tb60", "l") or 0) > 0
