"""Coalescing the forwarded calls to one owner: concurrent requests share one call under load.

A :class:`Coalescer` sends at most ``max_in_flight`` calls to its owner at a time. A request that
finds a call slot free is sent at once, with any others of the same event-loop tick (so a lone
request waits for nothing); requests that arrive while every slot is busy wait, and the next
free slot carries all of them in one batched call. The busier the owner, the bigger the
batches, so the per-call cost of gRPC is shared out exactly when it would queue requests.

Errors: whatever the send raises reaches every request it carried. Event loop only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

__all__ = ["Coalescer"]


@dataclass(slots=True)
class _Batch:
    """Requests waiting for the next call, and who waits for each answer."""

    requests: list[bytes] = field(default_factory=list)
    waiting: list[asyncio.Future[bytes]] = field(default_factory=list)


class Coalescer:
    """Sends requests to one owner, coalescing those that would otherwise queue.

    ``send_one(request)`` answers one request; ``send_many(requests)`` answers several with
    answers aligned (one batched call). Both raise to fail every request they carry.
    """

    def __init__(
        self,
        send_one: Callable[[bytes], Awaitable[bytes]],
        send_many: Callable[[list[bytes]], Awaitable[list[bytes]]],
        max_in_flight: int,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, got {max_in_flight}")
        self._send_one = send_one
        self._send_many = send_many
        self._max_in_flight = max_in_flight
        self._pending = _Batch()
        self._in_flight = 0
        self._scheduled = False
        #: The calls being sent, and the batch each carries.
        self._sending: dict[asyncio.Task[None], _Batch] = {}
        #: Calls sent, batched calls among them, and the requests those carried.
        self.calls = self.batches = self.batched = 0

    async def call(self, request: bytes) -> bytes:
        """``request``'s answer, from a call it may share with other requests."""
        loop = asyncio.get_running_loop()
        waiting: asyncio.Future[bytes] = loop.create_future()
        self._pending.requests.append(request)
        self._pending.waiting.append(waiting)
        self._schedule(loop)
        return await waiting

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._scheduled and self._in_flight < self._max_in_flight:
            self._scheduled = True
            loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, _Batch()
        if batch.requests:
            self._in_flight += 1
            task = asyncio.ensure_future(self._send(batch))
            self._sending[task] = batch
            task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        batch = self._sending.pop(task)
        for waiting in batch.waiting:  # a call cancelled (even before it ran) answers nobody
            waiting.cancel()

    async def _send(self, batch: _Batch) -> None:
        self.calls += 1
        try:
            if len(batch.requests) == 1:
                answers = [await self._send_one(batch.requests[0])]
            else:
                self.batches += 1
                self.batched += len(batch.requests)
                answers = await self._send_many(batch.requests)
            if len(answers) != len(batch.requests):
                raise ValueError(f"{len(answers)} answers for {len(batch.requests)} requests")
        except Exception as exc:
            for waiting in batch.waiting:
                if not waiting.done():
                    waiting.set_exception(exc)
        else:
            for waiting, answer in zip(batch.waiting, answers, strict=True):
                if not waiting.done():
                    waiting.set_result(answer)
        finally:
            self._in_flight -= 1
            if self._pending.requests:
                self._schedule(asyncio.get_running_loop())

    def cancel(self) -> None:
        """Cancel the calls being sent (their requests fail with ``CancelledError``)."""
        for task in list(self._sending):
            task.cancel()
