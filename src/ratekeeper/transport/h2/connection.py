"""Sans-IO HTTP/2 (cleartext, prior knowledge) for unary gRPC calls: the sidecar's unix socket.

Why not ``grpc.aio``: profiled under Envoy at one call in flight, the sidecar spent ~96% of its
time in grpc.aio's machinery (the C core's poller thread handing each call to the event loop and
back) and ~4% deciding. This connection is the whole server side of a unary gRPC call in one
thread: bytes in, calls out (:meth:`H2Connection.receive`), answers in, bytes out
(:meth:`H2Connection.reply`, :meth:`H2Connection.fail`, :meth:`H2Connection.data_to_send`).
No socket, no loop, no clock: :mod:`ratekeeper.transport.h2.serving` drives it.

What it speaks (RFC 9113, gRPC over HTTP/2):

* the client preface, SETTINGS (ours: no HPACK dynamic table, 2 MiB stream windows), PING,
  WINDOW_UPDATE (both directions: our DATA waits for the peer's window), RST_STREAM, GOAWAY,
  PRIORITY (ignored), HEADERS with CONTINUATION, padding;
* one request message per stream (``grpc-encoding`` identity: a compressed message is refused
  with UNIMPLEMENTED), up to :data:`MAX_MESSAGE` bytes (RESOURCE_EXHAUSTED beyond);
* answers with fixed header blocks (no Huffman, no table): ``:status 200``,
  ``content-type: application/grpc``, the message, then the ``grpc-status`` trailer; refusals
  as trailers-only responses.

Header blocks are decoded by :class:`~ratekeeper.transport.h2.headers.HeaderReader` (``hpack``,
no dynamic table). A protocol error closes the connection with GOAWAY.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from ratekeeper.transport.h2.headers import HeaderReader
from ratekeeper.transport.h2.wire import (
    ACK,
    ANSWER_HEAD,
    ANSWER_WORD,
    COMPRESSION_ERROR,
    CONT,
    DATA,
    END_HEADERS,
    END_STREAM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    GOAWAY,
    GRPC_INTERNAL,
    GRPC_RESOURCE_EXHAUSTED,
    GRPC_UNIMPLEMENTED,
    HEAD,
    HEADERS,
    INITIAL_WINDOW,
    MAX_FRAME,
    MAX_FRAME_SETTING,
    MAX_MESSAGE,
    MAX_STREAMS,
    OK_TRAILERS,
    OURS,
    PADDED,
    PING,
    PREFACE,
    PRIORITY_FLAG,
    PROTOCOL_ERROR,
    PUSH,
    REFUSED_STREAM,
    RESPONSE_HEAD,
    RST,
    SETTING,
    SETTINGS,
    TRAILERS_WORD,
    U32,
    WINDOW,
    WINDOW_UPDATE,
    frame,
    literal_header,
    percent,
    unpad,
)

__all__ = ["MAX_MESSAGE", "Call", "H2Connection", "literal_header"]


@dataclass(frozen=True, slots=True)
class Call:
    """One complete unary request."""

    #: Its HTTP/2 stream, to answer on.
    stream: int
    #: The ``:path`` (``/package.Service/Method``), as sent.
    path: bytes
    #: The request message (the gRPC length prefix removed).
    message: bytes
    #: The ``authorization`` header's value (``None``: absent).
    authorization: bytes | None = None


@dataclass(slots=True)
class _Stream:
    """A request being received."""

    path: bytes = b""
    authorization: bytes | None = None
    data: bytearray = field(default_factory=bytearray)
    #: How many bytes of DATA the peer's window still lets us send on it.
    window: int = 65_535
    #: Answered already (refused before its end): later frames are dropped.
    answered: bool = False


class H2Connection:
    """The server side of one HTTP/2 connection carrying unary gRPC calls; not thread safe."""

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        """``max_message``: the largest request message taken (RESOURCE_EXHAUSTED beyond)."""
        self._max_message = max_message
        # Stream and connection windows: room for a message over the limit, so it is refused
        # rather than stalled (a stream's window is never updated).
        self._window = window = max(WINDOW, 2 * max_message)
        ours = (*OURS[:2], (INITIAL_WINDOW, window), *OURS[3:])
        self._in = bytearray()
        self._out = bytearray(frame(SETTINGS, 0, 0, b"".join(SETTING.pack(*s) for s in ours)))
        self._out += frame(WINDOW_UPDATE, 0, 0, U32.pack(window - 65_535))
        self._preface = False
        self._streams: dict[int, _Stream] = {}
        self._last_stream = 0
        self._headers = HeaderReader()
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

    @property
    def started(self) -> bool:
        """The client preface has been received."""
        return self._preface

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
                    self._goaway(PROTOCOL_ERROR)
                return []
            if not buf.startswith(PREFACE):
                self._goaway(PROTOCOL_ERROR)
                return []
            del self._in[: len(PREFACE)]
            self._preface = True
        calls: list[Call] = []
        view, at, end = memoryview(buf), 0, len(buf)
        while end - at >= 9 and not self.closed:
            word, flags, stream = HEAD.unpack_from(view, at)
            length, kind = word >> 8, word & 0xFF
            if length > MAX_FRAME:
                self._goaway(FRAME_SIZE_ERROR)
                break
            if end - at - 9 < length:
                break
            payload = bytes(view[at + 9 : at + 9 + length])
            at += 9 + length
            stream &= 0x7FFF_FFFF
            if self._block_stream and kind != CONT:
                self._goaway(PROTOCOL_ERROR)  # a header block must be continued at once
                break
            handler = _HANDLERS.get(kind)
            if handler is not None:
                handler(self, flags, stream, payload, calls)
        view.release()
        if buf is self._in:
            del self._in[:at]
        elif at < end:
            self._in += buf[at:]
        if self._unacked >= self._window // 4:
            self._out += frame(WINDOW_UPDATE, 0, 0, U32.pack(self._unacked))
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
        block = RESPONSE_HEAD + literal_header(b"grpc-status", str(code).encode())
        if message:
            block += literal_header(b"grpc-message", percent(message))
        self._out += frame(HEADERS, END_STREAM | END_HEADERS, stream, block)

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
            out += ANSWER_HEAD.pack(
                ANSWER_WORD, END_HEADERS, stream, RESPONSE_HEAD,
                size << 8 | DATA, 0, stream, 0, len(message),
            )  # fmt: skip
            out += message
        else:
            out += frame(HEADERS, END_HEADERS, stream, RESPONSE_HEAD)
            body = b"\x00" + U32.pack(len(message)) + message
            step = self._peer_max_frame
            for at in range(0, size, step):
                out += frame(DATA, 0, stream, body[at : at + step])
        out += HEAD.pack(TRAILERS_WORD, END_STREAM | END_HEADERS, stream)
        out += OK_TRAILERS
        return True

    def _flush_waiting(self) -> None:
        while self._waiting and self._send(*self._waiting[0]):
            del self._waiting[0]

    def _goaway(self, code: int) -> None:
        self._out += frame(GOAWAY, 0, 0, U32.pack(self._last_stream) + U32.pack(code))
        self.closed = True

    # -- frames, by type (see _HANDLERS) ----------------------------------------------------

    def _on_data(self, flags: int, stream: int, payload: bytes, calls: list[Call]) -> None:
        self._unacked += len(payload)  # padding included: it counts against the window
        if flags & PADDED:
            payload = unpad(payload)
        state = self._streams.get(stream)
        if state is None or state.answered:  # reset, or refused already: counted, dropped
            if state is not None and flags & END_STREAM:
                del self._streams[stream]
            return
        if flags & END_STREAM and not state.data:  # the usual: the message in one frame
            self._complete(stream, state, payload, calls)
            return
        state.data += payload
        if len(state.data) > self._max_message + 5:
            state.answered = True
            limit = f"request message larger than {self._max_message} bytes"
            self.fail(stream, GRPC_RESOURCE_EXHAUSTED, limit)
            self._streams[stream] = state  # kept (answered) so its later DATA is dropped
        elif flags & END_STREAM:
            self._complete(stream, state, state.data, calls)

    def _on_headers(self, flags: int, stream: int, payload: bytes, calls: list[Call]) -> None:
        if flags & PADDED:
            payload = unpad(payload)
        if flags & PRIORITY_FLAG:
            payload = payload[5:]
        known = self._streams.get(stream)
        if known is not None:  # trailers of a request: a unary call sends none
            if not known.answered:
                self.fail(stream, GRPC_INTERNAL, "unexpected request trailers")
            return
        if stream % 2 == 0 or stream <= self._last_stream:
            self._goaway(PROTOCOL_ERROR)
            return
        self._last_stream = stream
        # Over the limit: refused, its header block still decoded (the table stays in step).
        self._block_refused = len(self._streams) >= MAX_STREAMS
        if self._block_refused:
            self._out += frame(RST, 0, stream, U32.pack(REFUSED_STREAM))
        self._block_ends = bool(flags & END_STREAM)
        self._block_stream = stream
        if flags & END_HEADERS:  # the usual: the whole block in this frame, taken as it is
            self._headers_done(payload, calls)
        else:
            self._block[:] = payload

    def _on_continuation(self, flags: int, stream: int, payload: bytes, calls: list[Call]) -> None:
        if stream != self._block_stream:
            self._goaway(PROTOCOL_ERROR)
            return
        self._block += payload
        if flags & END_HEADERS:
            self._headers_done(bytes(self._block), calls)

    def _headers_done(self, block: bytes, calls: list[Call]) -> None:
        """The header block of the stream being received is whole: ``block``."""
        stream = self._block_stream
        self._block_stream = 0
        head = self._headers.read(block)
        if head is None:
            self._goaway(COMPRESSION_ERROR)
            return
        if self._block_refused:
            return
        state = self._streams[stream] = _Stream(
            head.path, head.authorization, window=self._peer_initial
        )
        if self._block_ends:
            self._complete(stream, state, b"", calls)

    def _complete(
        self, stream: int, state: _Stream, data: bytes | bytearray, calls: list[Call]
    ) -> None:
        """The request ended: ``data`` is its whole body."""
        if len(data) < 5 or U32.unpack_from(data, 1)[0] != len(data) - 5:
            self.fail(stream, GRPC_INTERNAL, "expected exactly one length-prefixed message")
        elif data[0]:
            self.fail(stream, GRPC_UNIMPLEMENTED, "compressed messages are not accepted")
        else:
            calls.append(Call(stream, state.path, bytes(data[5:]), state.authorization))
            state.data.clear()

    def _on_rst(self, flags: int, stream: int, payload: bytes, calls: list[Call]) -> None:
        self._streams.pop(stream, None)

    def _on_settings(self, flags: int, stream: int, payload: bytes, calls: list[Call]) -> None:
        if flags & ACK:
            self._headers.acknowledged()  # the peer must now use no table
            return
        if stream or len(payload) % 6:
            self._goaway(FRAME_SIZE_ERROR if len(payload) % 6 else PROTOCOL_ERROR)
            return
        for at in range(0, len(payload), 6):
            key, value = SETTING.unpack_from(payload, at)
            if key == INITIAL_WINDOW:
                if value > 0x7FFF_FFFF:
                    self._goaway(FLOW_CONTROL_ERROR)
                    return
                for state in self._streams.values():
                    state.window += value - self._peer_initial
                self._peer_initial = value
            elif key == MAX_FRAME_SETTING and 16_384 <= value <= 0xFF_FFFF:
                self._peer_max_frame = value
        self._out += frame(SETTINGS, ACK, 0)
        self._flush_waiting()

    def _on_ping(self, flags: int, stream: int, payload: bytes, calls: list[Call]) -> None:
        if len(payload) != 8:
            self._goaway(FRAME_SIZE_ERROR)
        elif not flags & ACK:
            self._out += frame(PING, ACK, 0, payload)

    def _on_goaway(self, flags: int, stream: int, payload: bytes, calls: list[Call]) -> None:
        self.closed = True  # no new streams; the driver closes once written

    def _on_window_update(self, flags: int, stream: int, payload: bytes, calls: list[Call]) -> None:
        if len(payload) != 4:
            self._goaway(FRAME_SIZE_ERROR)
            return
        grant = U32.unpack(payload)[0] & 0x7FFF_FFFF
        if stream == 0:
            self._peer_window += grant
        elif stream in self._streams:
            self._streams[stream].window += grant
        self._flush_waiting()

    def _on_push(self, flags: int, stream: int, payload: bytes, calls: list[Call]) -> None:
        self._goaway(PROTOCOL_ERROR)  # a client never pushes


_HANDLERS: Final = {
    DATA: H2Connection._on_data,
    HEADERS: H2Connection._on_headers,
    CONT: H2Connection._on_continuation,
    RST: H2Connection._on_rst,
    SETTINGS: H2Connection._on_settings,
    PING: H2Connection._on_ping,
    GOAWAY: H2Connection._on_goaway,
    WINDOW_UPDATE: H2Connection._on_window_update,
    PUSH: H2Connection._on_push,
}  # PRIORITY and unknown frame types are ignored, as RFC 9113 asks
