"""What both middlewares do per request: key it, decide it, and name the header fields."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypedDict, TypeVar

from ratekeeper.client.decide import Decision
from ratekeeper.client.integrations.decorator import Acquirer
from ratekeeper.client.integrations.headers import rate_limit_headers
from ratekeeper.client.policy import Key

__all__ = ["REFUSED_BODY", "Guard", "GuardOptions"]

Request = TypeVar("Request")

#: The body of every 429.
REFUSED_BODY = b"Too Many Requests\n"


class GuardOptions(TypedDict, total=False):
    """The keyword options every middleware takes."""

    #: The policy name in the RateLimit header fields.
    policy_name: str
    #: What one request costs.
    hits: int


class Guard(Generic[Request]):
    """``limiter`` applied per request: each costs ``hits`` under ``key(request)``."""

    def __init__(
        self,
        limiter: Acquirer,
        key: Callable[[Request], Key | None],
        *,
        policy_name: str = "default",
        hits: int = 1,
    ) -> None:
        self.limiter = limiter
        self.key = key
        self.policy_name = policy_name
        self.hits = hits

    def check(self, request: Request) -> tuple[Decision, list[tuple[str, str]]] | None:
        """The decision and its header fields; ``None`` if the request has no key (unlimited)."""
        name = self.key(request)
        if name is None:
            return None
        decision = self.limiter.acquire(name, self.hits)
        return decision, rate_limit_headers(decision, self.policy_name)
