"""Run a coroutine to completion without an event loop.

The report logic is ``async`` because a real store may await the network; the in-memory store
never suspends, so the model steps the coroutine once and takes its result. A coroutine that
does suspend would need real I/O, which the model forbids: that is an error, not a wait.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["run_sync"]

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """The result of ``coro``, which must finish without suspending."""
    try:
        coro.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coro.close()
    raise RuntimeError("a model coroutine suspended: it awaited real I/O")
