"""``RESPONSE_DYNAMIC_METADATA``: the response's ``dynamic_metadata``, as envoyproxy/ratelimit
fills it (``ratelimitToMetadata`` in src/service/ratelimit.go).

The struct holds ``domain``; ``descriptors``, one per request descriptor, each with ``entries``
(``"key=value"`` strings), ``limit`` (the override, in protobuf text) and ``hitsAddend`` when
the descriptor sets them; the request's ``hitsAddend`` when not 0; and ``metadata``, the rules'
``metadata`` of the descriptors counted and answered OK, merged (nested maps merged, the first
value kept). Off the fast path: built only when the setting is on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from envoy.service.ratelimit.v3.rls_pb2 import RateLimitRequest, RateLimitResponse
from google.protobuf import text_format
from google.protobuf.struct_pb2 import Struct

from ratekeeper.protocol.policy import Matcher

__all__ = ["with_dynamic_metadata"]


def with_dynamic_metadata(request: bytes, response: bytes, policy: Matcher) -> bytes:
    """``response`` (an encoded ``RateLimitResponse`` to ``request``) with its
    ``dynamic_metadata`` set."""
    asked = RateLimitRequest.FromString(request)
    answered = RateLimitResponse.FromString(response)
    fields: dict[str, Any] = {"domain": asked.domain}
    fields["descriptors"] = [_descriptor(d) for d in asked.descriptors]
    if asked.hits_addend:
        fields["hitsAddend"] = asked.hits_addend
    matches = [
        None
        if descriptor.HasField("limit")  # an override: a limit of its own, no metadata
        else policy.match(asked.domain, tuple((e.key, e.value) for e in descriptor.entries))
        for descriptor in asked.descriptors
    ]
    replaced = {name for m in matches if m is not None for name in m.rule.replaces}
    merged: dict[str, Any] = {}
    for match, status in zip(matches, answered.statuses, strict=False):
        if match is None or status.code == RateLimitResponse.OVER_LIMIT:
            continue
        rule = match.rule
        counted = rule.limits and not rule.unlimited and rule.name not in replaced
        if counted and rule.metadata:
            _merge(merged, rule.metadata)
    if merged:
        fields["metadata"] = merged
    answered.dynamic_metadata.CopyFrom(_struct(fields))
    encoded: bytes = answered.SerializeToString()
    return encoded


def _descriptor(descriptor: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {"entries": [f"{e.key}={e.value}" for e in descriptor.entries]}
    if descriptor.HasField("limit"):
        fields["limit"] = text_format.MessageToString(descriptor.limit, as_one_line=True)
    if descriptor.HasField("hits_addend"):
        fields["hitsAddend"] = descriptor.hits_addend.value
    return fields


def _merge(into: dict[str, Any], source: Mapping[str, Any]) -> None:
    """As the reference's ``mergeMetadata``: maps in both are merged, else the first stays."""
    for key, value in source.items():
        if key not in into:
            into[key] = _copy(value)
        elif isinstance(into[key], dict) and isinstance(value, Mapping):
            _merge(into[key], value)


def _copy(value: Any) -> Any:
    return {k: _copy(v) for k, v in value.items()} if isinstance(value, Mapping) else value


def _struct(fields: dict[str, Any]) -> Struct:
    struct = Struct()
    struct.update(fields)
    return struct
