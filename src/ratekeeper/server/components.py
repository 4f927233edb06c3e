"""What one server process is made of: the value the composition root builds and wires."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ratekeeper.assigner.server import AssignerService
from ratekeeper.backends.store import Store
from ratekeeper.protocol.policy import PolicyHolder
from ratekeeper.protocol.report import ReportProcessor
from ratekeeper.protocol.rls import RlsDecider
from ratekeeper.server.forwarding import GrpcForwarder
from ratekeeper.server.health import ServingHealth
from ratekeeper.server.metrics import Metrics
from ratekeeper.server.operator_history import OperatorTap
from ratekeeper.server.settings import ServerSettings
from ratekeeper.server.slicelet import Slicelet

__all__ = ["Components"]


@dataclass(frozen=True, slots=True)
class Components:
    """Everything a process is made of, built once from the settings."""

    settings: ServerSettings
    policy: PolicyHolder
    store: Store
    metrics: Metrics
    health: ServingHealth
    #: Envoy RLS decisions (gRPC and ``POST /json``).
    decider: RlsDecider
    #: Batch reports.
    reports: ReportProcessor
    #: The wall clock calls are decided at (ns since the epoch).
    clock: Callable[[], int] = time.time_ns
    #: This server's membership in a cluster (``None``: it runs alone).
    slicelet: Slicelet | None = None
    #: The cluster's assigner, when this server embeds it (``--assigner-embedded``).
    assigner: AssignerService | None = None
    #: A cluster member's RLS forwarding to other members; ``None`` for a lone server.
    forwarder: GrpcForwarder | None = None
    #: The shared token Report, Watch and the admin endpoints require (``None``: none).
    auth_token: str | None = None
    #: What the operator page shows, fed by the reports (``None``: no page, no admin listener).
    operator: OperatorTap | None = None
