"""The gRPC services a server registers: one line each in :data:`SERVICES`.

Each registration ``(grpc.aio.Server, Components) -> None`` wraps the protocol logic it serves
(``decider``, ``reports``) in its servicer; one that a lone server does not need (the cluster's,
the hand-off, forwarded batches) registers nothing then.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2_grpc

from ratekeeper.protocol.ownership import StoreGate
from ratekeeper.protocol.rlqs import RlqsQuotas
from ratekeeper.server.components import Components
from ratekeeper.server.forward_batch import BatchServicer, add_batch_servicer
from ratekeeper.server.handoff import attach_handoff
from ratekeeper.server.member_service import MemberService
from ratekeeper.server.report_servicer import add_report_servicer, servicer_for
from ratekeeper.server.rlqs_servicer import RlqsServicer, add_rlqs_servicer
from ratekeeper.server.rls_servicer import add_rls_servicer, rls_servicer
from ratekeeper.server.security import peer_channels

__all__ = ["SERVICES"]


def _add_rls(server: grpc.aio.Server, c: Components) -> None:
    add_rls_servicer(rls_servicer(c.decider, c.metrics, c.clock), server)


def _add_reports(server: grpc.aio.Server, c: Components) -> None:
    view = c.slicelet.view if c.slicelet is not None else None
    add_report_servicer(servicer_for(c.reports, c.metrics, c.clock, view), server)


def _add_rlqs(server: grpc.aio.Server, c: Components) -> None:
    quotas = RlqsQuotas(StoreGate(c.store), lambda: c.policy.policy)
    add_rlqs_servicer(RlqsServicer(quotas, c.metrics, c.clock), server)


def _add_forwarded_batches(server: grpc.aio.Server, c: Components) -> None:
    if c.forwarder is not None:  # a cluster member: others send it coalesced calls
        add_batch_servicer(BatchServicer(c.decider, c.metrics, c.clock), server)


def _add_health(server: grpc.aio.Server, c: Components) -> None:
    health_pb2_grpc.add_HealthServicer_to_server(c.health.servicer, server)


def _add_cluster(server: grpc.aio.Server, c: Components) -> None:
    # the member embedding the assigner serves the assigner's own AssignerService
    if c.assigner is not None:
        server.add_generic_rpc_handlers((c.assigner.handler(),))
    elif c.slicelet is not None:
        server.add_generic_rpc_handlers((MemberService(c.slicelet).handler(),))


def _add_handoff(server: grpc.aio.Server, c: Components) -> None:
    if c.slicelet is not None:  # a cluster member hands its counters off as slices move
        timeout = c.settings.cluster.handoff_timeout_s
        connect = peer_channels(c.settings.tls, c.auth_token)
        attach_handoff(server, c.store, c.slicelet, c.metrics.registry, c.clock, timeout, connect)


#: gRPC services every server registers.
SERVICES: tuple[Callable[[grpc.aio.Server, Components], None], ...] = (
    _add_rls,
    _add_health,
    _add_reports,
    _add_rlqs,
    _add_cluster,
    _add_handoff,
    _add_forwarded_batches,
)
