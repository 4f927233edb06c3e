"""The optional in-process cache of fixed-window keys already over their limit.

The reference service's ``LOCAL_CACHE_SIZE_IN_BYTES``: while a key's window lasts, a key known to
be over its limit is answered OVER_LIMIT without asking Redis. Forgetting an entry early only
costs a round trip (Redis still holds the count), so eviction is free to be simple.
"""

from __future__ import annotations

__all__ = ["OverLimitCache"]


class OverLimitCache:
    """At most ``size`` keys, each until its window's end (ns, caller's clock). Single writer."""

    def __init__(self, size: int) -> None:
        self._size = size
        #: key -> end of its window; insertion-ordered, so the first entry is the oldest.
        self._until: dict[str, int] = {}

    def over(self, key: str, now: int) -> bool:
        """Whether ``key`` is known to be over its limit at ``now``."""
        until = self._until.get(key)
        if until is None:
            return False
        if now < until:
            return True
        del self._until[key]
        return False

    def add(self, key: str, until: int, now: int) -> None:
        """Remember ``key`` as over its limit until ``until``."""
        if self._size == 0:
            return
        if key not in self._until and len(self._until) >= self._size:
            for stale in [k for k, end in self._until.items() if end <= now]:
                del self._until[stale]
            if len(self._until) >= self._size:
                del self._until[next(iter(self._until))]
        self._until[key] = until
