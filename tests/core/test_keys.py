"""Canonical key bytes and the 64-bit key hash: pinned, because they are a wire contract."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ratekeeper.core.keys import HASH_BITS, Entries, canonical_bytes, key_hash

from .strategies import THOROUGH

KEYS: list[tuple[str, Entries]] = [
    ("", ()),
    ("api", (("user", "alice"),)),
    ("", (("k", ""),)),
    ("dömain", (("ключ", "値"),)),
    ("d", (("a_b", "c_d|e;f,g"),)),
    ("x" * 200, ()),
    ("rl", (("remote_address", "10.0.0.1"), ("path", "/api"))),
    ("emoji", (("🔑", "\x00"),)),
]

#: Computed once from the implementation as specified; a change here re-shards every key.
HASHES = [
    17380576134020822137,
    14603641836311778235,
    17388322582053071933,
    3275257531996389045,
    2997723510156314409,
    426169005685354690,
    4407592773888405728,
    14548700139879641596,
]


@pytest.mark.parametrize(
    ("domain", "entries", "expected"),
    [
        ("", (), b"\x00"),
        ("api", (("user", "alice"),), b"\x03api\x04user\x05alice"),
        ("", (("k", ""),), b"\x00\x01k\x00"),
        (
            "dömain",
            (("ключ", "値"),),
            b"\x07d\xc3\xb6main\x08\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87\x03\xe5\x80\xa4",
        ),
        ("d", (("a_b", "c_d|e;f,g"),), b"\x01d\x03a_b\tc_d|e;f,g"),
        ("x" * 127, (), b"\x7f" + b"x" * 127),
        ("x" * 128, (), b"\x80\x01" + b"x" * 128),
        ("x" * 200, (), b"\xc8\x01" + b"x" * 200),
        ("x" * 16_384, (), b"\x80\x80\x01" + b"x" * 16_384),
    ],
)
def test_canonical_bytes(domain: str, entries: Entries, expected: bytes) -> None:
    assert canonical_bytes(domain, entries) == expected


def test_entries_may_be_any_iterable() -> None:
    entries = (("a", "1"), ("b", "2"))
    assert canonical_bytes("d", iter(entries)) == canonical_bytes("d", list(entries))


@pytest.mark.parametrize(("key", "expected"), list(zip(KEYS, HASHES, strict=True)))
def test_key_hash_vectors(key: tuple[str, Entries], expected: int) -> None:
    assert key_hash(canonical_bytes(*key)) == expected


def test_key_hash_is_personalised_blake2b_read_big_endian() -> None:
    """The contract other implementations follow, spelled with hashlib directly."""
    raw = canonical_bytes("api", (("user", "alice"),))
    digest = hashlib.blake2b(raw, digest_size=8, person=b"ratekeeper.key.1").digest()
    assert key_hash(raw) == int.from_bytes(digest, "big") == HASHES[1]
    assert HASH_BITS == 64


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (("a", (("bc", ""),)), ("ab", (("c", ""),))),
        (("a", (("b", "c"),)), ("a", (("bc", ""),))),
        (("", (("", ""),)), ("", ())),
        (("a", (("b", "c"), ("d", "e"))), ("a", (("d", "e"), ("b", "c")))),  # order matters
        (("d", (("k", "v_1"),)), ("d", (("k_v", "1"),))),  # envoy-style '_' joins would clash
    ],
)
def test_near_collisions_stay_apart(left: tuple[str, Entries], right: tuple[str, Entries]) -> None:
    assert canonical_bytes(*left) != canonical_bytes(*right)
    assert key_hash(canonical_bytes(*left)) != key_hash(canonical_bytes(*right))


def _uvarint(raw: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = raw[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _decode(raw: bytes) -> tuple[str, Entries]:
    """Inverse of the documented encoding, written from the docstring."""
    fields = []
    at = 0
    while at < len(raw):
        size, at = _uvarint(raw, at)
        fields.append(raw[at : at + size].decode("utf-8"))
        at += size
    assert at == len(raw)
    assert len(fields) % 2 == 1
    pairs = zip(fields[1::2], fields[2::2], strict=True)
    return fields[0], tuple(pairs)


keys = st.tuples(
    st.text(max_size=20) | st.text(min_size=120, max_size=200),
    st.lists(st.tuples(st.text(max_size=12), st.text(max_size=12)), max_size=4).map(tuple),
)


@THOROUGH
@given(keys)
def test_canonical_bytes_decode_back(key: tuple[str, Entries]) -> None:
    """Decodable means injective: no two keys share bytes, whatever their strings hold."""
    assert _decode(canonical_bytes(*key)) == key


@THOROUGH
@given(keys, keys)
def test_distinct_keys_have_distinct_bytes(
    left: tuple[str, Entries], right: tuple[str, Entries]
) -> None:
    assert (canonical_bytes(*left) == canonical_bytes(*right)) == (left == right)


@THOROUGH
@given(st.binary(max_size=300))
def test_hash_is_64_bits(raw: bytes) -> None:
    assert 0 <= key_hash(raw) < 2**64
