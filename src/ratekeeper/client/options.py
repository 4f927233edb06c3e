"""What a limiter is told besides its servers: one frozen value, built once by the Limiter."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ratekeeper.client.policy import LimitsArg
from ratekeeper.config import PolicyTree

__all__ = ["LimiterOptions"]


@dataclass(frozen=True, slots=True)
class LimiterOptions:
    """Everything a limiter is told besides its servers; documented on ``ratekeeper.Limiter``."""

    domain: str = "default"
    limit: LimitsArg | Mapping[str, LimitsArg] | None = None
    policies: PolicyTree | str | os.PathLike[str] | None = None
    report_interval: float = 0.1
    client_id: str | None = None
    max_keys: int = 100_000
    max_keys_per_report: int = 10_000
    timeout: float | None = None
    #: Intern keys per server: the descriptor once, then an id and counts (issue 15).
    compact_reports: bool = True
    #: Start a key no answer has covered with this client's dealt share of its bucket, not the
    #: whole bucket (``client.dealing``; docs/client.md: onset bound vs sparse keys' first hits).
    dealt_onset: bool = False
