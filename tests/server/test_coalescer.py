"""The coalescer of forwarded calls, over in-process senders that record what they were sent."""

from __future__ import annotations

import asyncio

import pytest

from ratekeeper.server.coalescer import Coalescer


class Owner:
    """Answers each request with itself reversed; holds every call until :meth:`release`."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[list[bytes]] = []
        self.fail = fail
        self.gate = asyncio.Event()

    async def one(self, request: bytes) -> bytes:
        return (await self.many([request]))[0]

    async def many(self, requests: list[bytes]) -> list[bytes]:
        self.sent.append(list(requests))
        await self.gate.wait()
        if self.fail:
            raise ConnectionError("owner down")
        return [r[::-1] for r in requests]

    def release(self) -> None:
        self.gate.set()


async def test_a_lone_request_goes_at_once() -> None:
    owner = Owner()
    owner.release()
    coalescer = Coalescer(owner.one, owner.many, max_in_flight=2)
    assert await coalescer.call(b"ab") == b"ba"
    assert owner.sent == [[b"ab"]]
    assert (coalescer.calls, coalescer.batches) == (1, 0)


async def test_requests_that_would_queue_share_the_next_call() -> None:
    owner = Owner()
    coalescer = Coalescer(owner.one, owner.many, max_in_flight=1)
    first = asyncio.ensure_future(coalescer.call(b"a1"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)  # the first call is in flight, holding the only slot
    queued = [asyncio.ensure_future(coalescer.call(f"q{n}".encode())) for n in range(4)]
    await asyncio.sleep(0)
    assert owner.sent == [[b"a1"]]
    owner.release()
    assert await first == b"1a"
    assert await asyncio.gather(*queued) == [b"0q", b"1q", b"2q", b"3q"]
    assert owner.sent == [[b"a1"], [b"q0", b"q1", b"q2", b"q3"]]
    assert (coalescer.calls, coalescer.batches, coalescer.batched) == (2, 1, 4)


async def test_a_tick_of_requests_is_one_call_even_with_slots_free() -> None:
    owner = Owner()
    owner.release()
    coalescer = Coalescer(owner.one, owner.many, max_in_flight=4)
    answers = await asyncio.gather(*(coalescer.call(bytes([65 + n])) for n in range(3)))
    assert answers == [b"A", b"B", b"C"]
    assert owner.sent == [[b"A", b"B", b"C"]]


async def test_a_failed_call_fails_every_request_it_carried() -> None:
    owner = Owner(fail=True)
    owner.release()
    coalescer = Coalescer(owner.one, owner.many, max_in_flight=2)
    results = await asyncio.gather(
        *(coalescer.call(b"x") for _ in range(3)), return_exceptions=True
    )
    assert [type(r) for r in results] == [ConnectionError] * 3
    owner.fail = False
    assert await coalescer.call(b"xy") == b"yx"  # the next call goes as usual


async def test_answers_that_do_not_align_fail_the_batch() -> None:
    async def short(requests: list[bytes]) -> list[bytes]:
        return requests[:-1]

    async def one(request: bytes) -> bytes:
        return request

    coalescer = Coalescer(one, short, max_in_flight=1)
    results = await asyncio.gather(
        *(coalescer.call(b"x") for _ in range(2)), return_exceptions=True
    )
    assert all(isinstance(r, ValueError) for r in results)


@pytest.mark.parametrize("ticks", [2, 3, 4])  # before the call runs, and while it waits
async def test_cancel_fails_the_requests_in_flight(ticks: int) -> None:
    owner = Owner()
    coalescer = Coalescer(owner.one, owner.many, max_in_flight=1)
    waiting = asyncio.ensure_future(coalescer.call(b"x"))
    for _ in range(ticks):
        await asyncio.sleep(0)
    coalescer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, 5)


def test_at_least_one_call_in_flight() -> None:
    async def one(request: bytes) -> bytes:
        return request

    async def many(requests: list[bytes]) -> list[bytes]:
        return requests

    with pytest.raises(ValueError, match="max_in_flight"):
        Coalescer(one, many, max_in_flight=0)
