"""Who a Limiter reports to: the ``servers`` argument read into an assignment, and its own name."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence

from ratekeeper.core.slices import Assignment, even_split
from ratekeeper.transport.addresses import check_address

__all__ = ["assignment_of", "default_client_id"]


def assignment_of(servers: str | Sequence[str] | Assignment) -> Assignment:
    """One address owns everything; several split the hash space evenly, in the given order.

    Every address is checked here, so a malformed one fails at construction with a message
    naming it, rather than as a silent fail-open later.
    """
    if isinstance(servers, Assignment):
        for owner in servers.owners:
            check_address(owner)
        return servers
    if isinstance(servers, str):
        return even_split([check_address(servers)])
    if not isinstance(servers, Sequence) or not servers:
        raise ValueError(f"servers is one address or a list of them, not {servers!r}")
    return even_split([check_address(server) for server in servers])


def default_client_id() -> str:
    """Host, process and a random suffix: unique per Limiter, readable in server logs."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
