"""The hand-written RLS response encoder against the generated protobuf classes.

Each case builds the same response twice, with :mod:`ratekeeper.protocol.rls_wire` and with the
protobuf API the server used before, and requires the same bytes: the encoder writes fields in
field-number order, exactly as upb serializes them.
"""

from __future__ import annotations

from envoy.service.ratelimit.v3.rls_pb2 import RateLimitResponse
from hypothesis import given
from hypothesis import strategies as st

from ratekeeper.protocol import rls_wire

_UINT32 = st.integers(0, 2**32 - 1)
_CODES = st.sampled_from([rls_wire.OK, rls_wire.OVER_LIMIT])
_UNITS = st.sampled_from(list(RateLimitResponse.RateLimit.Unit.values()))
_SECONDS = st.integers(0, 2**40)  # a year is 2**25 s; far past any reset


@st.composite
def _limited(draw: st.DrawFn) -> tuple[int, int, int, str, int, int]:
    return (
        draw(_CODES),
        draw(_UINT32),
        draw(_UNITS),
        draw(st.text(max_size=200)),
        draw(_UINT32),
        draw(_SECONDS),
    )


_STATUS = st.one_of(
    st.tuples(_CODES, _UINT32),  # no limit: code and remaining
    _limited(),
)


def _both(
    overall: int, statuses: list[tuple[int, ...]], headers: list[tuple[str, str]]
) -> tuple[bytes, bytes]:
    message = RateLimitResponse(overall_code=overall)
    fields = []
    for spec in statuses:
        status = message.statuses.add(code=spec[0])
        if len(spec) == 2:
            status.limit_remaining = spec[1]
            fields.append(rls_wire.status_code_only(spec[0], spec[1]))
            continue
        code, amount, unit, name, remaining, seconds = spec
        status.current_limit.requests_per_unit = amount
        status.current_limit.unit = unit
        status.current_limit.name = name
        status.limit_remaining = remaining
        status.duration_until_reset.seconds = seconds
        limit_field = rls_wire.current_limit(amount, unit, name)
        fields.append(rls_wire.status(code, limit_field, remaining, seconds))
    for key, value in headers:
        message.response_headers_to_add.add(key=key, value=value)
        fields.append(rls_wire.header(key.encode(), value))
    return rls_wire.response(overall, fields), message.SerializeToString()


@given(
    _CODES,
    st.lists(_STATUS, max_size=8),
    st.lists(st.tuples(st.text(max_size=40), st.text(max_size=40)), max_size=3),
)
def test_responses_are_byte_for_byte_what_protobuf_writes(
    overall: int, statuses: list[tuple[int, ...]], headers: list[tuple[str, str]]
) -> None:
    ours, theirs = _both(overall, statuses, headers)
    assert ours == theirs
    assert RateLimitResponse.FromString(ours) == RateLimitResponse.FromString(theirs)


def test_a_zero_reset_still_carries_an_empty_duration() -> None:
    # The server always sets duration_until_reset on a limited status, even to 0 seconds.
    ours, theirs = _both(rls_wire.OK, [(rls_wire.OK, 5, 1, "", 0, 0)], [])
    assert ours == theirs
    assert RateLimitResponse.FromString(ours).statuses[0].HasField("duration_until_reset")


@given(st.integers(0, 2**64 - 1))
def test_varints_round_trip_through_protobuf(n: int) -> None:
    encoded = rls_wire.status_code_only(rls_wire.OK, n) if n < 2**32 else None
    if encoded is not None:
        assert RateLimitResponse.DescriptorStatus.FromString(encoded[2:]).limit_remaining == n
    value, shift = 0, 0
    for byte in rls_wire.varint(n):
        value |= (byte & 0x7F) << shift
        shift += 7
    assert value == n
