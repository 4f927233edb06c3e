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

#: The header every well-behaved /json client sends.
JSON = {"Content-Type": "application/json"}

REQUEST = {"domain": "test", "descriptors": [{"entries": [{"key": "key1", "value": "a"}]}]}


async def test_json_answers_200_then_429(serve: Start) -> None:
    running = await serve(CONFIG)
    url = running.base_url + "/json"
    async with running.http.post(url, data=json.dumps(REQUEST), headers=JSON) as first:
        assert first.status == 200
        body = await first.json()
        assert body["overallCode"] == "OK"
        assert body["statuses"][0]["currentLimit"] == {"requestsPerUnit": 1, "unit": "MINUTE"}
    async with running.http.post(url, data=json.dumps(REQUEST), headers=JSON) as second:
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
    async with running.http.post(running.base_url + "/json", data=body, headers=JSON) as response:
        assert response.status == 400
        assert message in await response.text()


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "application/octet-stream",
        "",
    ],
)
async def test_json_refuses_a_body_declared_as_anything_but_json_with_415(
    serve: Start, content_type: str
) -> None:
    # Issue 16 item 8: the body was parsed whatever its declared type. A well-formed request
    # under another type is refused, counts nothing, and is counted as invalid.
    running = await serve(CONFIG)
    url = running.base_url + "/json"
    body = json.dumps(REQUEST).encode()
    async with running.http.post(url, data=body, headers={"Content-Type": content_type}) as bad:
        assert bad.status == 415
        assert "application/json" in await bad.text()
    async with running.http.post(url, data=body, headers=JSON) as first:
        assert first.status == 200  # the refused one took none of the 1/min quota
    async with running.http.get(running.base_url + "/metrics") as response:
        text = await response.text()
    assert 'ratekeeper_invalid_requests_total{call="json"} 1.0' in text.splitlines()


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "application/json; charset=utf-8"},
        {"Content-Type": "Application/JSON"},
        {"Content-Type": "application/vnd.envoy.ratelimit+json"},
        {},  # no header at all: read as JSON
    ],
)
async def test_json_accepts_json_types_and_a_missing_header(
    serve: Start, headers: dict[str, str]
) -> None:
    running = await serve(CONFIG)
    body = json.dumps(REQUEST).encode()
    # skip_auto_headers keeps aiohttp from adding application/octet-stream for bytes.
    async with running.http.post(
        running.base_url + "/json",
        data=body,
        headers=headers,
        skip_auto_headers=() if headers else ("Content-Type",),
    ) as response:
        assert response.status == 200


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
        await running.http.post(running.base_url + "/json", data=json.dumps(REQUEST), headers=JSON)
    await running.http.post(running.base_url + "/json", data="{", headers=JSON)
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
        await running.http.post(running.base_url + "/json", data=json.dumps(request), headers=JSON)
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
