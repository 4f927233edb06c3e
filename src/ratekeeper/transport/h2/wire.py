"""HTTP/2 and HPACK on the wire for :mod:`.connection`: frame types, flags, error and setting codes,
frame and header-block building, and the fixed blocks every answer reuses (RFC 9113, RFC 7541).
Pure values and functions, no connection state."""

from __future__ import annotations

import struct
from typing import Final

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: The largest request message accepted (gRPC's default receive limit is 4 MiB; RLS calls are
#: a few hundred bytes).
MAX_MESSAGE: Final = 1 << 20
MAX_FRAME: Final = 16_384  # SETTINGS_MAX_FRAME_SIZE, ours (the default: not advertised)
#: Our SETTINGS_INITIAL_WINDOW_SIZE and connection window: room for a message over the limit,
#: so it is refused rather than stalled (a stream's window is never updated).
WINDOW: Final = 2 * MAX_MESSAGE
DATA, HEADERS, PRIORITY, RST, SETTINGS, PUSH, PING, GOAWAY, WINDOW_UPDATE = range(9)
CONT = 9
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
PROTOCOL_ERROR, FLOW_CONTROL_ERROR, FRAME_SIZE_ERROR, REFUSED_STREAM = 0x1, 0x3, 0x6, 0x7
COMPRESSION_ERROR = 0x9
HEAD = struct.Struct(">I B I")  # length and type as one word, flags, stream id: see frame
SETTING = struct.Struct(">HI")
U32 = struct.Struct(">I")
MAX_STREAMS: Final = 1000
OURS: Final = ((0x1, 0), (0x3, MAX_STREAMS), (0x4, WINDOW), (0x6, 65_536))
INITIAL_WINDOW, MAX_FRAME_SETTING = 0x4, 0x5
GRPC_OK, GRPC_UNIMPLEMENTED, GRPC_RESOURCE_EXHAUSTED, GRPC_INTERNAL = 0, 12, 8, 13


def hpack_int(value: int, prefix: int, first: int = 0) -> bytes:
    """An HPACK integer (RFC 7541 §5.1) on a ``prefix``-bit prefix, ``first`` its high bits."""
    limit = (1 << prefix) - 1
    if value < limit:
        return bytes((first | value,))
    out, value = bytearray((first | limit,)), value - limit
    while value >= 128:
        out.append(0x80 | value & 0x7F)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal_header(name: bytes, value: bytes) -> bytes:
    """``name: value`` as an HPACK literal without indexing, new name, no Huffman: it needs no
    encoder state, so every answer's header block can be built once."""
    return b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


# `:status: 200` is static entry 8; `content-type` is static name 31 (literal without indexing).
RESPONSE_HEAD: Final = b"\x88" + hpack_int(31, 4) + hpack_int(16, 7) + b"application/grpc"
OK_TRAILERS: Final = literal_header(b"grpc-status", b"0")
#: An answer's HEADERS frame and the head of its one DATA frame (the frame's 9 bytes, then
#: the gRPC prefix: not compressed, the message's length), packed in one call.
ANSWER_HEAD: Final = struct.Struct(f">IBI{len(RESPONSE_HEAD)}sIBIBI")
ANSWER_WORD: Final = len(RESPONSE_HEAD) << 8 | HEADERS  # the frame's length and type
TRAILERS_WORD: Final = len(OK_TRAILERS) << 8 | HEADERS


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return HEAD.pack(len(payload) << 8 | kind, flags, stream) + payload


def percent(message: str) -> bytes:
    """``grpc-message`` encoding: UTF-8, each byte outside printable ASCII (and ``%``) as
    ``%XX``."""
    return b"".join(
        bytes((b,)) if 0x20 <= b <= 0x7E and b != 0x25 else b"%%%02X" % b for b in message.encode()
    )


def unpad(payload: bytes) -> bytes:
    pad = payload[0] if payload else 0
    return payload[1 : len(payload) - pad]
