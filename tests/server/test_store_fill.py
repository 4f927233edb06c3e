"""The store cannot be filled by one party (issue 16 item 3), attacked over real gRPC.

The attacks, as found: 260 ``ShouldRateLimit`` calls × 1,024 distinct descriptors under a
1/year rule, and 28 reports × 10,000 keys with an inline 1/year limit, each against a
250,000-counter store. Every counter they create is exhausted for a year, so none can be evicted
without handing quota back; without budgets the store filled and every new key of every domain
and client was answered OVER_LIMIT while ``/healthcheck`` said 200 OK. With budgets the
attacker's domain or client is held to its share, new keys of the other domains and clients are
served, and ``/healthcheck`` and ``ratekeeper_store_pressure`` say the store is under pressure.
"""

from __future__ import annotations

import pytest
from envoy.service.ratelimit.v3 import rls_pb2

from ratekeeper.core.limits import parse_limit
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.proto.report import aio_report_call, limit_to_spec
from tests.server.conftest import Running, Start, descriptor

#: The attacker's domain: one counter per remote address, for a year.
FLOODED = """
domain: rl
descriptors:
  - key: remote_address
    rate_limit: {unit: year, requests_per_unit: 1}
"""
#: Another tenant's domain.
OTHER = """
domain: api
descriptors:
  - key: user
    rate_limit: {unit: second, requests_per_unit: 10}
"""
OK, OVER_LIMIT = rls_pb2.RateLimitResponse.OK, rls_pb2.RateLimitResponse.OVER_LIMIT
#: The store size of the attack.
MAX_KEYS = 250_000


async def _flood_rls(running: Running, calls: int, per_call: int) -> None:
    for call in range(calls):
        descriptors = [
            descriptor(("remote_address", f"198.51.{call}.{n}")) for n in range(per_call)
        ]
        await running.ask("rl", *descriptors)


async def _flood_reports(running: Running, reports: int, per_report: int) -> None:
    report = aio_report_call(running.channel)
    year = limit_to_spec(parse_limit("1/year"))
    for n in range(reports):
        keys = [
            pb.KeyReport(
                domain="inline",
                entries=[pb.Entry(key="k", value=f"{n}-{i}")],
                admitted=1,
                limits=[year],
            )
            for i in range(per_report)
        ]
        await report(pb.ReportRequest(client_id="attacker", sequence=n + 1, keys=keys))


async def _new_keys_of_others(running: Running, tag: str) -> tuple[list[int], list[int]]:
    """RLS codes for 20 new users of the other domain, and each new key's reject_for from a
    victim client's report on it."""
    codes = [
        (await running.ask("api", descriptor(("user", f"{tag}-{n}")))).overall_code
        for n in range(20)
    ]
    keys = [
        pb.KeyReport(domain="api", entries=[pb.Entry(key="user", value=f"{tag}-r{n}")], admitted=1)
        for n in range(20)
    ]
    answer = await aio_report_call(running.channel)(
        pb.ReportRequest(client_id="victim", sequence=1, keys=keys)
    )
    return codes, [instruction.reject_for_ns for instruction in answer.instructions]


async def _health(running: Running) -> tuple[int, str, str]:
    async with running.http.get(running.base_url + "/healthcheck") as response:
        degraded = response.headers.get("x-ratekeeper-degraded", "")
        return response.status, degraded, await response.text()


async def _metric(running: Running, name: str) -> float:
    async with running.http.get(running.base_url + "/metrics") as response:
        for line in (await response.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"no {name}")


async def test_a_rls_flood_of_one_domain_leaves_new_keys_of_another_served(serve: Start) -> None:
    running = await serve(FLOODED, more=[OTHER], max_keys=MAX_KEYS)
    await _flood_rls(running, 260, 1024)
    codes, reject_for = await _new_keys_of_others(running, "after-rls")
    assert codes == [OK] * 20
    assert reject_for == [0] * 20
    # The flooded domain holds its share, no more; its own new keys are the ones refused.
    assert (await running.ask("rl", descriptor(("remote_address", "new")))).overall_code == (
        OVER_LIMIT
    )
    assert await _metric(running, "ratekeeper_store_keys") <= MAX_KEYS // 2 + 40
    assert await _metric(running, "ratekeeper_store_pressure") >= 0.49
    assert await _metric(running, "ratekeeper_store_refused_over_budget_total") > 100_000
    status, degraded, text = await _health(running)
    assert (status, degraded) == (200, "store-pressure")
    assert "domain 'rl'" in text, text


@pytest.mark.timeout(300)  # 280,000 keys through the report path on a shared machine
async def test_a_report_flood_of_one_client_leaves_new_keys_of_others_served(
    serve: Start,
) -> None:
    running = await serve(FLOODED, more=[OTHER], max_keys=MAX_KEYS)
    await _flood_reports(running, 28, 10_000)
    codes, reject_for = await _new_keys_of_others(running, "after-reports")
    assert codes == [OK] * 20
    assert reject_for == [0] * 20
    assert await _metric(running, "ratekeeper_store_keys") <= MAX_KEYS // 4 + 40
    status, degraded, text = await _health(running)
    assert (status, degraded) == (200, "store-pressure")
    assert "client 'attacker'" in text, text


async def test_without_budgets_the_same_floods_lock_every_new_key_out(serve: Start) -> None:
    # The control, at a tenth of the size: shares of 1 are no budget, and the attack works.
    running = await serve(
        FLOODED,
        more=[OTHER],
        max_keys=MAX_KEYS // 10,
        store_domain_share=1.0,
        store_client_share=1.0,
        store_reported_share=1.0,
    )
    await _flood_rls(running, 26, 1024)
    codes, _ = await _new_keys_of_others(running, "locked")
    assert OK not in codes
    status, degraded, _ = await _health(running)
    assert (status, degraded) == (200, "store-pressure")  # at least it says so now
