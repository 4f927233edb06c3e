"""EtcdCoordination against a real etcd: leases, the campaign, fenced writes, endpoint parsing."""

from __future__ import annotations

import asyncio

import pytest

from ratekeeper.assigner.etcd_coordination import EtcdCoordination, parse_endpoints
from ratekeeper.errors import ConfigError, CoordinationError
from ratekeeper.testing.etcd_server import EtcdServer


def _coordination(etcd: EtcdServer, prefix: str = "/t") -> EtcdCoordination:
    return EtcdCoordination(parse_endpoints(etcd.endpoint), prefix=prefix)


def test_endpoints_parse_lists_and_refuse_other_schemes() -> None:
    assert parse_endpoints("http://a:1, b:2") == (("a", 1), ("b", 2))
    for bad in ("", "https://a:1", "http://a"):
        with pytest.raises(ConfigError):
            parse_endpoints(bad)


async def test_first_campaign_wins_and_the_second_sees_the_holder(etcd: EtcdServer) -> None:
    one, two = _coordination(etcd), _coordination(etcd)
    try:
        lease1, ttl = await one.grant(5)
        assert ttl == 5
        lease2, _ = await two.grant(5)
        won = await one.campaign(lease1, "a1:1")
        assert won is not None
        assert won.name == "a1:1"
        assert won.lease == lease1
        seen = await two.campaign(lease2, "a2:2")
        assert seen == won  # same holder, same fence
        assert await one.keep_alive(lease1) > 0
    finally:
        await one.close()
        await two.close()


async def test_revoking_the_lease_vacates_the_key_for_a_successor(etcd: EtcdServer) -> None:
    one, two = _coordination(etcd), _coordination(etcd)
    try:
        lease1, _ = await one.grant(5)
        first = await one.campaign(lease1, "a1:1")
        await one.revoke(lease1)
        assert await one.keep_alive(lease1) == 0
        lease2, _ = await two.grant(5)
        second = await two.campaign(lease2, "a2:2")
        assert second is not None
        assert first is not None
        assert second.name == "a2:2"
        assert second.revision > first.revision
    finally:
        await one.close()
        await two.close()


async def test_a_deposed_leaders_write_is_refused(etcd: EtcdServer) -> None:
    one, two = _coordination(etcd), _coordination(etcd)
    try:
        lease1, _ = await one.grant(2)
        first = await one.campaign(lease1, "a1:1")
        assert first is not None
        assert await one.save(b"gen-1", first.revision)
        await asyncio.sleep(3.2)  # the lease runs out: the key goes with it
        lease2, _ = await two.grant(5)
        second = await two.campaign(lease2, "a2:2")
        assert second is not None
        assert second.name == "a2:2"
        assert not await one.save(b"late", first.revision)
        assert await two.save(b"gen-2", second.revision)
        assert await one.load() == b"gen-2"
    finally:
        await one.close()
        await two.close()


async def test_nothing_stored_loads_none_and_a_dead_etcd_raises(etcd: EtcdServer) -> None:
    coordination = _coordination(etcd, prefix="/empty")
    try:
        assert await coordination.load() is None
        etcd.stop()
        with pytest.raises(CoordinationError):
            await coordination.grant(5)
        etcd.start()
        for _ in range(50):  # reconnects on its own once etcd is back
            try:
                await coordination.grant(5)
                break
            except CoordinationError:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("no lease after etcd came back")
    finally:
        await coordination.close()
