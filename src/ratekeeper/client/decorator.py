"""``@limiter.limit(key=...)``: refuse calls to a function past its rate limit.

The key is a constant or a function of the call's arguments. A refused call raises
:class:`~ratekeeper.errors.RateLimited` carrying the decision (``retry_after`` and so on); the
wrapped function is not called. Coroutine functions stay coroutine functions.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, ParamSpec, Protocol, TypeVar

from ratekeeper.client.decide import Decision
from ratekeeper.client.policy import Key
from ratekeeper.errors import RateLimited

__all__ = ["Acquirer", "limit"]

P = ParamSpec("P")
R = TypeVar("R")


class Acquirer(Protocol):
    """What the integrations need from a Limiter (either twin)."""

    def acquire(self, key: Key, hits: int = 1) -> Decision: ...


def limit(
    limiter: Acquirer, key: Key | Callable[..., Key], hits: int = 1
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A decorator admitting each call through ``limiter`` under ``key`` (see the module doc)."""
    key_of: Callable[..., Key] = key if callable(key) else (lambda *a, **k: key)

    def check(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        name = key_of(*args, **kwargs)
        decision = limiter.acquire(name, hits)
        if not decision.allowed:
            raise RateLimited(name, decision)

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def guarded_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                check(args, kwargs)
                return await func(*args, **kwargs)

            return guarded_async  # type: ignore[return-value]

        @functools.wraps(func)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            check(args, kwargs)
            return func(*args, **kwargs)

        return guarded

    return decorate
