"""Forwarding in the RLS decision, without a transport: two deciders, one entry and one owner.

The owner is reached in-process (its :meth:`RlsDecider.answer_forwarded` on the request the
gRPC forwarder would send); the gRPC path itself runs in ``tests/server/test_forwarding.py``.
The property: a cluster answers every request sequence exactly as one server holding every
counter would, byte for byte (statuses, overall code, quota mode, shadow mode, headers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml
from envoy.extensions.common.ratelimit.v3 import ratelimit_pb2
from envoy.service.ratelimit.v3 import rls_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.config import PolicyTree
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.errors import ForwardError
from ratekeeper.protocol import rls_wire
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.policy import PolicyHolder
from ratekeeper.protocol.rls import RlsDecider, RlsSettings
from ratekeeper.protocol.rls_forward import DescriptorStatus, Forwarder
from ratekeeper.protocol.stats import Event, MemoryStats
from tests.server.conftest import CONFIG

NOW = 1_700_000_000 * NS_PER_SECOND
_HALF = 1 << 63
_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


def decider(
    rls: RlsSettings, forwarder: Forwarder | None = None, stats: MemoryStats | None = None
) -> tuple[RlsDecider, MemoryStore]:
    store = MemoryStore()
    holder = PolicyHolder(PolicyTree.from_mapping(yaml.safe_load(CONFIG)))
    return RlsDecider(holder, StoreGate(store), stats or MemoryStats(), rls, forwarder), store


class InProcess:
    """A :class:`Forwarder` whose one other member is ``owner``: it owns the upper half."""

    def __init__(self, owner: RlsDecider, clock: list[int]) -> None:
        self.owner = owner
        self.clock = clock
        self.calls = 0
        self.down = False

    def owner_of(self, key_hash: int) -> str | None:
        return "owner" if key_hash >= _HALF else None

    async def forward(
        self, owner: str, domain: str, descriptors: Sequence[bytes]
    ) -> Sequence[DescriptorStatus]:
        self.calls += 1
        if self.down:
            raise ForwardError("owner: down")
        raw = await self.owner.answer_forwarded(
            rls_wire.request(domain, descriptors), self.clock[0]
        )
        return list(rls_pb2.RateLimitResponse.FromString(raw).statuses)


_KEYS = ["key1", "key2", "named", "bigger", "unlimited", "white", "shadow", "block"]
_KEYS += ["quota_a", "quota_b", "multi", "nothing"]
_DESCRIPTOR = st.tuples(
    st.sampled_from(_KEYS),
    st.sampled_from(["a", "b", "c", "d", "e"]),
    st.none() | st.integers(0, 3),
)
_REQUEST = st.tuples(st.lists(_DESCRIPTOR, min_size=1, max_size=5), st.integers(0, 2))


def encode(descriptors: list[tuple[str, str, int | None]], hits_addend: int) -> bytes:
    built = []
    for key, value, hits in descriptors:
        d = ratelimit_pb2.RateLimitDescriptor(
            entries=[ratelimit_pb2.RateLimitDescriptor.Entry(key=key, value=value)]
        )
        if hits is not None:
            d.hits_addend.value = hits
        built.append(d)
    request = rls_pb2.RateLimitRequest(domain="test", descriptors=built, hits_addend=hits_addend)
    return request.SerializeToString()


@settings(max_examples=150, deadline=None)
@given(
    requests=st.lists(_REQUEST, min_size=1, max_size=12),
    steps=st.lists(st.integers(0, 20), min_size=12, max_size=12),
    quota_mode=st.booleans(),
    shadow_mode=st.booleans(),
)
async def test_a_cluster_answers_as_one_server(
    requests: list[Any], steps: list[int], quota_mode: bool, shadow_mode: bool
) -> None:
    rls = RlsSettings(headers=_HEADERS, quota_mode=quota_mode, shadow_mode=shadow_mode)
    alone, _ = decider(rls)
    clock = [NOW]
    owner, _ = decider(rls, InProcess(decider(rls)[0], clock))  # the owner never forwards
    forwarder = InProcess(owner, clock)
    entry, _ = decider(rls, forwarder)
    for (descriptors, hits_addend), step in zip(requests, steps, strict=False):
        clock[0] += step * NS_PER_SECOND
        raw = encode(descriptors, hits_addend)
        assert await entry.answer(raw, clock[0]) == await alone.answer(raw, clock[0])


async def test_each_counter_lives_with_its_owner() -> None:
    clock = [NOW]
    owner, owner_store = decider(RlsSettings())
    forwarder = InProcess(owner, clock)
    entry, entry_store = decider(RlsSettings(), forwarder)
    values = [f"v{n}" for n in range(40)]
    await entry.answer(encode([("key2", v, None) for v in values], 0), NOW)
    held = {
        store: {c.counter.key_hash >= _HALF for c in (await store.export(0, 2**64, NOW)).counters}
        for store in (owner_store, entry_store)
    }
    assert held == {owner_store: {True}, entry_store: {False}}
    assert forwarder.calls == 1  # every remote descriptor in one call


async def test_an_unreachable_owner_is_answered_per_fail_closed() -> None:
    for fail_closed, code in ((False, rls_wire.OK), (True, rls_wire.OVER_LIMIT)):
        owner, _ = decider(RlsSettings())
        forwarder = InProcess(owner, [NOW])
        forwarder.down = True
        stats = MemoryStats()
        entry, _ = decider(RlsSettings(fail_closed=fail_closed), forwarder, stats)
        values = [f"v{n}" for n in range(8)]  # some local, some remote
        raw = await entry.answer(encode([("key1", v, None) for v in values], 0), NOW)
        response = rls_pb2.RateLimitResponse.FromString(raw)
        assert response.overall_code == code
        assert rls_wire.OK in {s.code for s in response.statuses}  # the local ones
        assert stats.events[Event.FORWARD_ERROR] == 1
