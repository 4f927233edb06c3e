"""Unary gRPC on a unix socket, in the event loop's own thread: the sidecar's path for Envoy.

Drives one :class:`~ratekeeper.transport.h2.connection.H2Connection` per accepted connection:
bytes read go in, each complete call goes to its method, the answers go out in one write per read. A
method is an ``async`` function from request bytes to response bytes; it refuses a call by
raising :class:`GrpcError`, and any other exception is answered INTERNAL and logged. A method
that does not suspend (the sidecar's decisions never do) is run to completion inside the read
callback: no task, no extra turn of the loop. One that suspends finishes in a task.

Contract: start and stop on the loop that serves; not thread safe; the socket file is removed
on stop. A path no method serves is answered UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from ratekeeper.transport.h2.connection import Call, H2Connection

__all__ = ["GrpcError", "Method", "UdsServer"]

log = logging.getLogger(__name__)

#: A unary method: the request message's bytes to the response message's bytes (an ``async``
#: function: its coroutine is driven by hand, see :meth:`_Connection._run`).
Method = Callable[[bytes], Coroutine[Any, Any, bytes]]

_UNIMPLEMENTED, _INTERNAL = 12, 13


class GrpcError(Exception):
    """A refusal: the gRPC status ``code`` and ``message`` the caller gets."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class UdsServer:
    """gRPC ``methods`` (by ``:path``, e.g. ``b"/pkg.Service/Method"``) on a unix socket."""

    def __init__(self, methods: Mapping[bytes, Method]) -> None:
        self._methods = dict(methods)
        self._server: asyncio.AbstractServer | None = None
        self._path = ""
        self._connections: set[_Connection] = set()

    async def start(self, path: str) -> None:
        """Listen on ``path`` (a stale socket file there is replaced)."""
        loop = asyncio.get_running_loop()
        self._path = path
        self._server = await loop.create_unix_server(
            lambda: _Connection(self._methods, self._connections), path
        )

    async def stop(self, grace: float) -> None:
        """Stop accepting; tell each connection to go away, give calls in flight ``grace``
        seconds, then close."""
        if self._server is None:
            return
        self._server.close()
        for connection in list(self._connections):
            connection.go_away()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while any(c.busy for c in self._connections) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        for connection in list(self._connections):
            connection.close()
        await self._server.wait_closed()
        self._server = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path)


class _Connection(asyncio.Protocol):
    """One accepted connection."""

    def __init__(self, methods: Mapping[bytes, Method], registry: set[_Connection]) -> None:
        self._methods = methods
        self._registry = registry
        self._h2 = H2Connection()
        self._transport: asyncio.Transport | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def busy(self) -> bool:
        """Calls still being answered."""
        return bool(self._tasks)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._registry.add(self)
        transport.write(self._h2.data_to_send())

    def connection_lost(self, exc: Exception | None) -> None:
        self._registry.discard(self)
        self._transport = None
        for task in self._tasks:
            task.cancel()

    def data_received(self, data: bytes) -> None:
        h2 = self._h2
        for call in h2.receive(data):
            method = self._methods.get(call.path)
            if method is None:
                h2.fail(call.stream, _UNIMPLEMENTED, f"unknown method {call.path.decode()}")
            else:
                self._run(method(call.message), call)
        self._flush()

    def go_away(self) -> None:
        """No new calls (a graceful GOAWAY); those in flight are still answered."""
        self._h2.go_away()
        self._flush()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        out = self._h2.data_to_send()
        if out:
            transport.write(out)
        if self._h2.closed and not self._tasks:
            transport.close()  # after what was written

    def _run(self, coro: Coroutine[Any, Any, bytes], call: Call) -> None:
        """Run the method's coroutine now; if it suspends, finish it in a task."""
        try:
            waiting = coro.send(None)
        except StopIteration as done:
            self._h2.reply(call.stream, done.value)
        except Exception as exc:
            self._refuse(call, exc)
        else:
            task = asyncio.get_running_loop().create_task(self._resume(coro, waiting, call))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _resume(self, coro: Coroutine[Any, Any, bytes], waiting: Any, call: Call) -> None:
        """Go on with a coroutine suspended on ``waiting`` (what it yielded), as a task would."""
        try:
            while True:
                if waiting is None:
                    await asyncio.sleep(0)  # a bare yield: give the loop a turn
                else:
                    waiting._asyncio_future_blocking = False
                    await asyncio.wait((waiting,))
                waiting = coro.send(None)
        except StopIteration as done:
            self._h2.reply(call.stream, done.value)
        except asyncio.CancelledError:
            coro.close()
            raise
        except Exception as exc:
            self._refuse(call, exc)
        self._flush()

    def _refuse(self, call: Call, exc: Exception) -> None:
        if isinstance(exc, GrpcError):
            self._h2.fail(call.stream, exc.code, exc.message)
            return
        log.exception("%s failed", call.path.decode())
        self._h2.fail(call.stream, _INTERNAL, "internal error")
