"""A no-op Envoy RLS server: the gRPC floor that ``bench.rls_bench`` compares ratekeeper with.

It has the same process model as ``ratekeeper serve`` (one asyncio process, one ``grpc.aio``
server on 127.0.0.1) and answers every ``ShouldRateLimit`` with OK and one OK status per
descriptor, so the only work left is what gRPC and protobuf cost in Python.

With ``--raw`` it is registered without protobuf (de)serializers, as ratekeeper's servicer is:
it answers the same fixed bytes (OK, one OK status) without parsing the request, so what is
left is gRPC alone, the floor under any Python RLS server.

    python -m bench.noop_rls --grpc-port 50051 [--raw]
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import grpc
from envoy.service.ratelimit.v3 import rls_pb2, rls_pb2_grpc

from ratekeeper.server.rls_servicer import add_rls_servicer

__all__ = ["READY_LINE", "NoopRateLimitService", "RawNoopRateLimitService", "main", "serve"]

#: Printed (with the address) once the port accepts calls; the benchmark waits for it.
READY_LINE = "noop-rls ready"

_OK = rls_pb2.RateLimitResponse.OK


class NoopRateLimitService(rls_pb2_grpc.RateLimitServiceServicer):  # type: ignore[misc]
    """Says OK to everything, at once."""

    async def ShouldRateLimit(
        self, request: rls_pb2.RateLimitRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> rls_pb2.RateLimitResponse:
        statuses = [rls_pb2.RateLimitResponse.DescriptorStatus(code=_OK)] * len(request.descriptors)
        return rls_pb2.RateLimitResponse(overall_code=_OK, statuses=statuses)


class RawNoopRateLimitService:
    """Says OK to everything in fixed bytes, without reading the request."""

    ANSWER = rls_pb2.RateLimitResponse(
        overall_code=_OK, statuses=[rls_pb2.RateLimitResponse.DescriptorStatus(code=_OK)]
    ).SerializeToString()

    async def ShouldRateLimit(
        self, request: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        return self.ANSWER


async def serve(port: int, raw: bool = False) -> None:
    """Serve on 127.0.0.1:``port`` until SIGTERM or SIGINT."""
    server = grpc.aio.server()
    if raw:
        add_rls_servicer(RawNoopRateLimitService(), server)
    else:
        rls_pb2_grpc.add_RateLimitServiceServicer_to_server(NoopRateLimitService(), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    print(f"{READY_LINE} grpc=127.0.0.1:{bound}", flush=True)
    await stopping.wait()
    await server.stop(grace=1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--raw", action="store_true", help="bytes in and out, no protobuf")
    args = parser.parse_args()
    asyncio.run(serve(args.grpc_port, args.raw))


if __name__ == "__main__":
    main()
