"""The operator page's snapshot: typed values in, the JSON document the page draws out.

Pure (no IO, no clock: ``now`` is passed in): :func:`build_snapshot` reads an
:class:`~ratekeeper.server.operator_history.OperatorTap` and the store's and the cluster's state
as typed values (:class:`StoreState`, :class:`ClusterState`) and returns plain dicts, lists,
strings and numbers. The document (every duration in seconds, rates in hits per second):

* ``limited``: the most limited keys, those rejecting now first, then by hits rejected in the
  window: name, policy, rejection time left, admitted and rejected per second per bucket
  (``series``) beside the policy's rate; ``hot_unnamed``: hot keys the tap cannot name;
* ``rules``: RLS rules (envoyproxy/ratelimit stats keys) that went over their limits, with their
  counts and within/over per bucket;
* ``clients``: reporting clients, most recent first;
* ``store``: the store's own stats, its health and, for a store with budgets, its pressure;
* ``cluster``: ``null`` for a lone server; else this member, the assignment's members with their
  slices and share of the hash space, and this member's load per slice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ratekeeper.backends.budgets import StorePressure
from ratekeeper.backends.store import StoreStat
from ratekeeper.core.keys import Entries
from ratekeeper.core.limits import NS_PER_SECOND
from ratekeeper.core.slices import HASH_SPACE, Assignment
from ratekeeper.server.operator_history import LimitedKey, OperatorTap, RuleSeen, Series
from ratekeeper.server.slice_view import SliceLoad

__all__ = ["SHOWN", "ClusterState", "StoreState", "build_snapshot", "key_label"]

#: At most this many limited keys, rules and clients are listed.
SHOWN = 20
#: Longest text shown for a name (descriptor values and client ids are untrusted text).
_TEXT = 200


@dataclass(frozen=True, slots=True)
class StoreState:
    """What the store says about itself."""

    healthy: bool
    stats: Sequence[StoreStat]
    #: Fill and budgets (``None``: a store without budgets, such as Redis).
    pressure: StorePressure | None = None


@dataclass(frozen=True, slots=True)
class ClusterState:
    """A cluster member's view of the cluster."""

    address: str
    #: The member's state (``running``, ...).
    state: str
    #: Where its heartbeats go.
    target: str
    #: The assignment held (``None``: none yet).
    assignment: Assignment | None
    #: Hits per second per slice this member measured.
    load: Sequence[SliceLoad] = ()


def build_snapshot(
    tap: OperatorTap,
    store: StoreState,
    cluster: ClusterState | None,
    now: int,
    *,
    shown: int = SHOWN,
) -> dict[str, Any]:
    """The page's document at ``now`` (server clock, ns); see the module docstring."""
    named = {k.key_hash for k in tap.keys.values()}
    ago = max(0, now - tap.hot_at_ns)
    hot_unnamed = [
        {"hash": f"{h:016x}", "rejecting_for_s": _s(left - ago)}
        for h, left in tap.hot
        if h not in named and left > ago
    ]
    limited = sorted(tap.keys.values(), key=lambda k: _rank(k, now), reverse=True)
    rules = sorted(tap.rules.values(), key=lambda r: _rule_rank(r, now), reverse=True)
    clients = sorted(tap.clients.values(), key=lambda c: c.last_ns, reverse=True)
    return {
        "now_s": _s(now),
        "bucket_s": _s(tap.bucket_ns),
        "window_s": _s(tap.bucket_ns * tap.points),
        "limited": [_limited(k, now) for k in limited[:shown]],
        "limited_total": len(limited),
        "hot_unnamed": hot_unnamed[:shown],
        "hot_total": sum(1 for _, left in tap.hot if left > ago),
        "rules": [_rule(r, now) for r in rules[:shown]],
        "rules_total": len(rules),
        "clients": [
            {
                "id": _text(c.client_id),
                "reports": c.reports,
                "keys": c.keys,
                "admitted": c.admitted,
                "rejected": c.rejected,
                "rejecting": c.rejecting,
                "last_seen_s": _s(now - c.last_ns),
                "first_seen_s": _s(now - c.first_ns),
            }
            for c in clients[:shown]
        ],
        "clients_total": len(clients),
        "store": _store(store),
        "cluster": None if cluster is None else _cluster(cluster),
    }


def key_label(domain: str, entries: Entries) -> str:
    """``domain: key=value, key=value``, cut to a bounded length."""
    return _text(f"{domain}: " + ", ".join(f"{k}={v}" for k, v in entries))


def _rank(key: LimitedKey, now: int) -> tuple[bool, int, int]:
    return key.reject_until_ns > now, key.series.totals(now)[1], key.last_rejected_ns


def _rule_rank(rule: RuleSeen, now: int) -> tuple[int, int]:
    return rule.series.totals(now)[1], rule.last_over_ns


def _limited(key: LimitedKey, now: int) -> dict[str, Any]:
    admitted, rejected = key.series.totals(now)
    return {
        "key": key_label(key.domain, key.entries),
        "domain": _text(key.domain),
        "entries": [[_text(k), _text(v)] for k, v in key.entries],
        "hash": f"{key.key_hash:016x}",
        "limits": [str(limit) for limit in key.limits],
        "policy_per_s": key.policy_per_s,
        "rejecting_for_s": _s(max(0, key.reject_until_ns - now)),
        "last_rejected_s": _s(now - key.last_rejected_ns),
        "rejections": key.rejections,
        "admitted": admitted,
        "rejected": rejected,
        "series": _series(key.series, now, "admitted_per_s", "rejected_per_s"),
    }


def _rule(rule: RuleSeen, now: int) -> dict[str, Any]:
    c = rule.counts
    within, over = rule.series.totals(now)
    return {
        "domain": _text(rule.domain),
        "key": _text(rule.key),
        "total_hits": c.total_hits,
        "over_limit": c.over_limit,
        "near_limit": c.near_limit,
        "within_limit": c.within_limit,
        "shadow_mode": c.shadow_mode,
        "within_window": within,
        "over_window": over,
        "last_over_s": _s(now - rule.last_over_ns),
        "series": _series(rule.series, now, "within_per_s", "over_per_s"),
    }


def _series(series: Series, now: int, first: str, second: str) -> dict[str, list[float]]:
    """The complete buckets of the window (the current one is still filling), from the first
    with anything in it: their start relative to ``now`` and both sums per second."""
    buckets = series.window(now)[:-1]
    start = next((i for i, b in enumerate(buckets) if b[1] or b[2]), len(buckets))
    per_s = NS_PER_SECOND / series.bucket_ns
    kept = buckets[start:]
    return {
        "t": [_s(b[0] - now) for b in kept],
        first: [b[1] * per_s for b in kept],
        second: [b[2] * per_s for b in kept],
    }


def _store(store: StoreState) -> dict[str, Any]:
    p = store.pressure
    return {
        "healthy": store.healthy,
        "stats": {stat.name: stat.value for stat in store.stats},
        "pressure": None
        if p is None
        else {
            "held": p.held,
            "capacity": p.capacity,
            "fill": p.fill,
            "ratio": p.ratio,
            "under_pressure": p.under_pressure,
            "at_budget": [_text(party) for party in p.at_budget],
            "refused_over_budget": p.refused_over_budget,
            "describe": _text(p.describe()),
        },
    }


def _cluster(cluster: ClusterState) -> dict[str, Any]:
    held = cluster.assignment
    members: list[dict[str, Any]] = []
    if held is not None:
        for owner in sorted(held.servers):
            slices = held.slices_of(owner)
            share = sum(s.high - s.low for s in slices) / HASH_SPACE
            members.append({"address": owner, "slices": len(slices), "share": share})
    return {
        "address": cluster.address,
        "state": cluster.state,
        "target": cluster.target,
        "generation": None
        if held is None
        else [held.generation.incarnation, held.generation.number],
        "members": members,
        "load": [
            {
                "low": f"{piece.low:016x}",
                "high": f"{piece.high - 1:016x}",
                "share": (piece.high - piece.low) / HASH_SPACE,
                "per_s": rate,
                "mine": held is not None and held.owner_of(piece.low) == cluster.address,
            }
            for piece, rate in cluster.load
        ],
    }


def _s(ns: int) -> float:
    return round(ns / NS_PER_SECOND, 3)


def _text(text: str) -> str:
    return text if len(text) <= _TEXT else text[:_TEXT] + "…"
