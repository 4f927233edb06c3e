"""RLQS usage reports and bucket actions as typed values: what the quota logic takes and returns.

The wire forms (``envoy.service.rate_limit_quota.v3`` ``RateLimitQuotaUsageReports`` and
``RateLimitQuotaResponse``) are converted at the edge (``ratekeeper.server.rlqs_servicer``), so
the logic never sees protobuf.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Blanket", "BucketAction", "BucketKey", "BucketUsage", "Push", "TokenBucket", "Usage"]

#: A bucket id's map ``{key: value}`` as sorted items: the same bucket whatever order it came in.
BucketKey = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class BucketUsage:
    """One bucket of a usage report: what one Envoy counted for it since its previous report."""

    #: The bucket id.
    bucket: BucketKey
    #: Requests the Envoy admitted (debited from the bucket's counters).
    allowed: int = 0
    #: Requests the Envoy denied (they count nowhere; they only show the bucket is in use).
    denied: int = 0
    #: Time the counts cover (0 on a bucket's first report: Envoy 1.40 sends that).
    elapsed_ns: int = 0


@dataclass(frozen=True, slots=True)
class Usage:
    """One ``RateLimitQuotaUsageReports`` message."""

    #: The report's ``domain``: the rate limit domain its buckets are matched in.
    domain: str
    usages: tuple[BucketUsage, ...]


class Blanket(enum.Enum):
    """A blanket rule: every request of the bucket allowed, or every one denied."""

    ALLOW_ALL = "allow_all"
    DENY_ALL = "deny_all"


@dataclass(frozen=True, slots=True)
class TokenBucket:
    """An Envoy-side token bucket: ``tokens_per_fill`` every ``fill_interval_ns``, at most
    ``max_tokens`` held (Envoy starts it full)."""

    max_tokens: int
    tokens_per_fill: int
    fill_interval_ns: int


@dataclass(frozen=True, slots=True)
class BucketAction:
    """One bucket's action for one Envoy."""

    #: The bucket id, as :class:`BucketUsage` names it.
    bucket: BucketKey
    #: What Envoy enforces; ``None``: ``abandon_action`` (Envoy forgets the bucket, and its next
    #: request for it subscribes again).
    strategy: Blanket | TokenBucket | None
    #: How long the assignment holds from receipt (ignored for an abandon).
    ttl_ns: int = 0


@dataclass(frozen=True, slots=True)
class Push:
    """Actions for one stream that no report of its own asked for (a share or debt changed)."""

    #: The stream (:meth:`~ratekeeper.protocol.rlqs.RlqsQuotas.open_stream`).
    stream: int
    #: The domain the buckets belong to.
    domain: str
    actions: tuple[BucketAction, ...]
