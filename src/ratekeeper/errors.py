"""The one exception hierarchy of ratekeeper.

::

    RatekeeperError
    ├── LimitParseError        a limit string such as "100/s burst 200" is malformed
    ├── ConfigError            a policy file is invalid (names file, line, key and reason)
    ├── BackendError           a storage backend (Redis) failed or timed out
    ├── RequestError           a request (RPC, /json body) is malformed: INVALID_ARGUMENT / 400
    ├── ForwardError           a cluster member could not get another member's RLS answer
    ├── ClientClosedError      a Limiter was used after close()
    └── RateLimited            a function decorated with @limiter.limit(...) was refused

Hot paths return typed results; these are raised only for misuse or at the edges.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "ClientClosedError",
    "ConfigError",
    "ForwardError",
    "LimitParseError",
    "RateLimited",
    "RatekeeperError",
    "RequestError",
]


class RatekeeperError(Exception):
    """Base class of every error ratekeeper raises."""


class LimitParseError(RatekeeperError, ValueError):
    """A limit specification string could not be parsed."""


class ConfigError(RatekeeperError):
    """A configuration file is invalid.

    ``file``, ``line`` and ``key`` locate the problem where they are known; ``reason`` says what
    is wrong. ``str()`` joins them into one message an operator can act on.
    """

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
    ) -> None:
        self.reason = reason
        self.file = file
        self.line = line
        self.key = key
        super().__init__(self._message())

    def _message(self) -> str:
        place = self.file or ""
        if self.line is not None:
            place = f"{place}:{self.line}" if place else f"line {self.line}"
        located = ": ".join(part for part in (place, self.key or "") if part)
        return f"{located}: {self.reason}" if located else self.reason


class BackendError(RatekeeperError):
    """A storage backend failed or did not answer within its timeout."""


class CoordinationError(RatekeeperError):
    """The coordination service of the assigners (etcd) could not be reached or refused a call."""


class RequestError(RatekeeperError, ValueError):
    """A request is malformed; the message is what the caller is told (gRPC INVALID_ARGUMENT)."""


class ForwardError(RatekeeperError):
    """Descriptors forwarded to their owner (another cluster member) got no usable answer."""


class ClientClosedError(RatekeeperError, RuntimeError):
    """The Limiter was used after it was closed."""


class RateLimited(RatekeeperError):
    """A call guarded by ``@limiter.limit(...)`` was refused; ``decision`` says for how long."""

    def __init__(self, key: object, decision: object) -> None:
        self.key = key
        #: The :class:`ratekeeper.Decision` (``retry_after``, ``remaining``, ``limit``).
        self.decision = decision
        super().__init__(f"rate limited: {key!r}")
