"""One configuration document read into typed specs: its domain and nested descriptors.

This is the per-file step: keys are checked (:mod:`.vocabulary`), then every field is read and
validated into frozen values. Checks that need more than one descriptor (duplicate composite
keys, duplicate domains) happen when the specs are assembled into a tree (:mod:`.tree`).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

from ratekeeper.config.document import Doc, Kind, to_python
from ratekeeper.config.fields import Fields
from ratekeeper.config.model import RateLimitRule
from ratekeeper.config.rate_limit import read_limits
from ratekeeper.config.vocabulary import check_document
from ratekeeper.core.limits import Algorithm

__all__ = ["DescriptorSpec", "DomainSpec", "read_domain"]


@dataclass(frozen=True, slots=True)
class DescriptorSpec:
    """One descriptor entry of a file, validated on its own."""

    #: The entry's key (never empty).
    key: str
    #: The entry's value; ``""`` matches any value (the default for ``key``).
    value: str
    #: Where the entry starts.
    line: int | None
    #: The rule, with ``domain`` and ``full_key`` left empty until the tree places it.
    rule: RateLimitRule
    #: Whether the entry gives a limit (``rate_limit``, ``rate_limits`` or ``limit``).
    has_limit: bool
    #: Nested descriptors.
    children: tuple[DescriptorSpec, ...]

    @property
    def composite(self) -> str:
        """``key_value`` (or ``key`` without a value): the reference's per-level lookup key."""
        return f"{self.key}_{self.value}" if self.value else self.key


@dataclass(frozen=True, slots=True)
class DomainSpec:
    """One file (or Python mapping): a domain and its top-level descriptors."""

    #: The file it came from, for errors (``None`` for Python data).
    file: str | None
    #: The domain (never empty).
    domain: str
    #: Line of the ``domain`` key.
    line: int | None
    #: Top-level descriptors.
    descriptors: tuple[DescriptorSpec, ...]


def read_domain(doc: Doc, file: str | None = None) -> DomainSpec:
    """Check and read one document; raises :class:`~ratekeeper.errors.ConfigError`."""
    fields = Fields(file)
    check_document(doc, fields)
    domain = fields.text(doc, "domain")
    where = doc.get("domain") or doc
    if not domain:
        raise fields.error("config file cannot have empty domain", where, "domain")
    algorithm = fields.algorithm(doc, Algorithm.TOKEN_BUCKET)
    descriptors = _descriptors(doc, fields, algorithm)
    return DomainSpec(file, domain, where.line, descriptors)


def _descriptors(owner: Doc, fields: Fields, algorithm: Algorithm) -> tuple[DescriptorSpec, ...]:
    return tuple(
        _descriptor(item, fields, algorithm) for item in fields.items(owner, "descriptors")
    )


def _descriptor(doc: Doc, fields: Fields, algorithm: Algorithm) -> DescriptorSpec:
    key = fields.text(doc, "key")
    if not key:
        raise fields.error("descriptor has empty key", doc.get("key") or doc, "key")
    value = fields.text(doc, "value")
    share_threshold = fields.flag(doc, "share_threshold")
    if share_threshold and "*" not in value:
        reason = "share_threshold can only be set when value contains '*'"
        raise fields.error(reason, doc.get("share_threshold"), "share_threshold")
    spec = read_limits(doc, fields, algorithm)
    rule = RateLimitRule(
        domain="",
        full_key="",
        limits=spec.limits,
        name=spec.name,
        unlimited=spec.unlimited,
        shadow_mode=fields.flag(doc, "shadow_mode"),
        replaces=spec.replaces,
        detailed_metric=fields.flag(doc, "detailed_metric"),
        value_to_metric=fields.flag(doc, "value_to_metric"),
        share_threshold=share_threshold,
        quota_mode=fields.flag(doc, "quota_mode"),
        metadata=_metadata(doc, fields),
    )
    children = _descriptors(doc, fields, algorithm)
    return DescriptorSpec(key, value, doc.line, rule, spec.given, children)


def _metadata(doc: Doc, fields: Fields) -> MappingProxyType[str, object]:
    metadata = doc.field("metadata")
    if metadata is None:
        return MappingProxyType({})
    if metadata.kind is not Kind.MAP:
        raise fields.error("'metadata' must be a map", metadata, "metadata")
    return MappingProxyType(to_python(metadata, fields.file))
