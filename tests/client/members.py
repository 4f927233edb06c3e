"""Cluster members for client tests: real gRPC servers with the real report service, each also
serving ``AssignerService.Watch`` (the real :func:`ratekeeper.proto.cluster.assigner_handler`)
from one assignment the test publishes — what every member of a cluster serves to its clients.

:class:`Members` runs on the caller's event loop (asyncio clients); :class:`ThreadedMembers` runs
it on a private loop in a daemon thread, for the blocking ``Limiter``. Each member records the
reports it applied, so a test can check that every key went to its owner.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

import grpc
import grpc.aio

from ratekeeper.core.assignment_diff import update_for
from ratekeeper.core.keys import canonical_bytes, key_hash
from ratekeeper.core.slices import Assignment
from ratekeeper.proto.assignment import generation_from_wire, update_to_wire
from ratekeeper.proto.cluster import assigner_handler
from ratekeeper.proto.ratekeeper.v1 import cluster_pb2 as cpb
from ratekeeper.proto.ratekeeper.v1 import report_pb2 as pb
from ratekeeper.server.report_servicer import add_report_servicer

from .conftest import RecordingService

T = TypeVar("T")


def owner_of(assignment: Assignment, entry: pb.KeyReport) -> str:
    """The owner of a reported key by ``assignment`` (the wire-contract hash)."""
    entries = [(e.key, e.value) for e in entry.entries]
    return assignment.owner_of(key_hash(canonical_bytes(entry.domain, entries)))


class Members:
    """``count`` members on loopback, each serving Report and Watch; see the module docstring."""

    def __init__(self, count: int) -> None:
        self.services = [RecordingService(None) for _ in range(count)]
        self.servers: list[grpc.aio.Server | None] = [None] * count
        self.ports = [0] * count
        self.assignment: Assignment | None = None
        self.watches = 0
        self._changed: asyncio.Event | None = None

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{port}" for port in self.ports]

    async def start(self) -> None:
        self._changed = asyncio.Event()
        for i in range(len(self.services)):
            await self.start_member(i)

    async def start_member(self, i: int) -> None:
        server = grpc.aio.server()
        add_report_servicer(self.services[i], server)
        server.add_generic_rpc_handlers((assigner_handler(_refuse, self._watch, _refuse),))
        self.ports[i] = server.add_insecure_port(f"127.0.0.1:{self.ports[i]}")
        await server.start()
        self.servers[i] = server

    async def stop_member(self, i: int) -> None:
        server, self.servers[i] = self.servers[i], None
        if server is not None:
            await server.stop(None)

    async def stop(self) -> None:
        for i in range(len(self.servers)):
            await self.stop_member(i)

    async def publish(self, assignment: Assignment) -> None:
        """Every member holds ``assignment`` from now on; long polls waiting answer at once."""
        self.assignment = assignment
        assert self._changed is not None
        self._changed.set()
        self._changed = asyncio.Event()

    def misdirected(self) -> list[tuple[str, str]]:
        """(member, key) of every key a member was sent that it does not own by the current
        assignment."""
        assert self.assignment is not None
        return [
            (address, entry.entries[0].value)
            for address, service in zip(self.addresses, self.services, strict=True)
            for request in service.requests
            for entry in request.keys
            if owner_of(self.assignment, entry) != address
        ]

    async def _watch(
        self, request: cpb.WatchRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> cpb.WatchResponse:
        self.watches += 1
        known = generation_from_wire(request.known) if request.HasField("known") else None
        if known is not None and self.assignment is not None:
            changed = self._changed
            if known == self.assignment.generation and changed is not None:
                try:
                    await asyncio.wait_for(changed.wait(), request.wait_ns / 1e9)
                except TimeoutError:
                    return cpb.WatchResponse()
        if self.assignment is None:
            return cpb.WatchResponse()
        update = update_for(known, self.assignment, {})
        if update is None:
            return cpb.WatchResponse()
        return cpb.WatchResponse(update=update_to_wire(update))


async def _refuse(request: object, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "a member of a fixed assignment")


class ThreadedMembers:
    """:class:`Members` on a private event loop, for blocking callers."""

    def __init__(self, count: int) -> None:
        self.members = Members(count)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.run(self.members.start())

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result(timeout=10)

    @property
    def addresses(self) -> list[str]:
        return self.members.addresses

    def publish(self, assignment: Assignment) -> None:
        self.run(self.members.publish(assignment))

    def stop_member(self, i: int) -> None:
        self.run(self.members.stop_member(i))

    def close(self) -> None:
        self.run(self.members.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
