"""Which configured rule an RLQS bucket names: a bucket id's map matched as an RLS descriptor.

The rule (docs/envoy.md): a report's ``domain`` and a bucket id's map ``{key: value}`` name the
descriptor, in that domain, whose entries are the map's pairs **in the order the config nests
their keys**. A protobuf map has no order on the wire, so the orders of the pairs are tried
(in sorted order of the keys first) and the first one the config matches wins, exactly as an
RLS descriptor with those entries would be matched (exact value, then wildcards, then the bare
key; the limit must sit at the depth of the last entry). A bucket no order matches is not
limited. Maps with more than :data:`MAX_ORDERED_KEYS` keys are matched in sorted order only.
"""

from __future__ import annotations

import itertools

from ratekeeper.config.model import Match
from ratekeeper.protocol.policy import Matcher
from ratekeeper.protocol.rlqs_values import BucketKey

__all__ = ["MAX_ORDERED_KEYS", "match_bucket"]

#: Largest map whose every key order is tried (5! = 120 lookups, once per bucket).
MAX_ORDERED_KEYS = 5


def match_bucket(policy: Matcher, domain: str, bucket: BucketKey) -> Match | None:
    """The rule ``bucket`` (sorted pairs) names in ``domain``, or ``None``."""
    if not bucket:
        return None
    orders = itertools.permutations(bucket) if len(bucket) <= MAX_ORDERED_KEYS else iter((bucket,))
    for entries in orders:
        match = policy.match(domain, tuple(entries))
        if match is not None:
            return match
    return None
