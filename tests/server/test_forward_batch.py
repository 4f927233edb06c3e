"""The coalesced-forwarding wire: the batch codec (a member refusing garbage, and batches
end to end, are in ``test_forwarding.py``)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ratekeeper.errors import RequestError
from ratekeeper.server.forward_batch import decode, encode


@given(st.lists(st.binary(max_size=300), max_size=20))
def test_decode_reads_back_what_encode_wrote(items: list[bytes]) -> None:
    assert decode(encode(items)) == items


@pytest.mark.parametrize("raw", [b"\x12\x00", b"\x0a", b"\x0a\x05abc", b"\x0a\xff\xff"])
def test_what_is_no_batch_is_refused(raw: bytes) -> None:
    with pytest.raises(RequestError, match="not a forwarded batch"):
        decode(raw)
