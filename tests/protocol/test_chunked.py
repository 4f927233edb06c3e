"""Chunked walks and the time-budgeted rest between chunks."""

from __future__ import annotations

import asyncio

import pytest

from ratekeeper.protocol.chunked import Chunker, TimeBudget


class Ticks:
    """A clock moved by hand (ns)."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


async def test_a_walk_pauses_between_chunks_and_not_after_the_last() -> None:
    pauses = []

    async def pause() -> None:
        pauses.append(1)

    chunker = Chunker(3, pause)
    assert await chunker.map(lambda x: x * 2, list(range(7))) == [x * 2 for x in range(7)]
    assert len(pauses) == 2
    assert list(chunker.spans(7)) == [(0, 3), (3, 6), (6, 7)]
    assert await Chunker(3).map(str, [1, 2]) == ["1", "2"]  # no pause: never suspends
    with pytest.raises(ValueError, match="positive"):
        Chunker(0)


async def test_a_report_rests_only_once_it_has_run_its_own_budget() -> None:
    ticks = Ticks()
    budget = TimeBudget(1_000, 0, ticks)

    async def report(work_per_chunk: int, chunks: int) -> None:
        budget.enter(1000)
        for _ in range(chunks):
            ticks.now += work_per_chunk
            await budget()

    await report(100, 5)  # 500 ns in all: under budget
    assert budget.rests == 0
    await report(400, 6)  # rests after 1,200 ns, then again 1,200 ns later
    assert budget.rests == 2
    # a report that starts while another is suspended counts its own time, not the other's
    budget.rests = 0

    async def suspended() -> None:
        budget.enter(1000)
        ticks.now += 900
        await asyncio.sleep(0)  # the store's await: another report runs meanwhile

    first = asyncio.ensure_future(suspended())
    await asyncio.sleep(0)
    await report(600, 1)
    await first
    assert budget.rests == 0
    small = TimeBudget(1_000, 0, ticks, rest_from_keys=100)
    small.enter(99)
    ticks.now += 10**6
    await small()
    assert small.rests == 0  # a small report never rests
    small.enter(100)
    ticks.now += 10**6
    await small()
    assert small.rests == 1
