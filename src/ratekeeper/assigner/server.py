"""The assigner over gRPC: AssignerService on an :class:`AssignerMachine`, and its timer.

:class:`AssignerService` is the thin asyncio driver. :meth:`AssignerService.run` is the timer:
it sleeps until the machine's :meth:`~AssignerMachine.next_deadline` or until a heartbeat wakes
it, and steps the machine; every round runs there, one at a time. A heartbeat that changes the
membership wakes the timer and waits (briefly) for that round, so the member gets the new
assignment in its answer. Heartbeats arriving together share one round: a cold start or a
restart of many members is a few rounds, not one per member. Watch is a long poll, held until
an assignment newer than the caller's appears; at most ``max_watchers`` are held at once.
Status lists the members.

Publishing: each proposal is handed to the optional ``persist`` coroutine first and committed
only if it answers ``True`` (the seam for a durable, leader-elected assigner); without one,
proposals are committed as they come. Waiting watchers are woken after the commit.

:func:`running_assigner` runs it standalone on its own gRPC server (``ratekeeper assigner``),
bound by :func:`assigner_server`: TLS (mTLS with a client CA) when the settings name a
certificate, so a plaintext member is refused at the handshake, and with a token file every call
must carry ``authorization: Bearer <token>`` (else UNAUTHENTICATED), as on the members. A
server embedding the assigner adds :meth:`AssignerService.handler` to its own gRPC server and
must run :meth:`AssignerService.run` as a task (without the timer, nothing is ever assigned).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

from ratekeeper.assigner.machine import Accepted, AssignerMachine
from ratekeeper.assigner.settings import AssignerSettings
from ratekeeper.assigner.wire import heartbeat_from_wire, status_to_wire
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.core.slices import Assignment, Generation
from ratekeeper.proto.assignment import generation_from_wire, update_to_wire
from ratekeeper.proto.cluster import SERVICE, assigner_handler
from ratekeeper.proto.ratekeeper.v1 import assignment_pb2 as apb
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as pb
from ratekeeper.transport.listening import TokenInterceptor, bind_grpc, connection_options
from ratekeeper.transport.tls import read_token

__all__ = [
    "GUARDED_METHODS",
    "AssignerService",
    "Clock",
    "Persist",
    "assigner_server",
    "assigner_token",
    "new_incarnation",
    "running_assigner",
    "security_for_logs",
]

log = logging.getLogger(__name__)

#: Stores a proposed assignment durably; ``True`` when it may be published.
Persist = Callable[[Assignment], Awaitable[bool]]
#: Monotonic nanoseconds.
Clock = Callable[[], int]
#: Distinct caller generations whose wire update is kept for the current assignment.
_MAX_CACHED_UPDATES = 64
#: The longest a heartbeat waits for the round its news asked for.
_MAX_HOLD_S = 0.5
#: A Watch answers this long before the caller's own deadline, so it gets an answer, not an error.
_DEADLINE_MARGIN_S = 0.05

_REFUSALS: dict[Accepted, tuple[grpc.StatusCode, str]] = {
    Accepted.STALE: (
        grpc.StatusCode.FAILED_PRECONDITION,
        "a newer process at this address has replaced this incarnation",
    ),
    Accepted.FULL: (grpc.StatusCode.RESOURCE_EXHAUSTED, "the assigner has its most members"),
}


#: The calls that must carry the token when one is set: all of them.
GUARDED_METHODS: frozenset[str] = frozenset(
    f"/{SERVICE}/{name}" for name in ("Heartbeat", "Watch", "Status")
)


def assigner_token(settings: AssignerSettings) -> str | None:
    """The shared token of ``settings.auth_token_file``, or ``None``; raises
    :class:`~ratekeeper.transport.tls.TlsError` for an unreadable or empty file."""
    return read_token(settings.auth_token_file) if settings.auth_token_file else None


def assigner_server(settings: AssignerSettings, token: str | None) -> tuple[grpc.aio.Server, str]:
    """A gRPC server bound to ``settings.listen`` with the settings' TLS and requiring
    ``token`` on every call, and the ``host:port`` bound (a port 0 resolved). Raises
    ``OSError`` when it cannot listen, :class:`~ratekeeper.transport.tls.TlsError` for an
    unreadable certificate or key."""
    interceptors = [TokenInterceptor(token, GUARDED_METHODS)] if token else None
    # idle, half-open and never-handshaken connections closed, as on a server's listener
    server = grpc.aio.server(options=connection_options(), interceptors=interceptors)
    host, _, _ = settings.listen.rpartition(":")
    try:
        port = bind_grpc(server, settings.listen, settings.tls())
    except RuntimeError as exc:  # grpc's way of saying the address is taken or invalid
        raise OSError(f"cannot listen on {settings.listen}: {exc}") from None
    if port == 0:
        raise OSError(f"cannot listen on {settings.listen}")
    return server, f"{host}:{port}"


def new_incarnation() -> int:
    """An incarnation above any earlier start's: milliseconds of wall-clock time."""
    return time.time_ns() // 1_000_000


class AssignerService:
    """AssignerService and the timer over one machine (see the module docstring).

    Use from one event loop. ``address`` is what Status reports as the assigner's.
    """

    def __init__(
        self,
        machine: AssignerMachine,
        settings: AssignerSettings,
        *,
        address: str,
        clock: Clock = time.monotonic_ns,
        persist: Persist | None = None,
    ) -> None:
        self.machine = machine
        self.settings = settings
        self.address = address
        self._clock = clock
        self._persist = persist
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        #: Set, and replaced, when a round ends.
        self._round_done = asyncio.Event()
        #: How long a heartbeat waits for the round it asked for.
        self._hold_s = min(settings.heartbeat_interval_s / 2, _MAX_HOLD_S)
        self._published = asyncio.Event()
        self._watchers = 0
        #: Wire updates for the generation ``_updates_of``, by the generation the caller holds.
        self._updates_of: Generation | None = None
        self._updates: dict[Generation | None, apb.AssignmentUpdate | None] = {}
        self._closed = False

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        """The gRPC handler serving this service."""
        return assigner_handler(self.heartbeat, self.watch, self.status)

    @property
    def watchers(self) -> int:
        """Watch calls held open now."""
        return self._watchers

    # --- the three methods ------------------------------------------------------------------

    async def heartbeat(
        self, request: pb.HeartbeatRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.HeartbeatResponse:
        try:
            beat = heartbeat_from_wire(request)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        accepted = self.machine.heartbeat(beat, self._clock())
        if accepted in _REFUSALS:
            code, reason = _REFUSALS[accepted]
            await context.abort(code, f"{beat.address} ({beat.incarnation_id}): {reason}")
        self._wake.set()  # the timer sleeps until the deadline this beat may have moved
        deadline = self.machine.next_deadline()
        if deadline is not None and deadline <= self._clock():
            # this beat changed the membership: the timer takes the round; answer with its
            # outcome. Beats arriving together share one round; a round held up by a slow
            # persist is not waited for long (the member hears of it next time, or by Watch).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._round_done.wait(), self._hold_s)
        machine = self.machine.settings
        return pb.HeartbeatResponse(
            heartbeat_interval_ns=machine.heartbeat_interval_ns,
            unhealthy_after_ns=machine.unhealthy_after_ns,
            update=self._update_for(beat.known),  # None: no update
        )

    async def watch(
        self, request: pb.WatchRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.WatchResponse:
        known = generation_from_wire(request.known) if request.HasField("known") else None
        update = self._update_for(known)
        wait_s = min(request.wait_ns / NS_PER_SECOND, self.settings.max_wait_s)
        remaining = context.time_remaining()
        if remaining is not None:
            wait_s = min(wait_s, remaining - _DEADLINE_MARGIN_S)
        if update is None and wait_s > 0 and not self._closed:
            if self._watchers >= self.settings.max_watchers:
                await context.abort(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"{self._watchers} watchers already wait; retry later",
                )
            self._watchers += 1
            try:
                update = await self._newer_than(known, wait_s)
            finally:
                self._watchers -= 1
        return pb.WatchResponse(update=update)  # None: no update

    async def status(
        self, request: pb.StatusRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.StatusResponse:
        machine = self.machine
        # summing the load of thousands of slices is slow enough to run off the loop
        return await asyncio.to_thread(
            status_to_wire,
            machine.current,
            machine.members,
            machine.load_reports(),
            self._clock(),
            self.address,
        )

    # --- the driver -------------------------------------------------------------------------

    async def advance(self) -> None:
        """Step the machine now; persist and commit what it proposes, then wake watchers and
        the heartbeats waiting for this round."""
        try:
            async with self._lock:
                job = self.machine.begin(self._clock())
                if job is None:
                    return
                # pure and possibly long (many slices): off the loop, so heartbeats, Watch and,
                # for an embedded assigner, the server's own calls are served meanwhile
                try:
                    result = await asyncio.to_thread(job.run)
                except Exception:
                    # a bug in a round must not stop the assigner: it keeps the assignment it
                    # has and tries the round again a heartbeat interval later
                    log.exception("assignment round %s failed", _name(job.generation))
                    self.machine.finish(job, None)
                    self.machine.abandon(self._clock())
                    return
                proposal = self.machine.finish(job, result)
                if proposal is None:
                    return
                if await self._persisted(proposal):
                    self.machine.commit(proposal, self._clock())
                    self._announce(proposal)
                else:
                    self.machine.abandon(self._clock())
        finally:
            self._round_done.set()
            self._round_done = asyncio.Event()

    async def run(self) -> None:
        """Step the machine whenever it is due, until cancelled or :meth:`close`."""
        while not self._closed:
            self._wake.clear()  # before reading the deadline, so no wake-up is lost
            deadline = self.machine.next_deadline()
            delay = None if deadline is None else max(0, deadline - self._clock()) / NS_PER_SECOND
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
            if not self._closed:
                await asyncio.sleep(0)  # heartbeats already received record first: one round
                await self.advance()

    def close(self) -> None:
        """Stop the timer and answer every held Watch now."""
        self._closed = True
        self._wake.set()
        self._published.set()

    async def _persisted(self, proposal: Assignment) -> bool:
        if self._persist is None:
            return True
        try:
            return await self._persist(proposal)
        except Exception:
            log.exception("persisting assignment %s failed", _name(proposal.generation))
            return False

    def _announce(self, assignment: Assignment) -> None:
        log.info(
            "assignment %s: %d slices on %d members",
            _name(assignment.generation),
            len(assignment.starts),
            len(assignment.servers),
        )
        self._published.set()
        self._published = asyncio.Event()

    def _update_for(self, known: Generation | None) -> apb.AssignmentUpdate | None:
        """The machine's update for ``known`` in wire form, made once per generation pair: the
        members mostly hold the same generation, and a diff of many slices is not free."""
        current = self.machine.current
        if current is None:
            return None
        if self._updates_of != current.generation or len(self._updates) > _MAX_CACHED_UPDATES:
            self._updates_of, self._updates = current.generation, {}
        if known not in self._updates:
            update = self.machine.update_for(known)
            self._updates[known] = None if update is None else update_to_wire(update)
        return self._updates[known]

    async def _newer_than(
        self, known: Generation | None, wait_s: float
    ) -> apb.AssignmentUpdate | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while not self._closed:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._published.wait(), remaining)
            update = self._update_for(known)
            if update is not None:
                return update
        return None


def security_for_logs(settings: AssignerSettings) -> str:
    """`` tls=grpc[,mtls] auth=token`` as far as each is on (never a secret)."""
    tls = settings.tls()
    parts = [] if tls is None else ["tls=grpc,mtls" if tls.client_ca else "tls=grpc"]
    if settings.auth_token_file:
        parts.append("auth=token")
    return "".join(" " + part for part in parts)


def _name(generation: Generation) -> str:
    return f"{generation.incarnation}.{generation.number}"


@contextlib.asynccontextmanager
async def running_assigner(
    settings: AssignerSettings,
    *,
    persist: Persist | None = None,
    start: Assignment | None = None,
    incarnation: int | None = None,
    clock: Clock = time.monotonic_ns,
) -> AsyncIterator[AssignerService]:
    """The assigner serving on its own gRPC server at ``settings.listen`` until the block exits.

    The service's ``address`` is the bound one (a port 0 in ``listen`` is resolved). Raises as
    :func:`assigner_server` does.
    """
    machine = AssignerMachine(
        settings.machine(),
        new_incarnation() if incarnation is None else incarnation,
        clock(),
        start,
    )
    server, address = assigner_server(settings, assigner_token(settings))
    service = AssignerService(machine, settings, address=address, clock=clock, persist=persist)
    server.add_generic_rpc_handlers([service.handler()])
    await server.start()
    timer = asyncio.create_task(service.run(), name="assigner-timer")
    log.info(
        "assigner listening on %s (incarnation %d)%s",
        service.address,
        machine.incarnation,
        security_for_logs(settings),
    )
    try:
        yield service
    finally:
        service.close()
        timer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await timer
        await server.stop(grace=0.5)
