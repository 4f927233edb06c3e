"""Unary gRPC over our own sans-IO HTTP/2, for the hot calls grpc.aio makes too dear.

:mod:`.wire` is the HTTP/2 and HPACK vocabulary, :mod:`.connection` one connection's protocol
(bytes in, calls out; no socket, no loop, no clock), :mod:`.serving` the asyncio driver that
listens on a unix socket or TCP (optionally TLS) and runs each call's method. The sidecar serves
Envoy's ShouldRateLimit on it, the server its Report path (docs/benchmarks.md, fan-in).
"""
