"""HTTP endpoints over real loopback: /json, /healthcheck, /metrics, /rlconfig."""

from __future__ import annotations

import json

import pytest

from tests.server.conftest import Start

CONFIG = """
domain: test
descriptors:
  - key: key1
    rate_limit: {unit: minute, requests_per_unit: 1}
  - key: path
    value: /static/*
    detailed_metric: true
    rate_limit: {unit: minute, requests_per_unit: 5}
"""

REQUEST = {"domain": "test", "descriptors": [{"entries": [{"key": "key1", "value": "a"}]}]}


async def test_json_answers_200_then_429(serve: Start) -> None:
    running = await serve(CONFIG)
    url = running.base_url + "/json"
    async with running.http.post(url, data=json.dumps(REQUEST)) as first:
        assert first.status == 200
        body = await first.json()
        assert body["overallCode"] == "OK"
        assert body["statuses"][0]["currentLimit"] == {"requestsPerUnit": 1, "unit": "MINUTE"}
    async with running.http.post(url, data=json.dumps(REQUEST)) as second:
        assert second.status == 429
        assert (await second.json())["overallCode"] == "OVER_LIMIT"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "bad request: Failed to load JSON"),
        ('{"domain": "test", "nosuchfield": 1}', 'has no field named "nosuchfield"'),
        ('{"domain": "", "descriptors": [{}]}', "rate limit domain must not be empty"),
        ('{"domain": "test"}', "rate limit descriptor list must not be empty"),
        (b"\xff\xfe", "bad request"),
    ],
)
async def test_json_rejects_malformed_bodies_with_400(
    serve: Start, body: str | bytes, message: str
) -> None:
    running = await serve(CONFIG)
    async with running.http.post(running.base_url + "/json", data=body) as response:
        assert response.status == 400
        assert message in await response.text()


async def test_healthcheck_is_200_while_serving_and_500_when_shutting_down(serve: Start) -> None:
    running = await serve(CONFIG)
    async with running.http.get(running.base_url + "/healthcheck") as response:
        assert (response.status, await response.text()) == (200, "OK")
    await running.server.components.health.shutting_down()
    async with running.http.get(running.base_url + "/healthcheck") as response:
        assert response.status == 500


async def test_metrics_count_per_rule_calls_and_the_store(serve: Start) -> None:
    running = await serve(CONFIG)
    for _ in range(2):
        await running.http.post(running.base_url + "/json", data=json.dumps(REQUEST))
    await running.http.post(running.base_url + "/json", data="{")
    async with running.http.get(running.base_url + "/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    labels = '{domain="test",key="test.key1"}'
    for line in (
        f"ratekeeper_rule_total_hits_total{labels} 2.0",
        f"ratekeeper_rule_over_limit_total{labels} 1.0",
        f"ratekeeper_rule_within_limit_total{labels} 1.0",
        f"ratekeeper_rule_near_limit_total{labels} 1.0",
        f"ratekeeper_rule_shadow_mode_total{labels} 0.0",
        'ratekeeper_call_seconds_count{call="json"} 3.0',
        'ratekeeper_invalid_requests_total{call="json"} 1.0',
        "ratekeeper_config_load_success_total 1.0",
        "ratekeeper_config_load_error_total 0.0",
        "ratekeeper_store_keys 1.0",
        "ratekeeper_store_evictions_total 0.0",
        "ratekeeper_store_errors_total 0.0",
    ):
        assert line in text.splitlines(), line


async def test_detailed_metric_labels_are_capped(serve: Start) -> None:
    running = await serve(CONFIG, max_stats_keys=3)
    for n in range(10):
        request = {
            "domain": "test",
            "descriptors": [{"entries": [{"key": "path", "value": f"/static/{n}"}]}],
        }
        await running.http.post(running.base_url + "/json", data=json.dumps(request))
    async with running.http.get(running.base_url + "/metrics") as response:
        text = await response.text()
    totals = [line for line in text.splitlines() if line.startswith("ratekeeper_rule_total_hits")]
    assert len(totals) == 4  # three label sets, then one overflow row
    assert 'ratekeeper_rule_total_hits_total{domain="_overflow_",key="_overflow_"} 7.0' in totals


async def test_rlconfig_dumps_the_loaded_config(serve: Start) -> None:
    running = await serve(CONFIG)
    async with running.http.get(running.base_url + "/rlconfig") as response:
        text = await response.text()
    assert "domain test" in text
    assert "key1" in text
