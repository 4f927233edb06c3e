"""Bounded text and memory (issue 16 item 4), attacked over real gRPC and HTTP.

The attack: 200 ``ShouldRateLimit`` calls with distinct 2 MB domains added 405 MB of RSS, never
freed (each domain became a metric label), and ``/metrics`` then served 420 MB. Text longer than
the configured bound is now refused at first sight with INVALID_ARGUMENT (400 on ``/json``), so
nothing of it is kept; per-domain series are capped, and label values are cut.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json

import grpc
import psutil
import pytest
from envoy.service.ratelimit.v3 import rls_pb2

from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import aio_report_call
from tests.server.conftest import Start, descriptor

CONFIG = """
domain: test
descriptors:
  - key: user
    rate_limit: {unit: second, requests_per_unit: 10}
  - key: path
    detailed_metric: true
    rate_limit: {unit: second, requests_per_unit: 10}
"""
MB = 1 << 20
OK = rls_pb2.RateLimitResponse.OK


def _retained_rss() -> int:
    """Resident bytes once freed memory is handed back to the OS (glibc keeps freed blocks of
    large requests, so RSS alone would measure the allocator's high-water mark)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return int(psutil.Process().memory_info().rss)


async def _metrics_text(running: object) -> str:
    async with running.http.get(running.base_url + "/metrics") as response:  # type: ignore[attr-defined]
        return str(await response.text())


async def test_200_two_megabyte_domains_are_refused_and_leave_rss_and_metrics_small(
    serve: Start,
) -> None:
    running = await serve(CONFIG)
    before = _retained_rss()
    for n in range(200):
        domain = f"{n:03d}" + "d" * (2 * MB)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await running.ask(domain, descriptor(("user", "u")))
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "domain longer than 1024 characters" in (refused.value.details() or "")
        del domain, refused
    grown = _retained_rss() - before
    assert grown < 40 * MB, f"RSS grew {grown / MB:.0f} MB"  # was 405 MB
    text = await _metrics_text(running)
    assert len(text) < 200_000, len(text)  # was 420 MB
    assert 'ratekeeper_invalid_requests_total{call="ShouldRateLimit"} 200.0' in text.splitlines()
    answer = await running.ask("test", descriptor(("user", "u")))
    assert answer.overall_code == OK  # still serving


@pytest.mark.parametrize(
    ("entry", "what"),
    [(("u" * 1025, "x"), "entry key or value"), (("user", "v" * 1025), "entry key or value")],
)
async def test_a_long_descriptor_key_or_value_is_refused_at_first_sight(
    serve: Start, entry: tuple[str, str], what: str
) -> None:
    running = await serve(CONFIG)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await running.ask("test", descriptor(entry))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert what in (refused.value.details() or "")
    # At the bound exactly, served; /json refuses the same with 400.
    answer = await running.ask("test", descriptor(("user", "v" * 1024)))
    assert answer.overall_code == OK
    request = {
        "domain": "test",
        "descriptors": [{"entries": [{"key": entry[0], "value": entry[1]}]}],
    }
    async with running.http.post(
        running.base_url + "/json",
        data=json.dumps(request),
        headers={"Content-Type": "application/json"},
    ) as response:
        assert response.status == 400
        assert what in await response.text()


async def test_the_bound_is_configured(serve: Start) -> None:
    running = await serve(CONFIG, max_text=16)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await running.ask("test", descriptor(("user", "v" * 17)))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (await running.ask("test", descriptor(("user", "v" * 16)))).overall_code == OK


async def test_unknown_domain_series_are_capped_and_labels_cut(serve: Start) -> None:
    running = await serve(CONFIG, max_stats_domains=5, max_label_chars=32)
    for n in range(50):
        await running.ask(f"nosuch-{n}-" + "x" * 500, descriptor(("user", "u")))
    await running.ask("test", descriptor(("path", "/" + "p" * 900)))  # a detailed metric key
    lines = (await _metrics_text(running)).splitlines()
    series = [line for line in lines if line.startswith("ratekeeper_domain_not_found_total")]
    assert len(series) == 6  # five domains, then one overflow row
    assert 'ratekeeper_domain_not_found_total{domain="_overflow_"} 45.0' in series
    assert all(len(line) < 120 for line in series), series
    rule = [line for line in lines if line.startswith("ratekeeper_rule_total_hits_total")]
    assert rule
    assert all(len(line) < 140 for line in rule), rule


async def test_a_long_client_id_is_refused_at_first_sight(serve: Start) -> None:
    running = await serve(CONFIG, report_max_client_id=8)
    report = aio_report_call(running.channel)
    key = pb.KeyReport(domain="test", entries=[pb.Entry(key="user", value="u")], admitted=1)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await report(pb.ReportRequest(client_id="c" * 9, keys=[key]))
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "client_id" in (refused.value.details() or "")
    answer = await report(pb.ReportRequest(client_id="c" * 8, keys=[key]))
    assert len(answer.instructions) == 1
