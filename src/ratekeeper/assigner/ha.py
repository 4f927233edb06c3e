"""Several assigners, one leading: ``ratekeeper assigner --etcd URL[,URL…]``.

Every assigner process serves AssignerService on its address and takes part in the election
(:mod:`ratekeeper.assigner.leadership`). What answers depends on its role:

* **leading**: an :class:`~ratekeeper.assigner.server.AssignerService` over a machine resumed
  from the last assignment stored in etcd, re-issued under a new, higher incarnation (so every
  member adopts it over anything older) with the same slices on the same servers; the members
  of that assignment are presumed alive until they have had the full timeout to say otherwise.
  Each proposal is stored in etcd before it is published, fenced by this leadership's revision:
  a leader deposed while it was paused has its late write refused by etcd, so it publishes
  nothing.
* **following**: every call is passed to the leader (its address is the value of the leader
  key); with no leader known, Heartbeat answers UNAVAILABLE (members keep their assignment and
  retry, or try the next address of their ``--join`` list) and Watch and Status answer from the
  last assignment this process saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import grpc
import grpc.aio

from ratekeeper.assigner.coordination import Coordination
from ratekeeper.assigner.election import ElectionSettings
from ratekeeper.assigner.leadership import Leadership
from ratekeeper.assigner.machine import AssignerMachine
from ratekeeper.assigner.server import (
    AssignerService,
    Clock,
    assigner_server,
    assigner_token,
    new_incarnation,
    security_for_logs,
)
from ratekeeper.assigner.settings import AssignerSettings
from ratekeeper.core.slices import Assignment, Generation
from ratekeeper.errors import CoordinationError
from ratekeeper.proto.assignment import assignment_from_wire, assignment_to_wire
from ratekeeper.proto.cluster import AssignerCallsAio, assigner_handler
from ratekeeper.proto.ratekeeper.v1 import assignment_pb2 as assignment_pb
from ratekeeper.transport.channels import aio_opener

__all__ = ["HaSettings", "decode_assignment", "encode_assignment", "running_ha_assigner"]

log = logging.getLogger(__name__)

#: How long a passed-on call may take beyond what the caller allowed.
_PROXY_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class HaSettings:
    """Where the election runs and how long a leadership lasts."""

    #: etcd client URLs, ``http://HOST:PORT[,…]``.
    etcd: str
    #: The key prefix under which the leader key and the assignment live.
    prefix: str = "/ratekeeper"
    election: ElectionSettings = field(default_factory=ElectionSettings)


def encode_assignment(assignment: Assignment) -> bytes:
    """What is stored in etcd: the wire form of the assignment."""
    return assignment_to_wire(assignment).SerializeToString()


def decode_assignment(data: bytes) -> Assignment:
    """The stored assignment (raises ValueError, or DecodeError, on bytes that are not one)."""
    return assignment_from_wire(assignment_pb.Assignment.FromString(data))


class _Term:
    """One leadership term: the machine's service, its timer, and the fence of its writes."""

    def __init__(self, service: AssignerService, fence: int) -> None:
        self.service = service
        self.fence = fence
        self.timer = asyncio.create_task(service.run(), name="assigner-timer")

    async def end(self) -> None:
        self.service.close()
        self.timer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.timer


class HaAssigner:
    """The role-switching AssignerService of one elected assigner (see the module docstring)."""

    def __init__(
        self,
        settings: AssignerSettings,
        leadership: Leadership,
        address: str,
        clock: Clock = time.monotonic_ns,
        token: str | None = None,
    ) -> None:
        self._settings = settings
        #: Calls passed to the leader go over TLS as this assigner serves, with the token.
        self._connect = aio_opener(settings.peer_tls(), token)
        self._leadership = leadership
        self.address = address
        self._clock = clock
        self._term: _Term | None = None
        self._seen: Assignment | None = None
        self._channels: dict[str, tuple[grpc.aio.Channel, AssignerCallsAio]] = {}
        self._switching = asyncio.Lock()
        leadership.listen(self._leading_changed)

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        return assigner_handler(
            functools.partial(self._answer, "heartbeat"),
            functools.partial(self._answer, "watch"),
            functools.partial(self._answer, "status"),
        )

    @property
    def leading(self) -> bool:
        return self._term is not None

    async def resign(self) -> None:
        """Stop campaigning and give the lead up at once (SIGTERM): a standby takes over."""
        await self._leadership.stop(resign=True)

    async def close(self) -> None:
        async with self._switching:
            if self._term is not None:
                await self._term.end()
                self._term = None
        for channel, _ in self._channels.values():
            await channel.close(None)
        self._channels.clear()

    # --- roles ------------------------------------------------------------------------------

    async def _leading_changed(self, leading: bool) -> None:
        async with self._switching:
            if leading and self._term is None:
                self._term = await self._begin()
            elif not leading and self._term is not None:
                log.warning("%s stopped leading: following again", self.address)
                await self._term.end()
                self._term = None

    async def _begin(self) -> _Term | None:
        fence = self._leadership.fence
        if fence is None:
            return None
        try:
            stored = await self._leadership.load()
            start = decode_assignment(stored) if stored else None
        except (CoordinationError, ValueError) as error:
            # Not leading safely without what the last leader decided: step aside and retry.
            log.error("cannot read the stored assignment (%s); resigning this term", error)
            await self._leadership.abdicate()
            return None
        incarnation = new_incarnation()
        if start is not None:
            incarnation = max(incarnation, start.generation.incarnation + 1)
            # The same slices on the same servers, under this leader's incarnation.
            start = replace(start, generation=Generation(incarnation, 1))
            if not await self._leadership.save(encode_assignment(start), fence):
                log.warning("%s: resumed assignment refused by etcd; not leading", self.address)
                return None
        machine = AssignerMachine(self._settings.machine(), incarnation, self._clock(), start)

        async def persist(assignment: Assignment) -> bool:
            stored = await self._leadership.save(encode_assignment(assignment), fence)
            if not stored:
                log.warning(
                    "%s: assignment %d.%d refused (no longer the leader)",
                    self.address,
                    assignment.generation.incarnation,
                    assignment.generation.number,
                )
            return stored

        service = AssignerService(
            machine, self._settings, address=self.address, clock=self._clock, persist=persist
        )
        log.info(
            "%s leading (incarnation %d, %s)",
            self.address,
            incarnation,
            "resumed" if start is not None else "fresh",
        )
        return _Term(service, fence)

    # --- the three methods ------------------------------------------------------------------

    async def _answer(
        self, method: str, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Any:
        """``method`` of AssignerService: this term's service answers, or the leader does."""
        if self._term is not None:
            return await getattr(self._term.service, method)(request, context)
        calls = await self._leader_calls(context)
        return await self._passed_on(getattr(calls, method), request, context)

    async def _leader_calls(self, context: grpc.aio.ServicerContext[Any, Any]) -> AssignerCallsAio:
        leader = self._leadership.leader
        if leader is None or leader.name == self.address:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "no assigner leads at the moment")
            raise AssertionError("unreachable")  # abort raises
        known = self._channels.get(leader.name)
        if known is None:
            for channel, _ in self._channels.values():
                await channel.close(None)
            channel = self._connect(leader.name, ())
            known = self._channels[leader.name] = (channel, AssignerCallsAio(channel))
            self._channels = {leader.name: known}
        return known[1]

    @staticmethod
    async def _passed_on(
        call: Any, request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Any:
        remaining = context.time_remaining()
        timeout = _PROXY_TIMEOUT_S if remaining is None else remaining
        try:
            return await call(request, timeout=timeout)
        except grpc.aio.AioRpcError as error:
            await context.abort(error.code(), f"via the leader: {error.details()}")


@contextlib.asynccontextmanager
async def running_ha_assigner(
    settings: AssignerSettings,
    coordination: Coordination,
    election: ElectionSettings | None = None,
    *,
    advertise: str | None = None,
    clock: Clock = time.monotonic_ns,
) -> AsyncIterator[HaAssigner]:
    """An elected assigner serving on ``settings.listen`` until the block exits (it resigns on
    the way out, so a standby takes over at once). ``advertise``: the address the others reach
    it at (default: the bound listen address)."""
    token = assigner_token(settings)
    server, bound = assigner_server(settings, token)
    address = advertise or bound
    leadership = Leadership(coordination, address, election, clock)
    assigner = HaAssigner(settings, leadership, address, clock, token)
    server.add_generic_rpc_handlers([assigner.handler()])
    await server.start()
    await leadership.start()
    log.info("assigner %s campaigning%s", address, security_for_logs(settings))
    try:
        yield assigner
    finally:
        await assigner.resign()
        await assigner.close()
        await server.stop(grace=0.5)
        await coordination.close()
