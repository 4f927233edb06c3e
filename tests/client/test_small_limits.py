"""The client against the real report logic in virtual time: small limits, several limits.

A :class:`LimiterMachine` and the server's report logic (:class:`ReportProcessor` behind its
servicer) on one hand-moved clock, the report cycle run by hand every 100 ms with no network
between them, so each case is exact and repeatable. (The server's clock and the client's are
the same number here; nothing relies on it, since instructions carry relative durations.)
"""

from __future__ import annotations

import pytest

from ratekeeper.backends.memory import MemoryStore
from ratekeeper.client.base import BaseLimiter
from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.report import ReportProcessor
from ratekeeper.server.report_servicer import ReportServicer

from .conftest import FakeClock, sans_io

MS = 1_000_000


class Fleet:
    """One server and some clients sharing one clock; ``up`` says whether reports get through."""

    def __init__(self, clock: FakeClock, clients: list[BaseLimiter]) -> None:
        self.clock = clock
        self.clients = clients
        processor = ReportProcessor(StoreGate(MemoryStore()), lambda: None)
        self.service = ReportServicer(processor, clock=clock)
        self.up = True

    async def cycle(self) -> None:
        now = self.clock()
        for lim in self.clients:
            machine = lim._machine
            for out in machine.collect(now):
                if self.up:
                    machine.answered(out.address, await self.service.report(out.request), now)
                else:
                    machine.failed(out.address, "UNAVAILABLE: down", now)

    async def run(self, seconds: float, every_ms: int, key: str) -> int:
        """Each client asks for ``key`` every ``every_ms``; reports every 100 ms; admitted."""
        admitted = 0
        for ms in range(0, round(seconds * 1000), 10):
            if ms % every_ms == 0:
                admitted += sum(lim.allow(key) for lim in self.clients)
            if ms % 100 == 50:
                await self.cycle()
            self.clock.advance(0.01)
        return admitted


@pytest.mark.parametrize("up", [True, False])
async def test_a_lone_client_gets_its_whole_allowance_at_a_small_limit(
    clock: FakeClock, up: bool
) -> None:
    """4/minute asked every 0.3 s: 4 of the first 4 (the probe saw 2 with the server up).

    The server shares out a bucket's unspent tokens as a rate over a second (3 tokens: about
    3/s); the client used to fold such a grant into the policy's own pace, which clamped it to
    the policy's long-run rate (one per 15 s) and dropped the burst. A grant above the policy's
    rate now paces the key alongside the policy, so the policy's burst stays available.
    """
    lim, _ = sans_io("s:1", limit="4/minute")
    fleet = Fleet(clock, [lim])
    fleet.up = up
    assert await fleet.run(1.2, 300, "k") == 4
    assert await fleet.run(10, 300, "k") == 0  # and nothing more until the bucket refills


@pytest.mark.parametrize("up", [True, False])
async def test_every_limit_of_a_multi_limit_policy_holds_server_up_or_down(
    clock: FakeClock, up: bool
) -> None:
    """ "2/s; 4/minute" offered 10/s for 8 s: 4 admitted (the probe saw 16 with no server)."""
    lim, _ = sans_io("s:1", limit="2/s; 4/minute")
    fleet = Fleet(clock, [lim])
    fleet.up = up
    assert await fleet.run(8, 100, "k") == 4


async def test_small_limits_shared_by_a_few_clients_stay_within_the_bucket(
    clock: FakeClock,
) -> None:
    """Three clients on one 5/minute key, each asking every 0.2 s for a minute: at most the
    bucket's 5 plus its refill over the minute, plus what clients admit before a report can
    tell them (one round trip's worth each)."""
    clients = [sans_io("s:1", limit="5/minute", client_id=f"c{i}")[0] for i in range(3)]
    fleet = Fleet(clock, clients)
    admitted = await fleet.run(60, 200, "k")
    assert 5 <= admitted <= 5 + 5 + len(clients)
