"""Hand-off of counters between cluster members: a thin asyncio driver of the pure machine.

:class:`Handoff` is both sides of a hand-off on one member:

* an :class:`~ratekeeper.server.slicelet.AssignmentListener`: each assignment change is fed to
  the :class:`~ratekeeper.core.handoff.HandoffMachine`, whose actions it performs on the store
  (cold marks for ranges gained, drops for ranges handed off) and on the wire (a range moved
  away is exported at each attempt, so it carries every count applied until then, and sent in
  bounded chunks with ``HandoffService.Transfer``, retried with backoff until the deadline);
* the ``HandoffService`` servicer (:meth:`handler`): a transfer is validated, merged into the
  store (for a counter already created by reports that arrived meanwhile the stricter state
  wins) and told to the machine, which warms the range once all its chunks are in.

While a member drains (an assignment leaves it nothing), :meth:`assignment_changed` returns only
once its hand-offs are done or given up, so the slicelet's drain waits for them.

A store whose counters every server shares (Redis) raises
:class:`~ratekeeper.backends.store.TransferUnsupported`: then there is nothing to hand off, and
this driver does nothing. Use from one event loop; :meth:`close` cancels what is in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import grpc
import grpc.aio
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as PromCounter

from ratekeeper.backends.cold import late_hits
from ratekeeper.backends.store import Snapshot, Store, TransferUnsupported
from ratekeeper.core import handoff_actions as act
from ratekeeper.core.handoff import HandoffMachine
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.core.slices import Assignment, Slice
from ratekeeper.errors import RequestError
from ratekeeper.proto.handoff import (
    DEFAULT_MAX_MESSAGE_BYTES,
    aio_transfer_call,
    handoff_handler,
    transfer_chunks,
    transfer_from_wire,
)
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as pb
from ratekeeper.server.metrics import Latency
from ratekeeper.server.slicelet import Slicelet
from ratekeeper.transport.channels import ChannelOption, describe_error, open_aio_channel

__all__ = ["HANDOFF_BUCKETS", "Handoff", "HandoffMetrics", "attach_handoff"]

log = logging.getLogger(__name__)

#: Buckets of ``ratekeeper_handoff_seconds``: a loopback hand-off takes milliseconds, a lost one
#: the whole timeout.
HANDOFF_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class HandoffMetrics:
    """``ratekeeper_handoff_seconds{outcome}`` and ``ratekeeper_handoff_counters_total{direction}``.

    Outcomes: ``delivered`` and ``given_up`` (a range sent away, from the assignment that moved
    it to the new owner's confirmation or the deadline); ``warm`` and ``lost`` (a range gained,
    until its transfer was in, or the deadline passed without one).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.seconds = Latency(
            "ratekeeper_handoff_seconds",
            "Hand-off durations by outcome (delivered, given_up, warm, lost).",
            "outcome",
            HANDOFF_BUCKETS,
        )
        self.counters = PromCounter(
            "ratekeeper_handoff_counters",
            "Counters handed off, by direction (sent, received; late: counters of late passes).",
            ("direction",),
            registry=registry,
        )
        if registry is not None:
            registry.register(self.seconds)

    def took(self, outcome: str, started: int, now: int) -> None:
        self.seconds.labels(outcome).observe(max(0, now - started) / NS_PER_SECOND)


class Handoff:
    """This member's hand-offs; see the module docstring.

    ``address`` gives this member's name in assignments (known once its port is bound);
    ``clock`` is the store's clock (wall ns), which the machine's deadlines are kept on too.
    """

    def __init__(
        self,
        store: Store,
        address: Callable[[], str],
        *,
        metrics: HandoffMetrics | None = None,
        clock: Callable[[], int] = time.time_ns,
        timings: act.HandoffTimings | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        connect: Callable[[str, Sequence[ChannelOption]], grpc.aio.Channel] = open_aio_channel,
    ) -> None:
        self._connect = connect  # the transport seam: the member's TLS
        self.store = store
        self.metrics = metrics or HandoffMetrics()
        self._address = address
        self._clock = clock
        self._max_bytes = max_message_bytes
        self.machine = HandoffMachine(address(), timings or act.HandoffTimings())
        self._shared = False
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        #: Since the last time nothing was pending: ranges released (by delivered), counters sent.
        self._released = {True: 0, False: 0}
        self._sent = 0

    # --- the listener ---------------------------------------------------------------------

    async def assignment_changed(self, before: Assignment | None, after: Assignment) -> None:
        """Hand off what moved away, wait for what moved here; see the module docstring."""
        if self._shared:
            return
        self.machine.me = self._address()
        await self._perform(self.machine.assignment_changed(before, after, self._clock()))
        if not after.slices_of(self.machine.me) and self.machine.outgoing:
            await self.idle()

    @property
    def shared(self) -> bool:
        """Whether the store's counters are shared by every server (nothing to hand off)."""
        return self._shared

    async def idle(self) -> None:
        """Until no hand-off of this member's is pending (each ends by its deadline)."""
        await self._idle.wait()

    # --- the servicer ---------------------------------------------------------------------

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        """``HandoffService`` on a ``grpc.aio`` server."""
        return handoff_handler(self.transfer)

    async def transfer(
        self, request: pb.TransferRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.TransferResponse:
        """Merge one chunk in; raises :class:`RequestError` for a malformed one."""
        transfer = transfer_from_wire(request)
        if transfer.late:
            return pb.TransferResponse(taken=await self._late(transfer.snapshot))
        try:
            taken = await self.store.import_(transfer.snapshot, self._clock())
        except TransferUnsupported as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        except ValueError as exc:
            raise RequestError(f"transfer: {exc}") from None
        self.metrics.counters.labels("received").inc(len(transfer.snapshot.counters))
        self.machine.me = self._address()
        now = self._clock()
        cold = tuple((Slice(lo, hi), now - age) for lo, hi, age in transfer.snapshot.cold)
        actions = self.machine.received(
            transfer.source,
            transfer.slice,
            transfer.generation,
            transfer.chunk,
            transfer.chunks,
            now,
            cold,
        )
        await self._perform(actions)
        return pb.TransferResponse(taken=taken)

    async def _late(self, snapshot: Snapshot) -> int:
        """A late pass: add the hits its counters counted on the sender to ours."""
        now = self._clock()
        try:
            hits = late_hits(snapshot, now)
        except ValueError as exc:
            raise RequestError(f"transfer: {exc}") from None
        await self.store.debit(hits, now)
        self.metrics.counters.labels("late").inc(len(hits))
        return len(hits)

    # --- performing actions ---------------------------------------------------------------

    async def _perform(self, actions: list[act.Action]) -> None:
        try:
            for action in actions:
                await self._one(action)
        except TransferUnsupported:
            self._unsupported()
        self._schedule()
        if self._shared:
            return
        if self.machine.outgoing or self.machine.late:
            self._idle.clear()
        elif not self._idle.is_set():
            self._idle.set()
            log.info("hand-offs done: %d ranges delivered (%d counters), %d given up",
                     self._released[True], self._sent, self._released[False])  # fmt: skip
            self._released, self._sent = {True: 0, False: 0}, 0

    def _unsupported(self) -> None:
        if not self._shared:
            log.info("the store's counters are shared by every server: nothing to hand off")
        self._shared = True
        self._idle.set()  # nothing will ever be pending

    async def _one(self, action: act.Action) -> None:
        now = self._clock()
        piece = action.slice
        if isinstance(action, act.Send):
            self._spawn(self._send(action))
        elif isinstance(action, act.SendLate):
            self._spawn(self._send_late(action))
        elif isinstance(action, act.Drop):
            await self.store.drop(piece.low, piece.high)
        elif isinstance(action, act.StartEmpty):
            await self.store.start_empty(piece.low, piece.high, action.since)
        elif isinstance(action, act.Warm):
            await self.store.start_empty(piece.low, piece.high, None)
            if action.started is not None:
                self.metrics.took("warm", action.started, now)
        elif isinstance(action, act.Release):
            await self.store.drop(piece.low, piece.high)
            await self.store.start_empty(piece.low, piece.high, action.since)
            self.metrics.took("delivered" if action.delivered else "given_up", action.started, now)
            self._released[action.delivered] += 1
            if not action.delivered:
                log.warning("hand-off of [%d, %d) given up: its new owner starts it empty",
                            piece.low, piece.high)  # fmt: skip
        elif isinstance(action, act.Lost):
            self.metrics.took("lost", action.started, now)
            log.warning("no hand-off of [%d, %d) arrived: its counters start empty",
                        piece.low, piece.high)  # fmt: skip

    async def _send(self, send: act.Send) -> None:
        """One attempt: export the range now and send every chunk; tell the machine."""
        counters = await self._export_and_send(send, late=False)
        if counters is not None:
            self._sent += counters
            await self._perform(self.machine.sent(send.token, self._clock()))

    async def _send_late(self, send: act.SendLate) -> None:
        """One late pass: export what reports created in the range since it left; send it on."""
        counters = await self._export_and_send(send, late=True)
        if counters is not None:
            await self._perform(self.machine.late_sent(send.token, counters, self._clock()))

    async def _export_and_send(self, send: act.Shipment, *, late: bool) -> int | None:
        """Export ``send``'s range and send it (a late pass only if it holds counters): how many
        counters went, or ``None`` when the send failed (the machine is told) or the store's
        counters are shared."""
        call = aio_transfer_call(self._channel(send.target))
        piece, me = send.slice, self.machine.me
        try:
            snapshot = await self.store.export(piece.low, piece.high, self._clock())
            if snapshot.counters or not late:
                for chunk in transfer_chunks(
                    send.generation, me, snapshot, self._max_bytes, late=late
                ):
                    left = (send.deadline - self._clock()) / NS_PER_SECOND
                    await call(chunk, timeout=max(0.001, left))
        except TransferUnsupported:
            self._unsupported()
            return None
        except grpc.RpcError as exc:
            log.info("%s of [%d, %d) to %s failed: %s", "late pass" if late else "hand-off",
                     piece.low, piece.high, send.target, describe_error(exc))  # fmt: skip
            await self._perform(self.machine.failed(send.token, self._clock()))
            return None
        self.metrics.counters.labels("sent").inc(len(snapshot.counters))
        return len(snapshot.counters)

    def _channel(self, target: str) -> grpc.aio.Channel:
        channel = self._channels.get(target)
        if channel is None:
            channel = self._channels[target] = self._connect(target, ())
        return channel

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(work, name="handoff")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _schedule(self) -> None:
        """Poll the machine when it next has something to do."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        wake = self.machine.wake_at()
        if wake is None or self._shared:
            return
        delay = max(0, wake - self._clock()) / NS_PER_SECOND
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(delay, self._poll)

    def _poll(self) -> None:
        self._timer = None
        self._spawn(self._perform(self.machine.poll(self._clock())))

    async def close(self) -> None:
        """Cancel the timer and every call in flight; close the channels."""
        if self._timer is not None:
            self._timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for channel in self._channels.values():
            await channel.close(None)
        self._channels.clear()


def attach_handoff(
    server: grpc.aio.Server,
    store: Store,
    slicelet: Slicelet,
    registry: CollectorRegistry,
    clock: Callable[[], int] = time.time_ns,
    timeout_s: float = 5.0,
    connect: Callable[[str, Sequence[ChannelOption]], grpc.aio.Channel] = open_aio_channel,
) -> Handoff:
    """A member's hand-offs: served on ``server``, told of every assignment ``slicelet`` adopts,
    metrics in ``registry``; each hand-off retried or awaited for ``timeout_s``."""
    timings = act.HandoffTimings(timeout_ns=round(timeout_s * NS_PER_SECOND))
    handoff = Handoff(
        store,
        lambda: slicelet.address,
        metrics=HandoffMetrics(registry),
        clock=clock,
        timings=timings,
        connect=connect,
    )
    server.add_generic_rpc_handlers((handoff.handler(),))
    slicelet.listen(handoff)
    return handoff
