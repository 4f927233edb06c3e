"""What both middlewares do per request: key it, decide it, and name the header fields.

A middleware also skips exempt routes: ``exempt=["/healthz", "/static/*"]`` lists request paths,
each matched whole, ``*`` matching any run of characters (``/static/*`` covers
``/static/a/b.css``; ``/static`` alone only itself). An exempt request is neither counted nor
given headers, as a request whose key is ``None``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Generic, TypedDict, TypeVar

from ratekeeper.client.decide import Decision
from ratekeeper.client.integrations.decorator import Acquirer
from ratekeeper.client.integrations.headers import rate_limit_headers
from ratekeeper.client.policy import Key

__all__ = ["REFUSED_BODY", "ExemptPaths", "Guard", "GuardOptions", "domain_of"]

#: The request a guard keys: an ASGI scope, a WSGI environ, a framework's request object.
Request = TypeVar("Request")

#: The body of every 429.
REFUSED_BODY = b"Too Many Requests\n"


def domain_of(limiter: Acquirer) -> str:
    """The limiter's rate limit domain, the default policy name (``"default"`` if it has none)."""
    domain = getattr(limiter, "domain", None)
    return domain if isinstance(domain, str) and domain else "default"


class GuardOptions(TypedDict, total=False):
    """The keyword options every middleware takes."""

    #: The policy name in the RateLimit header fields (default: the limiter's domain).
    policy_name: str | None
    #: What one request costs.
    hits: int


class ExemptPaths:
    """Whether a request path is exempt: one compiled pattern for every path listed."""

    def __init__(self, paths: Iterable[str] = ()) -> None:
        """``paths``: each matched whole, ``*`` matching any run of characters."""
        if isinstance(paths, str):  # one path, not its characters
            paths = (paths,)
        patterns = [".*".join(map(re.escape, path.split("*"))) for path in paths]
        self._pattern = re.compile("|".join(patterns)) if patterns else None

    def __call__(self, path: str) -> bool:
        """Whether ``path`` is one of the exempt paths."""
        return self._pattern is not None and self._pattern.fullmatch(path) is not None


class Guard(Generic[Request]):
    """``limiter`` applied per request: each costs ``hits`` under ``key(request)``."""

    def __init__(
        self,
        limiter: Acquirer,
        key: Callable[[Request], Key | None],
        *,
        policy_name: str | None = None,
        hits: int = 1,
    ) -> None:
        self.limiter = limiter
        self.key = key
        self.policy_name = domain_of(limiter) if policy_name is None else policy_name
        self.hits = hits

    def check(self, request: Request) -> tuple[Decision, list[tuple[str, str]]] | None:
        """The decision and its header fields; ``None`` if the request has no key (unlimited)."""
        name = self.key(request)
        if name is None:
            return None
        decision = self.limiter.acquire(name, self.hits)
        return decision, rate_limit_headers(decision, self.policy_name)

    def verdict(self, request: Request) -> tuple[Decision | None, list[tuple[str, str]]]:
        """``(refused, headers)``: the decision if ``request`` is refused (``None`` if it may
        go on) and the header fields its answer carries (none for a request with no key)."""
        checked = self.check(request)
        if checked is None:
            return None, []
        decision, headers = checked
        return (None if decision.allowed else decision), headers
