"""The two pieces every typed service boundary here is made of, written once.

No ``*_pb2_grpc`` module is generated (protoc's are untyped): each service module
(:mod:`~ratekeeper.proto.report`, :mod:`~ratekeeper.proto.cluster`,
:mod:`~ratekeeper.proto.handoff`) makes its callables with :func:`unary_call` and its server
methods with :func:`decoding`, from the generated message types.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

import grpc
import grpc.aio
from google.protobuf.message import DecodeError, Message

__all__ = ["decoding", "unary_call"]

Request = TypeVar("Request", bound=Message)
Response = TypeVar("Response", bound=Message)


@overload
def unary_call(
    channel: grpc.aio.Channel, method: str, request: type[Request], response: type[Response]
) -> grpc.aio.UnaryUnaryMultiCallable[Request, Response]: ...


@overload
def unary_call(
    channel: grpc.Channel, method: str, request: type[Request], response: type[Response]
) -> grpc.UnaryUnaryMultiCallable[Request, Response]: ...


def unary_call(
    channel: grpc.Channel | grpc.aio.Channel,
    method: str,
    request: type[Message],
    response: type[Message],
) -> Any:
    """The unary ``method`` (``/package.Service/Method``) on a blocking or asyncio channel."""
    return channel.unary_unary(
        method,
        request_serializer=request.SerializeToString,
        response_deserializer=response.FromString,
    )


def decoding(
    request_type: type[Request],
    response_type: type[Response],
    behaviour: Callable[[Request, grpc.aio.ServicerContext[Any, Any]], Awaitable[Response]],
    *,
    refused: tuple[type[Exception], ...] = (),
) -> grpc.RpcMethodHandler[Any, Any]:
    """A ``grpc.aio`` method serving ``behaviour``, decoding its request here rather than in grpc.

    Bytes that are not a ``request_type`` are answered ``INVALID_ARGUMENT`` (grpc answers a
    failed deserializer ``UNKNOWN``); so is an exception of ``refused`` that ``behaviour``
    raises (a request its converter refuses), with the exception's text.
    """

    async def decoded(data: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        try:
            request = request_type.FromString(data)
        except DecodeError:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"not a {request_type.DESCRIPTOR.name}"
            )
        try:
            return await behaviour(request, context)
        except refused as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    return grpc.unary_unary_rpc_method_handler(
        decoded, response_serializer=response_type.SerializeToString
    )
