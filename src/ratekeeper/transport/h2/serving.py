"""Unary gRPC over :mod:`.connection`, in the event loop's own thread: a unix socket (the
sidecar's path for Envoy) or TCP, plaintext or TLS (the server's Report path).

Drives one :class:`~ratekeeper.transport.h2.connection.H2Connection` per accepted connection:
bytes read go in, each complete call goes to its method, the answers go out in one write per
read. A method is an ``async`` function from request bytes to response bytes; it refuses a call
by raising :class:`GrpcError`, and any other exception is answered INTERNAL and logged. A method
that does not suspend (the sidecar's decisions never do) is run to completion inside the read
callback: no task, no extra turn of the loop. One that suspends finishes in a task.

:class:`Limits` says what a connection may do, as the gRPC listeners' channel arguments do for
theirs: the largest message, the methods that need the bearer token, how long a connection may
go without completing a call (idle, or trickling one) and how long it gets to send the HTTP/2
preface. Under mTLS, ``per_peer`` gives the methods a client's certificate common name sees.

Contract: start and stop on the loop that serves; not thread safe; a unix socket file is
removed on stop. A path no method serves is answered UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
from collections.abc import Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from ratekeeper.transport.h2.connection import Call, H2Connection
from ratekeeper.transport.h2.wire import MAX_MESSAGE
from ratekeeper.transport.tls import token_matches

__all__ = ["GrpcError", "H2Server", "Limits", "Method", "UdsServer"]

log = logging.getLogger(__name__)

#: A unary method: the request message's bytes to the response message's bytes (an ``async``
#: function: its coroutine is driven by hand, see :meth:`_Connection._run`).
Method = Callable[[bytes], Coroutine[Any, Any, bytes]]

_UNAUTHENTICATED, _UNIMPLEMENTED, _INTERNAL = 16, 12, 13
#: Connections the kernel queues before accepting (as the HTTP listener's backlog).
_BACKLOG = 1024


class GrpcError(Exception):
    """A refusal: the gRPC status ``code`` and ``message`` the caller gets."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True, slots=True)
class Limits:
    """What one connection may do; the defaults are the sidecar's unix socket's."""

    #: The largest request message, in bytes (RESOURCE_EXHAUSTED beyond).
    max_message: int = MAX_MESSAGE
    #: The bearer token :attr:`protected` methods need (UNAUTHENTICATED without); ``None``: none.
    token: str | None = None
    #: The ``:path`` of each method that needs the token.
    protected: Collection[bytes] = frozenset()
    #: Seconds a connection may go without completing a call, no call in flight (idle, or
    #: trickling one), before it is sent GOAWAY and closed; 0: never.
    idle_timeout_s: float = 0.0
    #: Seconds a new connection gets to send the HTTP/2 preface (and the TLS handshake); 0:
    #: no bound.
    handshake_timeout_s: float = 0.0
    #: Under mTLS: the methods a client whose certificate's common name is the argument sees
    #: (``None``: the server's methods for every client).
    per_peer: Callable[[str], Mapping[bytes, Method]] | None = None


class H2Server:
    """gRPC ``methods`` (by ``:path``, e.g. ``b"/pkg.Service/Method"``) on a unix socket or TCP."""

    def __init__(self, methods: Mapping[bytes, Method], limits: Limits | None = None) -> None:
        self._methods = dict(methods)
        self._limits = Limits() if limits is None else limits
        self._server: asyncio.AbstractServer | None = None
        self._path = ""
        self._connections: set[_Connection] = set()

    def _connection(self) -> _Connection:
        return _Connection(self._methods, self._connections, self._limits)

    async def start_unix(self, path: str) -> None:
        """Listen on ``path`` (a stale socket file there is replaced)."""
        loop = asyncio.get_running_loop()
        self._path = path
        self._server = await loop.create_unix_server(self._connection, path, backlog=_BACKLOG)

    start = start_unix  # the sidecar's name for it

    async def start_tcp(self, host: str, port: int, context: ssl.SSLContext | None = None) -> int:
        """Listen on ``host:port`` (0 picks a free port), with TLS if ``context`` (ALPN ``h2``,
        as gRPC clients require); the port bound."""
        if context is not None:
            context.set_alpn_protocols(["h2"])
        handshake = self._limits.handshake_timeout_s if context is not None else None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._connection, host, port, ssl=context, backlog=_BACKLOG,
            ssl_handshake_timeout=handshake or None,
        )  # fmt: skip
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def connections(self) -> int:
        """Connections open now."""
        return len(self._connections)

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
        if self._path:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._path)


#: The sidecar's unix-socket server (the same class).
UdsServer = H2Server


class _Connection(asyncio.Protocol):
    """One accepted connection."""

    def __init__(
        self,
        methods: Mapping[bytes, Method],
        registry: set[_Connection],
        limits: Limits | None = None,
    ) -> None:
        self._methods = methods
        self._registry = registry
        self._limits = limits = Limits() if limits is None else limits
        self._h2 = H2Connection(limits.max_message)
        self._transport: asyncio.Transport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._token = limits.token
        self._protected = frozenset(limits.protected) if limits.token else frozenset()
        self._calls = 0  # calls completed (read whole) so far: the idle check's progress
        self._timer: asyncio.TimerHandle | None = None

    @property
    def busy(self) -> bool:
        """Calls still being answered."""
        return bool(self._tasks)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._registry.add(self)
        limits = self._limits
        if limits.per_peer is not None:
            name = _common_name(transport.get_extra_info("peercert"))
            if name is not None:
                self._methods = limits.per_peer(name)
        transport.write(self._h2.data_to_send())
        first = limits.handshake_timeout_s or limits.idle_timeout_s
        if first:
            self._timer = asyncio.get_running_loop().call_later(first, self._check, -1)

    def connection_lost(self, exc: Exception | None) -> None:
        self._registry.discard(self)
        self._transport = None
        if self._timer is not None:
            self._timer.cancel()
        for task in self._tasks:
            task.cancel()

    def data_received(self, data: bytes) -> None:
        h2 = self._h2
        for call in h2.receive(data):
            self._calls += 1
            method = self._methods.get(call.path)
            if method is None:
                h2.fail(call.stream, _UNIMPLEMENTED, f"unknown method {call.path.decode()}")
            elif call.path in self._protected and not _authorized(call, self._token):
                h2.fail(call.stream, _UNAUTHENTICATED, "missing or wrong authorization token")
            else:
                self._run(method(call.message), call)
        self._flush()

    def _check(self, seen: int) -> None:
        """The timer: close a connection that has completed no call since the last check
        (``seen`` calls then; -1 at the first, the handshake's bound) and has none in flight."""
        self._timer = None
        if self._transport is None:
            return
        idle = self._limits.idle_timeout_s
        if (self._calls == seen and not self._tasks) or (seen < 0 and not self._h2.started):
            self._h2.go_away()
            self._flush()
            self._transport.close()
            return
        if idle:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(idle, self._check, self._calls)

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


def _authorized(call: Call, token: str | None) -> bool:
    return token is not None and token_matches(call.authorization, token)


def _common_name(cert: Any) -> str | None:
    """The subject common name of a peer certificate as ``ssl`` gives it (``None``: none)."""
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None
