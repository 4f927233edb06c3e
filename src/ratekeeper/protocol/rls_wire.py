"""``RateLimitResponse`` written straight to protobuf wire bytes.

Building the response as a protobuf object cost more than deciding it: every field set is a
call into upb, and gRPC then serializes the object again. An RLS answer is mostly constant per
request shape (a descriptor's ``current_limit`` is fixed by its rule), so the constant parts are
encoded once per request plan and only the changing numbers (code, remaining, seconds to reset)
are written per call. Fields are written in field-number order, as protobuf serializers do;
``tests/protocol/test_rls_wire.py`` checks that the generated parser reads back exactly the
message the protobuf API would have built.

Wire format facts used (protobuf encoding spec): a field is a key ``(number << 3) | wire_type``
then its value; varints are little-endian base-128; a length-delimited field (string, bytes,
sub-message, repeated message) is its key, the length as a varint, then the bytes. proto3
scalars at their default (0, empty) are not written; a set sub-message is written even if empty.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "OK",
    "OVER_LIMIT",
    "current_limit",
    "header",
    "request",
    "response",
    "status",
    "status_code_only",
    "status_field",
    "varint",
]

#: ``RateLimitResponse.Code`` values.
OK = 1
OVER_LIMIT = 2

# Field keys: (field number << 3) | wire type (0 varint, 2 length-delimited).
_RESPONSE_OVERALL_CODE = b"\x08"  # 1: overall_code
_RESPONSE_STATUS = b"\x12"  # 2: statuses
_RESPONSE_HEADER = b"\x1a"  # 3: response_headers_to_add
_STATUS_CODE = b"\x08"  # 1: code
_STATUS_CURRENT_LIMIT = b"\x12"  # 2: current_limit
_STATUS_REMAINING = b"\x18"  # 3: limit_remaining
_STATUS_RESET = b"\x22"  # 4: duration_until_reset
_LIMIT_REQUESTS = b"\x08"  # RateLimit 1: requests_per_unit
_LIMIT_UNIT = b"\x10"  # RateLimit 2: unit
_LIMIT_NAME = b"\x1a"  # RateLimit 3: name
_DURATION_SECONDS = b"\x08"  # Duration 1: seconds
_REQUEST_DOMAIN = b"\x0a"  # RateLimitRequest 1: domain
_REQUEST_DESCRIPTOR = b"\x12"  # RateLimitRequest 2: descriptors
_HEADER_KEY = b"\x0a"  # HeaderValue 1: key
_HEADER_VALUE = b"\x12"  # HeaderValue 2: value

#: Varints of 0..127 are one byte; remaining counts and seconds to reset mostly are.
_ONE_BYTE = tuple(bytes((n,)) for n in range(128))


def varint(n: int) -> bytes:
    """``n`` (0 <= n < 2**64) as a protobuf varint."""
    if n < 128:
        return _ONE_BYTE[n]
    out = bytearray()
    while n >= 128:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _delimited(key: bytes, payload: bytes) -> bytes:
    return key + varint(len(payload)) + payload


def current_limit(requests_per_unit: int, unit: int, name: str) -> bytes:
    """A status's encoded ``current_limit`` field: constant per rule and limit."""
    payload = b""
    if requests_per_unit:
        payload += _LIMIT_REQUESTS + varint(requests_per_unit)
    if unit:
        payload += _LIMIT_UNIT + varint(unit)
    if name:
        payload += _delimited(_LIMIT_NAME, name.encode())
    return _delimited(_STATUS_CURRENT_LIMIT, payload)


def status(code: int, limit_field: bytes, remaining: int, reset_seconds: int) -> bytes:
    """One ``statuses`` entry with its limit (from :func:`current_limit`), remaining and reset."""
    payload = _STATUS_CODE + _ONE_BYTE[code] + limit_field
    if remaining:
        payload += _STATUS_REMAINING + varint(remaining)
    if reset_seconds:
        seconds = varint(reset_seconds)
        payload += _STATUS_RESET + _ONE_BYTE[1 + len(seconds)] + _DURATION_SECONDS + seconds
    else:
        payload += _STATUS_RESET + b"\x00"
    return _delimited(_RESPONSE_STATUS, payload)


def status_code_only(code: int, remaining: int = 0) -> bytes:
    """A ``statuses`` entry with no limit: unmatched, whitelisted, unlimited, store down."""
    payload = _STATUS_CODE + _ONE_BYTE[code]
    if remaining:
        payload += _STATUS_REMAINING + varint(remaining)
    return _delimited(_RESPONSE_STATUS, payload)


def status_field(payload: bytes) -> bytes:
    """A ``statuses`` entry around an encoded ``DescriptorStatus`` (another member's)."""
    return _delimited(_RESPONSE_STATUS, payload)


def header(key: bytes, value: str) -> bytes:
    """One ``response_headers_to_add`` entry; ``key`` already encoded (names are fixed)."""
    payload = _delimited(_HEADER_KEY, key) if key else b""
    if value:
        payload += _delimited(_HEADER_VALUE, value.encode())
    return _delimited(_RESPONSE_HEADER, payload)


def response(overall_code: int, fields: Iterable[bytes]) -> bytes:
    """The whole response: ``overall_code`` then ``fields`` (statuses, then headers) in order."""
    return b"".join((_RESPONSE_OVERALL_CODE, _ONE_BYTE[overall_code], *fields))


def request(domain: str, descriptors: Iterable[bytes]) -> bytes:
    """A ``RateLimitRequest`` of ``domain`` and encoded ``RateLimitDescriptor`` messages."""
    parts = [_delimited(_REQUEST_DOMAIN, domain.encode())]
    parts.extend(_delimited(_REQUEST_DESCRIPTOR, descriptor) for descriptor in descriptors)
    return b"".join(parts)
