"""A request's header block, decoded to what a unary call needs: its ``:path`` and its
``authorization`` value (the bearer token a protected method checks).

We advertise an HPACK dynamic table of 0 bytes, so once the peer has acknowledged it every block
decodes the same whatever came before: a block seen before is then looked up, not decoded again
(a client sends the same block for every call of one method). Sans-IO, not thread safe.
"""

from __future__ import annotations

from typing import NamedTuple

import hpack

__all__ = ["Head", "HeaderReader"]

#: Most distinct blocks remembered: varying blocks (a request id in the metadata) are not kept.
_MAX_KNOWN = 64


class Head(NamedTuple):
    """What a request's header block says, as far as a unary call needs."""

    #: The ``:path`` (``/package.Service/Method``), as sent; empty if absent.
    path: bytes
    #: The ``authorization`` header's value, or ``None`` when absent.
    authorization: bytes | None


class HeaderReader:
    """Decodes one connection's request header blocks, in order."""

    def __init__(self) -> None:
        self._decoder = hpack.Decoder()
        self._known: dict[bytes, Head] = {}

    def acknowledged(self) -> None:
        """The peer acknowledged our SETTINGS: from now on it uses no dynamic table."""
        self._decoder.max_allowed_table_size = 0

    def read(self, block: bytes) -> Head | None:
        """``block`` decoded; ``None`` if it cannot be (the connection is then over)."""
        head = self._known.get(block)
        if head is not None:
            return head
        table = self._decoder.header_table
        stateless = table.maxsize == 0 and not table.dynamic_entries
        try:
            headers = self._decoder.decode(block, raw=True)
        except hpack.HPACKError:
            return None
        path, authorization = b"", None
        for name, value in headers:
            if name == b":path":
                path = bytes(value)
            elif name == b"authorization":
                authorization = bytes(value)
        head = Head(path, authorization)
        if stateless and table.maxsize == 0:
            if len(self._known) >= _MAX_KNOWN:
                self._known.clear()
            self._known[block] = head
        return head
