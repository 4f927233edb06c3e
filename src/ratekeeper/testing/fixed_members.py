"""Cluster members with a fixed assignment, in-process: no assigner, no slicelet.

What tests and benchmarks of forwarding use when the assignment must not move: each member
holds one :class:`~ratekeeper.core.slices.Assignment` given up front (an
:class:`~ratekeeper.server.forwarding.AssignmentOwners`, replaced by hand if a test wants), and
forwards RLS descriptors another member owns to it. Real members get theirs from the assigner
(``ratekeeper serve --join``; :mod:`ratekeeper.testing.cluster`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ratekeeper.server.app import build
from ratekeeper.server.components import Components
from ratekeeper.server.forwarding import DEFAULT_MAX_IN_FLIGHT, GrpcForwarder, OwnerLookup
from ratekeeper.server.security import peer_channels, read_token
from ratekeeper.server.settings import ServerSettings

__all__ = ["build_member"]


def build_member(
    settings: ServerSettings,
    owners: OwnerLookup,
    clock: Callable[[], int] = time.time_ns,
    *,
    coalesce: bool = True,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
) -> Components:
    """The server :func:`~ratekeeper.server.app.build` makes, as a member of the cluster whose
    assignment ``owners`` holds: RLS descriptors another member owns are forwarded to it,
    concurrent ones coalesced (``ratekeeper.server.forwarding``)."""
    token = read_token(settings.auth.token_file) if settings.auth.token_file else None
    forwarder = GrpcForwarder(
        owners,
        coalesce=coalesce,
        max_in_flight=max_in_flight,
        connect=peer_channels(settings.tls, token),  # the members' TLS and token
    )
    return build(settings, clock, forwarder)
