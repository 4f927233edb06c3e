"""Sans-IO HTTP/2 (cleartext, prior knowledge) for unary gRPC calls: the sidecar's unix socket.

Why not ``grpc.aio``: profiled under Envoy at one call in flight, the sidecar spent ~96% of its
time in grpc.aio's machinery (the C core's poller thread handing each call to the event loop and
back) and ~4% deciding. This connection is the whole server side of a unary gRPC call in one
thread: bytes in, calls out (:meth:`H2Connection.receive`), answers in, bytes out
(:meth:`H2Connection.reply`, :meth:`H2Connection.fail`, :meth:`H2Connection.data_to_send`).
No socket, no loop, no clock: :mod:`ratekeeper.sidecar.uds` drives it.

What it speaks (RFC 9113, gRPC over HTTP/2):

* the client preface, SETTINGS (ours: no HPACK dynamic table, 2 MiB stream windows), PING,
  WINDOW_UPDATE (both directions: our DATA waits for the peer's window), RST_STREAM, GOAWAY,
  PRIORITY (ignored), HEADERS with CONTINUATION, padding;
* one request message per stream (``grpc-encoding`` identity: a compressed message is refused
  with UNIMPLEMENTED), up to :data:`MAX_MESSAGE` bytes (RESOURCE_EXHAUSTED beyond);
* answers with fixed header blocks (no Huffman, no table): ``:status 200``,
  ``content-type: application/grpc``, the message, then the ``grpc-status`` trailer; refusals
  as trailers-only responses.

Header blocks are decoded by ``hpack``. We advertise a dynamic table of 0 bytes, so once the
peer has acknowledged it every block decodes the same whatever came before: the decoded path
of a block seen before is then looked up, not decoded again (a client sends the same block for
every call of one method). A protocol error closes the connection with GOAWAY.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

import hpack

__all__ = ["MAX_MESSAGE", "Call", "H2Connection", "literal_header"]

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: The largest request message accepted (gRPC's default receive limit is 4 MiB; RLS calls are
#: a few hundred bytes).
MAX_MESSAGE: Final = 1 << 20
_MAX_FRAME: Final = 16_384  # SETTINGS_MAX_FRAME_SIZE, ours (the default: not advertised)
#: Our SETTINGS_INITIAL_WINDOW_SIZE and connection window: room for a message over the limit,
#: so it is refused rather than stalled (a stream's window is never updated).
_WINDOW: Final = 2 * MAX_MESSAGE
_DATA, _HEADERS, _PRIORITY, _RST, _SETTINGS, _PUSH, _PING, _GOAWAY, _WINDOW_UPDATE = range(9)
_CONT = 9
_END_STREAM, _ACK, _END_HEADERS, _PADDED, _PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
_PROTOCOL_ERROR, _FLOW_CONTROL_ERROR, _FRAME_SIZE_ERROR, _REFUSED_STREAM = 0x1, 0x3, 0x6, 0x7
_COMPRESSION_ERROR = 0x9
_HEAD = struct.Struct(">I B I")  # length and type as one word, flags, stream id: see _frame
_SETTING = struct.Struct(">HI")
_U32 = struct.Struct(">I")
_MAX_STREAMS: Final = 1000
_OURS: Final = ((0x1, 0), (0x3, _MAX_STREAMS), (0x4, _WINDOW), (0x6, 65_536))
_INITIAL_WINDOW, _MAX_FRAME_SETTING = 0x4, 0x5
_GRPC_OK, _GRPC_UNIMPLEMENTED, _GRPC_RESOURCE_EXHAUSTED, _GRPC_INTERNAL = 0, 12, 8, 13


def _int(value: int, prefix: int, first: int = 0) -> bytes:
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
    return b"\x00" + _int(len(name), 7) + name + _int(len(value), 7) + value


# `:status: 200` is static entry 8; `content-type` is static name 31 (literal without indexing).
_RESPONSE_HEAD: Final = b"\x88" + _int(31, 4) + _int(16, 7) + b"application/grpc"
_OK_TRAILERS: Final = literal_header(b"grpc-status", b"0")
#: An answer's HEADERS frame and the head of its one DATA frame (the frame's 9 bytes, then
#: the gRPC prefix: not compressed, the message's length), packed in one call.
_ANSWER_HEAD: Final = struct.Struct(f">IBI{len(_RESPONSE_HEAD)}sIBIBI")
_ANSWER_WORD: Final = len(_RESPONSE_HEAD) << 8 | _HEADERS  # the frame's length and type
_TRAILERS_WORD: Final = len(_OK_TRAILERS) << 8 | _HEADERS


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return _HEAD.pack(len(payload) << 8 | kind, flags, stream) + payload


@dataclass(frozen=True, slots=True)
class Call:
    """One complete unary request."""

    #: Its HTTP/2 stream, to answer on.
    stream: int
    #: The ``:path`` (``/package.Service/Method``), as sent.
    path: bytes
    #: The request message (the gRPC length prefix removed).
    message: bytes


@dataclass(slots=True)
class _Stream:
    """A request being received."""

    path: bytes = b""
    data: bytearray = field(default_factory=bytearray)
    #: How many bytes of DATA the peer's window still lets us send on it.
    window: int = 65_535
    #: Answered already (refused before its end): later frames are dropped.
    answered: bool = False


class H2Connection:
    """The server side of one HTTP/2 connection carrying unary gRPC calls; not thread safe."""

    def __init__(self) -> None:
        self._in = bytearray()
        self._out = bytearray(_frame(_SETTINGS, 0, 0, b"".join(_SETTING.pack(*s) for s in _OURS)))
        self._out += _frame(_WINDOW_UPDATE, 0, 0, _U32.pack(_WINDOW - 65_535))
        self._preface = False
        self._streams: dict[int, _Stream] = {}
        self._last_stream = 0
        self._decoder = hpack.Decoder()
        self._paths: dict[bytes, bytes] = {}  # header block -> :path, once the table is 0
        self._block = bytearray()  # a header block awaiting CONTINUATION
        self._block_stream = 0
        self._block_ends = False
        self._block_refused = False
        self._unacked = 0  # DATA bytes received since our last connection WINDOW_UPDATE
        self._peer_window = 65_535  # the connection window the peer gives our DATA
        self._peer_initial = 65_535
        self._peer_max_frame = 16_384
        self._waiting: list[tuple[int, bytes]] = []  # answers held for the peer's window
        #: Set once the connection must close (a GOAWAY was sent or received).
        self.closed = False

    def data_to_send(self) -> bytearray:
        """The bytes to write now (and forget): handed over, not copied; this connection
        never touches them again."""
        out, self._out = self._out, bytearray()
        return out

    def receive(self, data: bytes) -> list[Call]:
        """Take bytes read from the peer; the calls they complete."""
        if self.closed:
            return []
        # Most reads hold whole frames (Envoy writes a call's HEADERS and DATA at once): parsed
        # from ``data`` itself; only a read that leaves or finishes a partial frame is buffered.
        buf: bytes | bytearray = data
        if self._in or not self._preface:
            self._in += data
            buf = self._in
        if not self._preface:
            if len(buf) < len(PREFACE):
                if not PREFACE.startswith(buf):
                    self._goaway(_PROTOCOL_ERROR)
                return []
            if not buf.startswith(PREFACE):
                self._goaway(_PROTOCOL_ERROR)
                return []
            del self._in[: len(PREFACE)]
            self._preface = True
        calls: list[Call] = []
        view, at, end = memoryview(buf), 0, len(buf)
        while end - at >= 9 and not self.closed:
            word, flags, stream = _HEAD.unpack_from(view, at)
            length, kind = word >> 8, word & 0xFF
            if length > _MAX_FRAME:
                self._goaway(_FRAME_SIZE_ERROR)
                break
            if end - at - 9 < length:
                break
            payload = bytes(view[at + 9 : at + 9 + length])
            at += 9 + length
            stream &= 0x7FFF_FFFF
            if self._block_stream and kind != _CONT:
                self._goaway(_PROTOCOL_ERROR)  # a header block must be continued at once
                break
            handler = _HANDLERS.get(kind)
            if handler is not None:
                handler(self, flags, stream, payload, calls)
        view.release()
        if buf is self._in:
            del self._in[:at]
        elif at < end:
            self._in += buf[at:]
        if self._unacked >= _WINDOW // 4:
            self._out += _frame(_WINDOW_UPDATE, 0, 0, _U32.pack(self._unacked))
            self._unacked = 0
        return calls

    def reply(self, stream: int, message: bytes) -> None:
        """Answer ``stream`` with ``message`` (serialized) and status OK."""
        if self._peer_window < len(message) + 5 or self._waiting:
            self._waiting.append((stream, message))
            return
        if not self._send(stream, message):
            self._waiting.append((stream, message))

    def fail(self, stream: int, code: int, message: str) -> None:
        """Refuse ``stream`` with gRPC status ``code`` (trailers only: no window needed)."""
        self._streams.pop(stream, None)
        block = _RESPONSE_HEAD + literal_header(b"grpc-status", str(code).encode())
        if message:
            block += literal_header(b"grpc-message", _percent(message))
        self._out += _frame(_HEADERS, _END_STREAM | _END_HEADERS, stream, block)

    def go_away(self) -> None:
        """Close gracefully: GOAWAY (no error) naming the last stream taken. Calls received
        are still answered; nothing more is read."""
        if not self.closed:
            self._goaway(0)

    def _send(self, stream: int, message: bytes) -> bool:
        """Send the whole answer if both windows allow; False (nothing sent) if not."""
        state = self._streams.get(stream)
        size = len(message) + 5
        if state is None:
            return True  # reset by the peer meanwhile: nothing to answer
        if state.window < size or self._peer_window < size:
            return False
        del self._streams[stream]
        self._peer_window -= size
        out = self._out
        if size <= self._peer_max_frame:  # every RLS answer: one DATA frame
            out += _ANSWER_HEAD.pack(
                _ANSWER_WORD, _END_HEADERS, stream, _RESPONSE_HEAD,
                size << 8 | _DATA, 0, stream, 0, len(message),
            )  # fmt: skip
            out += message
        else:
            out += _frame(_HEADERS, _END_HEADERS, stream, _RESPONSE_HEAD)
            body = b"\x00" + _U32.pack(len(message)) + message
            step = self._peer_max_frame
            for at in range(0, size, step):
                out += _frame(_DATA, 0, stream, body[at : at + step])
        out += _HEAD.pack(_TRAILERS_WORD, _END_STREAM | _END_HEADERS, stream)
        out += _OK_TRAILERS
        return True

    def _flush_waiting(self) -> None:
        while self._waiting and self._send(*self._waiting[0]):
            del self._waiting[0]

    def _goaway(self, code: int) -> None:
        self._out += _frame(_GOAWAY, 0, 0, _U32.pack(self._last_stream) + _U32.pack(code))
        self.closed = True

    # -- frames, by type (see _HANDLERS) ----------------------------------------------------

    def _on_data(self, flags: int, stream: int, payload: bytes, calls: list[Call]) -> None:
        self._unacked += len(payload)  # padding included: it counts against the window
        if flags & _PADDED:
            payload = _unpad(payload)
        state = self._streams.get(stream)
        if state is None or state.answered:  # reset, or refused already: counted, dropped
            if state is not None and flags & _END_STREAM:
                del self._streams[stream]
            return
        if flags & _END_STREAM and not state.data:  # the usual: the message in one frame
            self._complete(stream, state, payload, calls)
            return
        state.data += payload
        if len(state.data) > MAX_MESSAGE + 5:
            state.answered = True
            self.fail(stream, _GRPC_RESOURCE_EXHAUSTED, "request message larger than 1 MiB")
            self._streams[stream] = state  # kept (answered) so its later DATA is dropped
        elif flags & _END_STREAM:
            self._complete(stream, state, state.data, calls)

    def _on_headers(self, flags: int, stream: int, payload: bytes, calls: list[Call]) -> None:
        if flags & _PADDED:
            payload = _unpad(payload)
        if flags & _PRIORITY_FLAG:
            payload = payload[5:]
        known = self._streams.get(stream)
        if known is not None:  # trailers of a request: a unary call sends none
            if not known.answered:
                self.fail(stream, _GRPC_INTERNAL, "unexpected request trailers")
            return
        if stream % 2 == 0 or stream <= self._last_stream:
            self._goaway(_PROTOCOL_ERROR)
            return
        self._last_stream = stream
        # Over the limit: refused, its header block still decoded (the table stays in step).
        self._block_refused = len(self._streams) >= _MAX_STREAMS
        if self._block_refused:
            self._out += _frame(_RST, 0, stream, _U32.pack(_REFUSED_STREAM))
        self._block_ends = bool(flags & _END_STREAM)
        self._block_stream = stream
        if flags & _END_HEADERS:  # the usual: the whole block in this frame, taken as it is
            self._headers_done(payload, calls)
        else:
            self._block[:] = payload

    def _on_continuation(self, flags: int, stream: int, payload: bytes, calls: list[Call]) -> None:
        if stream != self._block_stream:
            self._goaway(_PROTOCOL_ERROR)
            return
        self._block += payload
        if flags & _END_HEADERS:
            self._headers_done(bytes(self._block), calls)

    def _headers_done(self, block: bytes, calls: list[Call]) -> None:
        """The header block of the stream being received is whole: ``block``."""
        stream = self._block_stream
        self._block_stream = 0
        path = self._path(block)
        if path is None or self._block_refused:
            return
        state = self._streams[stream] = _Stream(path, window=self._peer_initial)
        if self._block_ends:
            self._complete(stream, state, b"", calls)

    def _path(self, block: bytes) -> bytes | None:
        """The block's ``:path``; None if it cannot be decoded (the connection is then over)."""
        path = self._paths.get(block)
        if path is not None:
            return path
        table = self._decoder.header_table
        stateless = table.maxsize == 0 and not table.dynamic_entries
        try:
            headers = self._decoder.decode(block, raw=True)
        except hpack.HPACKError:
            self._goaway(_COMPRESSION_ERROR)
            return None
        path = next((bytes(v) for k, v in headers if k == b":path"), b"")
        if stateless and table.maxsize == 0:
            if len(self._paths) >= 64:
                self._paths.clear()  # bounded: varying blocks (a request id) are not kept
            self._paths[block] = path
        return path

    def _complete(
        self, stream: int, state: _Stream, data: bytes | bytearray, calls: list[Call]
    ) -> None:
        """The request ended: ``data`` is its whole body."""
        if len(data) < 5 or _U32.unpack_from(data, 1)[0] != len(data) - 5:
            self.fail(stream, _GRPC_INTERNAL, "expected exactly one length-prefixed message")
        elif data[0]:
            self.fail(stream, _GRPC_UNIMPLEMENTED, "compressed messages are not accepted")
        else:
            calls.append(Call(stream, state.path, bytes(data[5:])))
            state.data.clear()

    def _on_rst(self, flags: int, stream: int, payload: bytes, calls: list[Call]) -> None:
        self._streams.pop(stream, None)

    def _on_settings(self, flags: int, stream: int, payload: bytes, calls: list[Call]) -> None:
        if flags & _ACK:
            self._decoder.max_allowed_table_size = 0  # the peer must now use no table
            return
        if stream or len(payload) % 6:
            self._goaway(_FRAME_SIZE_ERROR if len(payload) % 6 else _PROTOCOL_ERROR)
            return
        for at in range(0, len(payload), 6):
            key, value = _SETTING.unpack_from(payload, at)
            if key == _INITIAL_WINDOW:
                if value > 0x7FFF_FFFF:
                    self._goaway(_FLOW_CONTROL_ERROR)
                    return
                for state in self._streams.values():
                    state.window += value - self._peer_initial
                self._peer_initial = value
            elif key == _MAX_FRAME_SETTING and 16_384 <= value <= 0xFF_FFFF:
                self._peer_max_frame = value
        self._out += _frame(_SETTINGS, _ACK, 0)
        self._flush_waiting()

    def _on_ping(self, flags: int, stream: int, payload: bytes, calls: list[Call]) -> None:
        if len(payload) != 8:
            self._goaway(_FRAME_SIZE_ERROR)
        elif not flags & _ACK:
            self._out += _frame(_PING, _ACK, 0, payload)

    def _on_goaway(self, flags: int, stream: int, payload: bytes, calls: list[Call]) -> None:
        self.closed = True  # no new streams; the driver closes once written

    def _on_window_update(self, flags: int, stream: int, payload: bytes, calls: list[Call]) -> None:
        if len(payload) != 4:
            self._goaway(_FRAME_SIZE_ERROR)
            return
        grant = _U32.unpack(payload)[0] & 0x7FFF_FFFF
        if stream == 0:
            self._peer_window += grant
        elif stream in self._streams:
            self._streams[stream].window += grant
        self._flush_waiting()

    def _on_push(self, flags: int, stream: int, payload: bytes, calls: list[Call]) -> None:
        self._goaway(_PROTOCOL_ERROR)  # a client never pushes


def _percent(message: str) -> bytes:
    """``grpc-message`` encoding: UTF-8, each byte outside printable ASCII (and ``%``) as
    ``%XX``."""
    return b"".join(
        bytes((b,)) if 0x20 <= b <= 0x7E and b != 0x25 else b"%%%02X" % b for b in message.encode()
    )


def _unpad(payload: bytes) -> bytes:
    pad = payload[0] if payload else 0
    return payload[1 : len(payload) - pad]


_HANDLERS: Final = {
    _DATA: H2Connection._on_data,
    _HEADERS: H2Connection._on_headers,
    _CONT: H2Connection._on_continuation,
    _RST: H2Connection._on_rst,
    _SETTINGS: H2Connection._on_settings,
    _PING: H2Connection._on_ping,
    _GOAWAY: H2Connection._on_goaway,
    _WINDOW_UPDATE: H2Connection._on_window_update,
    _PUSH: H2Connection._on_push,
}  # PRIORITY and unknown frame types are ignored, as RFC 9113 asks
