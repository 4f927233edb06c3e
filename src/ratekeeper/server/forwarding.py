"""Forwarding RLS descriptors to their owner over gRPC: the cluster side of ``ShouldRateLimit``.

:class:`GrpcForwarder` is the :class:`~ratekeeper.protocol.rls_forward.Forwarder` of a cluster
member: who owns a key comes from an :class:`OwnerLookup` (the member's held assignment); the
descriptors of one request for one owner travel as one ``ShouldRateLimit`` call carrying the
metadata :data:`FORWARDED` (``x-ratekeeper-forwarded: 1``), which the owner answers itself and
never forwards again. With ``coalesce``, at most ``max_in_flight`` calls go to one owner at a
time and requests that would queue behind them travel together in the next one, a batched call
(``server.coalescer``, ``server.forward_batch``); a lone request goes at once, as a plain
``ShouldRateLimit``. Channels are opened per owner on
first use (``transport.channels``), cached, and closed when the owner leaves the assignment
(:meth:`GrpcForwarder.assignment_changed`, an assignment listener) or the forwarder is closed.

Errors: a call that fails, or does not answer within ``timeout_s``, raises
:class:`~ratekeeper.errors.ForwardError` (the decider answers per ``fail_closed`` and counts it).
Event loop only: channels belong to the loop that opened them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any, Protocol

import grpc
import grpc.aio
from envoy.service.ratelimit.v3.rls_pb2 import RateLimitResponse
from google.protobuf.message import DecodeError

from ratekeeper.core.slices import Assignment
from ratekeeper.errors import ForwardError, RequestError
from ratekeeper.protocol import rls_wire
from ratekeeper.protocol.rls_forward import DescriptorStatus
from ratekeeper.server import forward_batch
from ratekeeper.server.coalescer import Coalescer
from ratekeeper.transport.channels import ChannelOption, describe_error, open_aio_channel

__all__ = [
    "FORWARDED",
    "FORWARDED_KEY",
    "AssignmentOwners",
    "GrpcForwarder",
    "HeldAssignment",
    "OwnerLookup",
    "ViewOwners",
    "is_forwarded",
]

#: The metadata key marking a call another member forwarded.
FORWARDED_KEY = "x-ratekeeper-forwarded"
#: The metadata every forwarded call carries.
FORWARDED: tuple[tuple[str, str], ...] = ((FORWARDED_KEY, "1"),)
_METHOD = "/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit"
#: Seconds a forwarded call may take before it is answered per ``fail_closed``: below the
#: caller's own timeout (docs/envoy/ratelimit_cluster.yaml gives Envoy's filter 0.5 s).
DEFAULT_TIMEOUT_S = 0.25
#: Calls in flight to one owner before further requests wait to share the next one.
DEFAULT_MAX_IN_FLIGHT = 2


class OwnerLookup(Protocol):
    """Who owns a key hash, from the member's held assignment."""

    def owner_of(self, key_hash: int) -> str | None:
        """The owning member's address; ``None`` when it is this member (or no assignment is
        held yet: a member answers alone until it has one)."""
        ...


class AssignmentOwners:
    """An :class:`OwnerLookup` over one held :class:`Assignment`, replaced as it changes (an
    assignment listener): this member is ``me``, its advertised gRPC address."""

    def __init__(self, me: str, assignment: Assignment | None = None) -> None:
        self.me = me
        #: The assignment held; ``None`` before the first.
        self.assignment = assignment

    def owner_of(self, key_hash: int) -> str | None:
        assignment = self.assignment
        if assignment is None:
            return None
        owner = assignment.owner_of(key_hash)
        return None if owner == self.me else owner

    async def assignment_changed(self, before: Assignment | None, after: Assignment) -> None:
        self.assignment = after


class HeldAssignment(Protocol):
    """What a member holds (the slicelet's ``SliceView``)."""

    @property
    def assignment(self) -> Assignment | None:
        """The assignment held; ``None`` before the first."""
        ...

    @property
    def address(self) -> str:
        """This member's name in assignments."""
        ...


class ViewOwners:
    """An :class:`OwnerLookup` reading the assignment a member's slicelet holds, as it holds it
    (a new assignment routes the very next descriptor)."""

    def __init__(self, view: HeldAssignment) -> None:
        self._view = view

    def owner_of(self, key_hash: int) -> str | None:
        view = self._view
        assignment = view.assignment
        if assignment is None:
            return None
        owner = assignment.owner_of(key_hash)
        return None if owner == view.address else owner


def is_forwarded(metadata: Iterable[tuple[str, Any]] | None) -> bool:
    """Whether a call's invocation metadata marks it forwarded by another member."""
    return metadata is not None and any(key == FORWARDED_KEY for key, _ in metadata)


Call = grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]


class GrpcForwarder:
    """Sends descriptors to their owner with ``ShouldRateLimit``; see the module docstring."""

    def __init__(
        self,
        owners: OwnerLookup,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        coalesce: bool = True,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        options: Sequence[ChannelOption] = (),
    ) -> None:
        self._owners = owners
        self._timeout_s = timeout_s
        self._coalesce = coalesce
        self._max_in_flight = max_in_flight
        self._options = tuple(options)
        self._channels: dict[str, grpc.aio.Channel] = {}
        #: Owner → its (ShouldRateLimit, batched) callables.
        self._calls: dict[str, tuple[Call, Call]] = {}
        #: Owner → the coalescer of its calls.
        self.coalescers: dict[str, Coalescer] = {}
        #: ``owner_of`` of the lookup, bound once (asked per counted descriptor).
        self.owner_of = owners.owner_of

    async def forward(
        self, owner: str, domain: str, descriptors: Sequence[bytes]
    ) -> Sequence[DescriptorStatus]:
        request = rls_wire.request(domain, descriptors)
        if self._coalesce:
            coalescer = self.coalescers.get(owner)
            if coalescer is None:
                self._open(owner)
                coalescer = self.coalescers[owner]
            raw = await coalescer.call(request)
        else:
            raw = await self._call(owner, request)
        try:
            statuses = RateLimitResponse.FromString(raw).statuses
        except DecodeError as exc:
            raise ForwardError(f"{owner}: malformed RateLimitResponse: {exc}") from None
        if len(statuses) != len(descriptors):
            raise ForwardError(
                f"{owner}: {len(statuses)} statuses for {len(descriptors)} descriptors"
            )
        return list(statuses)

    async def _call(self, owner: str, request: bytes) -> bytes:
        single, _ = self._calls.get(owner) or self._open(owner)
        try:
            answer: bytes = await single(request, timeout=self._timeout_s, metadata=FORWARDED)
        except grpc.RpcError as exc:
            raise ForwardError(f"{owner}: {describe_error(exc)}") from None
        return answer

    async def _call_batch(self, owner: str, requests: list[bytes]) -> list[bytes]:
        _, batched = self._calls.get(owner) or self._open(owner)
        body = forward_batch.encode(requests)
        try:
            raw = await batched(body, timeout=self._timeout_s, metadata=FORWARDED)
            answers = forward_batch.decode(raw)
        except grpc.RpcError as exc:
            raise ForwardError(f"{owner}: {describe_error(exc)}") from None
        except RequestError as exc:
            raise ForwardError(f"{owner}: {exc}") from None
        if len(answers) != len(requests):
            raise ForwardError(f"{owner}: {len(answers)} answers for {len(requests)} requests")
        return answers

    def _open(self, owner: str) -> tuple[Call, Call]:
        """Open ``owner``'s channel; its (ShouldRateLimit, batched) callables."""
        channel = self._channels[owner] = open_aio_channel(owner, self._options)
        # No (de)serializers: bytes in, bytes out, as the RLS servicer itself exchanges them.
        calls = self._calls[owner] = (
            channel.unary_unary(_METHOD, None, None),
            channel.unary_unary(forward_batch.METHOD, None, None),
        )
        self.coalescers[owner] = Coalescer(
            partial(self._call, owner), partial(self._call_batch, owner), self._max_in_flight
        )
        return calls

    @property
    def open_owners(self) -> frozenset[str]:
        """The owners a channel is open to."""
        return frozenset(self._channels)

    async def assignment_changed(self, before: Assignment | None, after: Assignment) -> None:
        """Close the channels of owners that no longer hold a slice."""
        for owner in self.open_owners - after.servers:
            await self._close(owner)

    async def close(self) -> None:
        """Cancel the calls still being sent and close every channel."""
        for owner in self.open_owners:
            await self._close(owner)

    async def _close(self, owner: str) -> None:
        self._calls.pop(owner, None)
        coalescer = self.coalescers.pop(owner, None)
        if coalescer is not None:
            coalescer.cancel()
        channel = self._channels.pop(owner)
        await channel.close(None)
