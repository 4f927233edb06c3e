"""One Redis: its connection pool, the slots that share it out, its health, and the one way a
call talks to it (a pipeline, then ``batch.lua`` by ``EVALSHA``, by a deadline)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, ResponseError

from ratekeeper.backends.redis import batch
from ratekeeper.backends.redis.health import FAILURES, RedisHealth
from ratekeeper.backends.redis.settings import RedisSettings
from ratekeeper.errors import BackendError

__all__ = ["RedisConnection"]


class RedisConnection:
    """One Redis: its connection pool, the slots that share it out, and its health.

    Single writer: used from the event loop that runs the store.
    """

    def __init__(self, url: str, settings: RedisSettings) -> None:
        timeout = settings.timeout_s
        #: One per pooled connection a call may use: a call that cannot get one in time failed
        #: for want of a connection, which says nothing about Redis's health.
        self.slots = asyncio.Semaphore(settings.pool_size)
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=settings.pool_size + 1,  # and one for the health probe
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            # Our deadline bounds each call; retrying inside it would only hide the failure.
            retry=Retry(NoBackoff(), 0),
        )
        self.client: aioredis.Redis = aioredis.Redis(connection_pool=pool)
        parts = urlsplit(url)
        # Named in errors and logs: the URL without credentials or query.
        name = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"

        async def ping() -> None:
            async with asyncio.timeout(timeout):
                await self.client.ping()

        self.health = RedisHealth(
            name, ping, settings.reconnect_initial_s, settings.reconnect_max_s
        )
        #: Calls that failed (Redis down, timed out, or answering with an error); a call that
        #: failed fast because this Redis is known to be down is not counted again.
        self.errors = 0
        self._half = timeout / 2

    async def execute(
        self,
        build: Callable[[Pipeline], object],
        deadline: float,
        script: tuple[int, list[str]] = (0, []),
    ) -> list[Any]:
        """Send one pipeline, then ``EVALSHA`` of ``batch.lua`` on ``script`` (number of keys,
        keys and arguments) if it has keys; by ``deadline`` (event-loop time) or raise
        :class:`BackendError`."""
        health = self.health
        health.check()
        nkeys, script_args = script
        loop = asyncio.get_running_loop()
        asked: float | None = None  # when this call got a connection and began asking Redis
        try:
            async with asyncio.timeout_at(deadline):
                await self.slots.acquire()
                asked = loop.time()
                pipe = self.client.pipeline(transaction=False)
                build(pipe)
                if nkeys:
                    pipe.evalsha(batch.SCRIPT_SHA, nkeys, *script_args)
                replies: list[Any] = await pipe.execute(raise_on_error=False)
                if nkeys and isinstance(replies[-1], NoScriptError):
                    # Redis restarted or its scripts were flushed: load it, send it again.
                    await self.client.script_load(batch.SCRIPT)
                    try:
                        replies[-1] = await self.client.evalsha(
                            batch.SCRIPT_SHA, nkeys, *script_args
                        )
                    except ResponseError as exc:  # answered: Redis is up, the call failed
                        replies[-1] = exc
        except FAILURES as exc:
            self.errors += 1
            # Out of time while queued for a connection, or left with too little of it, says
            # nothing about Redis (a burst of calls, a busy event loop): only blame Redis for a
            # call that had at least half its time to get an answer.
            if asked is None or (
                isinstance(exc, TimeoutError) and loop.time() - asked < self._half
            ):
                raise BackendError(
                    f"redis {health.name}: out of time queued for a connection"
                ) from exc
            health.failed()
            raise BackendError(f"redis {health.name}: {type(exc).__name__}: {exc}") from exc
        finally:
            if asked is not None:
                self.slots.release()
        health.succeeded()
        errors = [reply for reply in replies if isinstance(reply, Exception)]
        if errors:
            self.errors += 1
            raise BackendError(f"redis {health.name}: {type(errors[0]).__name__}: {errors[0]}")
        return replies

    async def close(self) -> None:
        """Stop reconnecting and release every connection."""
        await self.health.close()
        await self.client.aclose(close_connection_pool=True)
