"""Canonical key bytes and the 64-bit key hash: part of the wire contract.

Every client and server must agree on which slice (and so which server) owns a key, so the
encoding and the hash below are fixed; ``tests/core/test_keys.py`` pins them with vectors.

Canonical bytes of ``(domain, ((k1, v1), (k2, v2), ...))``::

    uvarint(len(domain)) domain  (uvarint(len(k)) k uvarint(len(v)) v)*

with every string UTF-8 encoded and ``uvarint`` the unsigned LEB128 varint (as in protobuf).
Length prefixes make the encoding injective: no two distinct keys share bytes, whatever
separators their strings contain.

The hash is BLAKE2b with an 8-byte digest and the personalisation ``b"ratekeeper.key.1"``, read
as a big-endian unsigned integer. BLAKE2b is in every Python's ``hashlib`` (and every platform's
crypto libraries), is implemented in C, and mixes well enough that contiguous hash ranges
(slices) receive keys evenly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

__all__ = [
    "HASH_BITS",
    "Entries",
    "canonical_bytes",
    "descriptor_path",
    "descriptor_segment",
    "key_hash",
]

HASH_BITS = 64
_PERSON = b"ratekeeper.key.1"

#: A descriptor's entries: ordered (key, value) pairs.
Entries = tuple[tuple[str, str], ...]


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(text: str) -> bytes:
    raw = text.encode("utf-8")
    n = len(raw)
    # a one-byte length (under 128 bytes: nearly every field) without the varint loop
    return (_ONE_BYTE[n] if n < 0x80 else _uvarint(n)) + raw


#: The varint of each length under 128: the byte itself.
_ONE_BYTE = [bytes((n,)) for n in range(0x80)]


def canonical_bytes(domain: str, entries: Iterable[tuple[str, str]]) -> bytes:
    """The canonical encoding of a rate limit key (see the module docstring)."""
    parts = [_field(domain)]
    for key, value in entries:
        parts.append(_field(key))
        parts.append(_field(value))
    return b"".join(parts)


def key_hash(canonical: bytes) -> int:
    """The stable 64-bit hash of canonical key bytes, in ``[0, 2**64)``."""
    digest = hashlib.blake2b(canonical, digest_size=8, person=_PERSON).digest()
    return int.from_bytes(digest, "big")


def descriptor_segment(key: str, value: str) -> str:
    """One entry as envoyproxy/ratelimit names it in stats and cache keys: ``key_value``, or
    ``key`` alone when the value is empty."""
    return f"{key}_{value}" if value else key


def descriptor_path(domain: str, entries: Iterable[tuple[str, str]]) -> str:
    """``domain.key_value.key2_value2``: envoyproxy/ratelimit's name for a descriptor."""
    return ".".join([domain, *(descriptor_segment(k, v) for k, v in entries)])
