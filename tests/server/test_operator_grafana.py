"""docs/grafana/ratekeeper.json: a valid dashboard whose every query names a metric that a live
``ratekeeper serve`` exports (memory store, and Redis for the Redis store's own panel)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import report_call
from ratekeeper.testing.redis_server import RedisServer
from ratekeeper.testing.server_process import RatekeeperServer, metric_samples, ratekeeper_server

pytestmark = pytest.mark.integration

DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana" / "ratekeeper.json"
CONFIG = """
domain: rl
descriptors:
  - key: user
    rate_limit: {unit: minute, requests_per_unit: 1}
"""
#: A metric name in a PromQL expression.
METRIC = re.compile(r"\b(?:ratekeeper|process)_[a-z0-9_]+\b")


def queries(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", ())]


def queried_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    names = {name for expr in queries(dashboard) for name in METRIC.findall(expr)}
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            names.update(METRIC.findall(variable["definition"]))
    return names


def exercise(server: RatekeeperServer) -> set[str]:
    """Calls that make every labelled series appear; the sample names of ``/metrics`` then."""
    channel = grpc.insecure_channel(server.grpc_target)
    try:
        rls = rls_pb2_grpc.RateLimitServiceStub(channel)
        entry = ratelimit_pb2.RateLimitDescriptor.Entry(key="user", value="alice")
        descriptor = ratelimit_pb2.RateLimitDescriptor(entries=[entry])
        for domain in ("rl", "rl", "nowhere"):  # within, over, an unknown domain
            request = rls_pb2.RateLimitRequest(domain=domain, descriptors=[descriptor])
            rls.ShouldRateLimit(request, timeout=10)
        key = pb.KeyReport(domain="rl", entries=[pb.Entry(key="user", value="bob")], admitted=1)
        report_call(channel)(pb.ReportRequest(client_id="c", sequence=1, keys=[key]), timeout=10)
    finally:
        channel.close()
    malformed = urllib.request.Request(
        f"http://127.0.0.1:{server.http_port}/json", b"{", {"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(malformed, timeout=10)
    return {sample.name for sample in metric_samples(server.http_port)}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """The metric names a memory-backed and a Redis-backed server export under traffic."""
    work = tmp_path_factory.mktemp("grafana")
    config = work / "rl.yaml"
    config.write_text(CONFIG)
    names = {}
    with ratekeeper_server(config, work, name="memory") as server:
        names["memory"] = exercise(server)
    redis = RedisServer(work / "redis-data")
    try:
        flags = ["--backend", redis.url]
        with ratekeeper_server(config, work, name="redis", flags=flags) as server:
            names["redis"] = exercise(server)
    finally:
        redis.stop()
    return names


def test_the_dashboard_is_a_dashboard_on_one_prometheus_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    graphs = [p for p in dashboard["panels"] if p["type"] != "row"]
    assert len(graphs) >= 10
    for panel in graphs:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["refId"], target
            assert METRIC.search(target["expr"]), target


def test_every_metric_the_dashboard_queries_is_exported_by_a_live_server(
    exported: dict[str, set[str]],
) -> None:
    queried = queried_metrics()
    assert len(queried) >= 20
    everywhere = exported["memory"] & exported["redis"]
    missing = queried - (exported["memory"] | exported["redis"])
    assert not missing, f"the dashboard queries metrics no server exports: {sorted(missing)}"
    # only the stores' own counts differ between backends
    differ = {name for name in queried - everywhere if not name.startswith("ratekeeper_store_")}
    assert differ <= {"ratekeeper_over_limit_with_local_cache_total"}, differ
