"""The sidecar's HTTP/2 responder against an independent client: the ``h2`` library's state
machine (flow control, SETTINGS, PING, GOAWAY, CONTINUATION, RST_STREAM, padding)."""

from __future__ import annotations

import struct

import h2.config
import h2.connection
import h2.events
import h2.settings

from ratekeeper.transport.h2.connection import MAX_MESSAGE, Call, H2Connection

PATH = b"/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit"


class Pair:
    """An h2 client wired to an :class:`H2Connection`, bytes passed by hand."""

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self.client = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.server = H2Connection(max_message)
        self.client.initiate_connection()
        self.events: list[h2.events.Event] = []
        self.calls: list[Call] = []
        self.pump()

    def pump(self) -> None:
        """Move bytes both ways until both sides are quiet."""
        while True:
            to_server, to_client = self.client.data_to_send(), self.server.data_to_send()
            if not to_server and not to_client:
                return
            if to_server:
                self.calls += self.server.receive(to_server)
            if to_client:
                self.events += self.client.receive_data(to_client)

    def call(self, message: bytes, path: bytes = PATH, extra: Headers = (), **data: int) -> int:
        stream = self.client.get_next_available_stream_id()
        self.client.send_headers(stream, _request_headers(path, tuple(extra)))
        body = b"\x00" + struct.pack(">I", len(message)) + message
        step = 16_000  # under the frame size; pumped between, so window updates come back
        for at in range(0, len(body), step):
            last = at + step >= len(body)
            self.client.send_data(stream, body[at : at + step], end_stream=last, **data)
            self.pump()
        return stream

    def of(self, stream: int, kind: type[h2.events.Event]) -> list[h2.events.Event]:
        return [e for e in self.events if isinstance(e, kind) and e.stream_id == stream]

    def answer(self, stream: int) -> tuple[bytes, dict[bytes, bytes]]:
        """The response message and the trailers of ``stream``."""
        data = b"".join(e.data for e in self.of(stream, h2.events.DataReceived))
        trailers = self.of(stream, h2.events.TrailersReceived)
        headers = self.of(stream, h2.events.ResponseReceived)
        assert self.of(stream, h2.events.StreamEnded)
        if not data:  # a trailers-only response
            return b"", dict(headers[0].headers)
        assert dict(headers[0].headers)[b"content-type"] == b"application/grpc"
        assert data[0] == 0
        assert struct.unpack(">I", data[1:5])[0] == len(data) - 5
        return data[5:], dict(trailers[0].headers)


Headers = list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...]


def _request_headers(path: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()) -> Headers:
    return [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", path),
        (b":authority", b"sidecar"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        *extra,
    ]


def test_a_unary_call_and_its_answer() -> None:
    pair = Pair()
    stream = pair.call(b"request")
    assert pair.calls == [Call(stream, PATH, b"request")]
    pair.server.reply(stream, b"response")
    pair.pump()
    assert pair.answer(stream) == (b"response", {b"grpc-status": b"0"})


def test_many_calls_on_one_connection_decode_every_path() -> None:
    pair = Pair()
    paths = [PATH, b"/grpc.health.v1.Health/Check"] * 20
    streams = [pair.call(b"m%d" % i, path) for i, path in enumerate(paths)]
    assert [(c.stream, c.path) for c in pair.calls] == list(zip(streams, paths, strict=True))
    for call in pair.calls:
        pair.server.reply(call.stream, call.message)
    pair.pump()
    assert [pair.answer(s)[0] for s in streams] == [b"m%d" % i for i in range(len(paths))]


def test_reads_cut_anywhere_give_the_same_calls() -> None:
    """Whole frames are parsed from the read itself, partial ones buffered: every cut of two
    calls' bytes (HEADERS and DATA each) into three reads gives both calls, once."""
    pair = Pair()
    pair.pump()
    streams = []
    for message in (b"first", b"second"):
        stream = pair.client.get_next_available_stream_id()
        pair.client.send_headers(stream, _request_headers(PATH))
        pair.client.send_data(stream, b"\x00" + struct.pack(">I", len(message)) + message)
        pair.client.end_stream(stream)
        streams.append(stream)
    wire = pair.client.data_to_send()
    for cut in range(0, len(wire), 7):
        for second in (cut, (cut + len(wire)) // 2, len(wire)):
            server = H2Connection()
            server.receive(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            calls = []
            for piece in (wire[:cut], wire[cut:second], wire[second:]):
                calls += server.receive(piece)
            assert [(c.stream, c.message) for c in calls] == [
                (streams[0], b"first"),
                (streams[1], b"second"),
            ], (cut, second)


def test_header_blocks_in_continuation_frames() -> None:
    pair = Pair()
    stream = pair.client.get_next_available_stream_id()
    big = ((b"x-big", b"v" * 40_000),)  # over one frame: HEADERS + CONTINUATION
    pair.client.send_headers(stream, _request_headers(PATH, big))
    pair.client.send_data(stream, b"\x00\x00\x00\x00\x01z", end_stream=True)
    pair.pump()
    assert pair.calls == [Call(stream, PATH, b"z")]


def test_padded_data_and_split_messages() -> None:
    pair = Pair()
    stream = pair.client.get_next_available_stream_id()
    pair.client.send_headers(stream, _request_headers(PATH))
    body = b"\x00" + struct.pack(">I", 6) + b"abcdef"
    pair.client.send_data(stream, body[:4], pad_length=7)
    pair.pump()
    assert pair.calls == []
    pair.client.send_data(stream, body[4:], end_stream=True, pad_length=3)
    pair.pump()
    assert pair.calls == [Call(stream, PATH, b"abcdef")]


def test_ping_is_acknowledged() -> None:
    pair = Pair()
    pair.client.ping(b"12345678")
    pair.pump()
    acks = [e for e in pair.events if isinstance(e, h2.events.PingAckReceived)]
    assert [a.ping_data for a in acks] == [b"12345678"]


def test_an_answer_waits_for_the_clients_window() -> None:
    pair = Pair()
    pair.client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 10})
    pair.pump()
    stream = pair.call(b"q")
    pair.server.reply(stream, b"a" * 30)  # 35 bytes of DATA: over the window of 10
    pair.pump()
    assert not pair.of(stream, h2.events.DataReceived)
    pair.client.increment_flow_control_window(100, stream)
    pair.pump()
    assert pair.answer(stream) == (b"a" * 30, {b"grpc-status": b"0"})


def test_the_connection_window_is_replenished() -> None:
    pair = Pair()
    message = b"m" * 300_000
    for _ in range(8):  # 2.4 MB: more than the first window, so only updates let it through
        stream = pair.call(message)
        assert pair.calls[-1] == Call(stream, PATH, message)


def test_large_answers_are_split_by_the_frame_size() -> None:
    pair = Pair()
    stream = pair.call(b"q")
    pair.server.reply(stream, b"a" * 50_000)
    pair.pump()
    assert len(pair.of(stream, h2.events.DataReceived)) >= 4
    assert pair.answer(stream)[0] == b"a" * 50_000


def test_a_message_over_the_limit_is_refused() -> None:
    pair = Pair()
    stream = pair.call(b"m" * (MAX_MESSAGE + 1))
    assert pair.calls == []
    assert pair.answer(stream)[1][b"grpc-status"] == b"8"
    assert pair.call(b"next")
    assert pair.calls[-1].message == b"next"


def test_compressed_and_malformed_messages_are_refused() -> None:
    pair = Pair()
    stream = pair.client.get_next_available_stream_id()
    pair.client.send_headers(stream, _request_headers(PATH))
    pair.client.send_data(stream, b"\x01\x00\x00\x00\x01z", end_stream=True)
    pair.pump()
    assert pair.answer(stream)[1][b"grpc-status"] == b"12"
    stream = pair.client.get_next_available_stream_id()
    pair.client.send_headers(stream, _request_headers(PATH), end_stream=True)
    pair.pump()
    assert pair.answer(stream)[1][b"grpc-status"] == b"13"
    assert pair.calls == []


def test_fail_sends_status_and_message() -> None:
    pair = Pair()
    stream = pair.call(b"q")
    pair.server.fail(stream, 3, "bad descriptor: 100%")
    pair.pump()
    trailers = pair.answer(stream)[1]
    assert trailers[b"grpc-status"] == b"3"
    assert trailers[b"grpc-message"] == b"bad descriptor: 100%25"


def test_a_reset_stream_is_forgotten() -> None:
    pair = Pair()
    stream = pair.client.get_next_available_stream_id()
    pair.client.send_headers(stream, _request_headers(PATH))
    pair.client.reset_stream(stream)
    pair.pump()
    pair.server.reply(stream, b"late")  # answering a reset stream sends nothing
    assert pair.server.data_to_send() == b""
    assert pair.call(b"after")
    assert pair.calls[-1].message == b"after"


def test_go_away_and_a_bad_preface() -> None:
    pair = Pair()
    pair.server.go_away()
    pair.pump()
    ended = [e for e in pair.events if isinstance(e, h2.events.ConnectionTerminated)]
    assert ended
    assert ended[0].error_code == 0
    assert pair.server.closed
    bad = H2Connection()
    bad.data_to_send()
    assert bad.receive(b"GET / HTTP/1.1\r\n\r\n" + b"x" * 10) == []
    assert bad.closed
    assert bad.data_to_send()[3] == 7


def test_the_authorization_header_comes_with_the_call() -> None:
    pair = Pair()
    token = ((b"authorization", b"Bearer t0ken"),)
    first = pair.call(b"a", extra=token)
    second = pair.call(b"b")
    third = pair.call(b"c", extra=token)  # the same block again: looked up, not decoded
    assert [(c.stream, c.authorization) for c in pair.calls] == [
        (first, b"Bearer t0ken"),
        (second, None),
        (third, b"Bearer t0ken"),
    ]


def test_the_message_limit_is_the_connections() -> None:
    pair = Pair(max_message=4 << 20)
    big = b"m" * (2 << 20)  # over the default, under this connection's limit
    stream = pair.call(big)
    assert pair.calls == [Call(stream, PATH, big)]
    over = pair.call(b"m" * ((4 << 20) + 1))
    assert pair.answer(over)[1][b"grpc-status"] == b"8"
