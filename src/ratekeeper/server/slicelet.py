"""The slicelet: a server's membership in a cluster, driven on the event loop.

A thin asyncio driver of the passive :class:`~ratekeeper.server.membership.Membership` machine:

* **heartbeats** go to the join target (the assigner, or any member, which relays them) when
  the machine says one is due, carrying the member's state, held generation and per-slice load;
* a **Watch** long poll on the same target brings each new assignment as soon as it is made
  (a heartbeat answer brings it too, at the latest one interval later);
* each newer assignment is held at once (the gate's ownership switches on the spot) and then
  announced to the registered :class:`AssignmentListener`\\ s, one change at a time and in
  order, by a task of its own, so a slow listener (a hand-off) never delays a heartbeat;
* while the target is unreachable the held assignment is kept and the calls retried with a
  doubling backoff; failures are logged once, then at most once per ``warn_every``.

:meth:`Slicelet.wait_update` is what the member's own AssignerService answers Watch from, and
:meth:`Slicelet.relay` what it relays Heartbeat with (:mod:`ratekeeper.server.member_service`).

Use from one event loop: :meth:`start` once the gRPC port is bound, :meth:`serving` once it
serves, :meth:`drain` on SIGTERM, :meth:`stop` last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import grpc
import grpc.aio

from ratekeeper.assigner.wire import state_to_wire
from ratekeeper.core.assignment_diff import Update
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.core.slices import Assignment, Generation
from ratekeeper.proto.assignment import (
    generation_to_wire,
    high_to_wire,
    update_from_wire,
)
from ratekeeper.proto.cluster import AssignerCallsAio
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as pb
from ratekeeper.server.membership import (
    Beat,
    Change,
    Event,
    Membership,
    MembershipTiming,
    State,
    fallback_target,
)
from ratekeeper.server.settings import ClusterSettings, ListenerSettings
from ratekeeper.server.slice_view import SliceView
from ratekeeper.transport.channels import describe_error, open_aio_channel

__all__ = ["RELAY_HOPS", "AssignmentListener", "Slicelet", "advertised"]

log = logging.getLogger(__name__)

Reply = TypeVar("Reply")

#: Call metadata counting how many members a heartbeat was relayed through.
RELAY_HOPS = "x-ratekeeper-relay-hops"


class ChannelSwapped(grpc.RpcError):
    """A call cut short because heartbeats moved to another target and its channel closed."""

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "cut short: heartbeats moved to another target"


async def _outliving_swaps(call: Awaitable[Reply]) -> Reply:
    """``await call``, with the cancellation a closing channel inflicts on its calls raised as
    :class:`ChannelSwapped` (a ``grpc.RpcError``), so callers retry instead of dying; the
    cancellation of the awaiting task itself still propagates."""
    try:
        return await call
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        raise ChannelSwapped() from None


class AssignmentListener(Protocol):
    """Told of every assignment this member adopts, in order, one at a time."""

    async def assignment_changed(self, before: Assignment | None, after: Assignment) -> None:
        """The member now holds ``after`` (the gate already counts by it); ``before`` is the
        one it held (``None``: the first). An exception is logged and the next listener told."""
        ...


def _ns(seconds: float) -> int:
    return round(seconds * NS_PER_SECOND)


def timing(settings: ClusterSettings) -> MembershipTiming:
    """The machine's timing from the cluster settings."""
    return MembershipTiming(
        interval_ns=_ns(settings.heartbeat_interval_s),
        retry_initial_ns=_ns(settings.retry_initial_s),
        retry_max_ns=_ns(settings.retry_max_s),
    )


def beat_to_wire(beat: Beat, address: str, incarnation_id: str) -> pb.HeartbeatRequest:
    """The wire form of a heartbeat."""
    request = pb.HeartbeatRequest(
        address=address,
        state=state_to_wire(beat.state),
        incarnation_id=incarnation_id,
        load=[
            pb.SliceLoad(low=p.low, high=high_to_wire(p.high), load=rate) for p, rate in beat.load
        ],
    )
    if beat.known is not None:
        request.known.CopyFrom(generation_to_wire(beat.known))
    return request


def advertised(cluster: ClusterSettings, listeners: ListenerSettings, grpc_port: int) -> str:
    """This member's address in assignments: the configured one, else where gRPC listens (a
    wildcard host is replaced by this machine's name, which other machines can resolve)."""
    if cluster.advertise:
        return cluster.advertise
    host = listeners.host
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = socket.gethostname()
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{grpc_port}"


class Slicelet:
    """This server's membership in a cluster; see the module docstring."""

    def __init__(
        self,
        settings: ClusterSettings,
        *,
        target: str = "",
        clock: Callable[[], int] = time.monotonic_ns,
        incarnation_id: str = "",
    ) -> None:
        """``target``: where heartbeats and Watch go (default ``settings.join``'s addresses, in
        turn; an embedded assigner's member targets its own address, given at :meth:`start`)."""
        self.settings = settings
        #: The held assignment: the gate's ownership.
        self.view = SliceView(settings.advertise, window_ns=_ns(settings.load_window_s))
        #: Unique per process start.
        self.incarnation_id = incarnation_id or uuid.uuid4().hex
        self._joins = (target,) if target else settings.join_targets
        self._target = self._joins[0] if self._joins else ""
        self._closing = False
        #: Channels of earlier targets, closing once their calls had time to finish.
        self._closing_channels: set[asyncio.Task[None]] = set()
        self._clock = clock
        self._machine = Membership(self.view, timing(settings), clock())
        self._listeners: list[AssignmentListener] = []
        self._changes: asyncio.Queue[Change] = asyncio.Queue()
        self._announced: Assignment | None = None
        self._delivered = asyncio.Event()
        self._changed = asyncio.Event()
        self._wake = asyncio.Event()
        self._channel: grpc.aio.Channel | None = None
        self._calls: AssignerCallsAio | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # --- what the rest of the server sees -------------------------------------------------

    @property
    def address(self) -> str:
        """This member's name in assignments."""
        return self.view.address

    @property
    def target(self) -> str:
        """Where heartbeats go: the assigner, or the member relaying to it."""
        return self._target

    @property
    def state(self) -> State:
        return self._machine.state

    @property
    def assignment(self) -> Assignment | None:
        """The assignment held (``None``: none yet)."""
        return self.view.assignment

    def listen(self, listener: AssignmentListener) -> None:
        """Tell ``listener`` of every assignment adopted from now on (after those before it)."""
        self._listeners.append(listener)

    def offer(self, update: Update) -> None:
        """An update seen anywhere; held at once and announced if newer."""
        change = self._machine.offer(update, self._clock())
        if change is not None:
            self._adopted(change)

    async def wait_update(self, known: Generation | None, wait_s: float) -> Update | None:
        """What a party holding ``known`` should be sent, as soon as there is something (a diff
        or the whole held assignment), or ``None`` after ``wait_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            update = self.view.update_for(known)
            remaining = deadline - loop.time()
            if update is not None or remaining <= 0 or self._closing:
                return update
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def relay(self, request: pb.HeartbeatRequest, hops: int) -> pb.HeartbeatResponse:
        """Send another member's heartbeat on to the target; raises ``grpc.RpcError``."""
        calls = self._require_calls()
        return await _outliving_swaps(
            calls.heartbeat(
                request,
                timeout=self.settings.heartbeat_timeout_s,
                metadata=((RELAY_HOPS, str(hops)),),
            )
        )

    async def status(self) -> pb.StatusResponse:
        """The target's Status; raises ``grpc.RpcError``."""
        calls = self._require_calls()
        timeout = self.settings.heartbeat_timeout_s
        return await _outliving_swaps(calls.status(pb.StatusRequest(), timeout=timeout))

    # --- lifecycle ------------------------------------------------------------------------

    async def start(self, address: str) -> None:
        """Start heartbeating as ``address`` (unless an advertised one was configured)."""
        if not self.view.address:
            self.view.bind(address)
        if not self._joins:  # the member embedding the assigner: its own port
            self._joins = (self.view.address,)
            self._target = self.view.address
        self._channel = open_aio_channel(self._target)
        self._calls = AssignerCallsAio(self._channel)
        self._tasks = [
            asyncio.create_task(self._heartbeats(), name="slicelet-heartbeats"),
            asyncio.create_task(self._watch(), name="slicelet-watch"),
            asyncio.create_task(self._announce(), name="slicelet-announce"),
        ]
        log.info("joining the cluster through %s as %s", self._target, self.view.address)

    def serving(self) -> None:
        """The server serves: RUNNING from now on (told to the assigner at once)."""
        if self._machine.on(Event.SERVING, self._clock()):
            self._wake.set()

    async def drain(self, timeout_s: float | None = None) -> bool:
        """TERMINATING: wait until the assigner moved this member's slices away and every
        listener heard of it (the hand-off), or ``timeout_s`` (default: the settings'); whether
        it drained in time."""
        timeout = self.settings.drain_timeout_s if timeout_s is None else timeout_s
        if self._machine.on(Event.DRAINING, self._clock()):
            self._wake.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._drained():
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.warning(
                    "drain: %d slices still held after %.1fs", len(self.view.owned()), timeout
                )
                return False
            self._delivered.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._delivered.wait(), remaining)
        return True

    def release_watchers(self) -> None:
        """Answer every Watch held on this member now, and those to come at once (the member
        is stopping: held calls would keep its gRPC server from stopping for their whole
        wait)."""
        self._closing = True
        self._changed.set()

    async def stop(self) -> None:
        """Stop heartbeating and watching (the assigner times this member out)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._channel is not None:
            await self._channel.close(None)
            self._channel = None
        for closing in list(self._closing_channels):
            with contextlib.suppress(asyncio.CancelledError):
                await closing

    # --- the driver -----------------------------------------------------------------------

    def _require_calls(self) -> AssignerCallsAio:
        if self._calls is None:
            raise RuntimeError("the slicelet is not started")
        return self._calls

    async def _heartbeats(self) -> None:
        machine = self._machine
        while True:
            now = self._clock()
            beat = machine.due(now)
            if beat is None:
                self._wake.clear()
                delay = max(0, machine.next_at - now) / NS_PER_SECOND
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            request = beat_to_wire(beat, self.view.address, self.incarnation_id)
            try:
                response = await self._require_calls().heartbeat(
                    request, timeout=self.settings.heartbeat_timeout_s
                )
                update = update_from_wire(response.update)
            except (grpc.RpcError, ValueError) as exc:
                await self._failed(exc)
                continue
            if machine.failures:
                log.info(
                    "heartbeat to %s answered after %d failures", self._target, machine.failures
                )
            change = machine.answered(self._clock(), update, response.heartbeat_interval_ns)
            if change is not None:
                self._adopted(change)

    async def _failed(self, exc: BaseException) -> None:
        failure = self._machine.failed(self._clock(), len(self._cycle()))
        if failure.warn:
            held = self.view.generation
            log.warning(
                "heartbeat to %s failed (%d in a row, next in %.1fs), keeping assignment %s: %s",
                self._target, failure.failures, failure.delay_ns / NS_PER_SECOND,
                "none" if held is None else f"{held.incarnation}.{held.number}",
                describe_error(exc),
            )  # fmt: skip
        if failure.switch:
            await self._retarget(
                fallback_target(self._joins, self._target, self.view.assignment, self.address)
            )

    def _cycle(self) -> set[str]:
        """Every address heartbeats may go to."""
        held = self.view.assignment
        return {*self._joins, *(held.servers - {self.address} if held is not None else ())}

    async def _retarget(self, target: str) -> None:
        """Send heartbeats and Watch to ``target`` from now on."""
        if target == self._target:
            return
        log.debug("heartbeats to %s failed; trying %s", self._target, target)
        old, self._target = self._channel, target
        self._channel = open_aio_channel(target)
        self._calls = AssignerCallsAio(self._channel)
        if old is not None:
            # relayed calls on the old channel get their timeout to finish; a Watch held on it
            # is then cut (ChannelSwapped) and made again on the new one
            closing = asyncio.create_task(old.close(self.settings.heartbeat_timeout_s))
            self._closing_channels.add(closing)
            closing.add_done_callback(self._closing_channels.discard)

    async def _watch(self) -> None:
        failures = 0
        wait_s = self.settings.watch_wait_s
        rest = timing(self.settings)
        while True:
            request = pb.WatchRequest(wait_ns=_ns(wait_s), caller=self.view.address)
            known = self.view.generation
            if known is not None:
                request.known.CopyFrom(generation_to_wire(known))
            try:
                response = await _outliving_swaps(
                    self._require_calls().watch(
                        request, timeout=wait_s + self.settings.heartbeat_timeout_s
                    )
                )
                update = update_from_wire(response.update)
            except (grpc.RpcError, ValueError) as exc:
                failures += 1
                log.debug("watch on %s failed: %s", self._target, describe_error(exc))
                await asyncio.sleep(rest.backoff(failures) / NS_PER_SECOND)
                continue
            failures = 0
            if update is None:
                # nothing newer (or a target with nothing yet): never spin on quick answers
                await asyncio.sleep(rest.retry_initial_ns / NS_PER_SECOND)
                continue
            self.offer(update)

    def _adopted(self, change: Change) -> None:
        after = change.after
        log.info(
            "assignment %d.%d: %d of %d slices here",
            after.generation.incarnation, after.generation.number,
            len(after.slices_of(self.view.address)), len(after.starts),
        )  # fmt: skip
        self._changed.set()
        self._changed = asyncio.Event()
        self._changes.put_nowait(change)

    async def _announce(self) -> None:
        while True:
            change = await self._changes.get()
            for listener in self._listeners:
                try:
                    await listener.assignment_changed(change.before, change.after)
                except Exception:
                    log.exception("assignment listener %r failed", listener)
            self._announced = change.after
            self._delivered.set()

    def _drained(self) -> bool:
        """No slice of the held assignment is this member's, and the listeners heard of it."""
        held = self.view.assignment
        if held is None:
            return True
        if held.servers == frozenset({self.view.address}):
            return True  # the last member: nobody to hand its slices to
        return not self.view.owned() and self._announced is held and self._changes.empty()
