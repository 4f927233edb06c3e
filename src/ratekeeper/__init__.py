"""ratekeeper: distributed rate limiting with batch-reporting clients.

The public API is what ``__all__`` lists; everything else is private and may change.
"""

from ratekeeper.client import Decision, Limiter
from ratekeeper.client.integrations import RateLimitMiddleware, WsgiRateLimitMiddleware
from ratekeeper.config import PolicyTree, load_config
from ratekeeper.core.limits import Algorithm, Limit, Unit, parse_limit, parse_limits
from ratekeeper.errors import (
    BackendError,
    ClientClosedError,
    ConfigError,
    LimitParseError,
    RatekeeperError,
    RateLimited,
    RequestError,
)
from ratekeeper.transport.tls import TlsSettings
from ratekeeper.version import __version__ as __version__

__all__ = [
    "Algorithm",
    "BackendError",
    "ClientClosedError",
    "ConfigError",
    "Decision",
    "Limit",
    "LimitParseError",
    "Limiter",
    "PolicyTree",
    "RateLimitMiddleware",
    "RateLimited",
    "RatekeeperError",
    "RequestError",
    "TlsSettings",
    "Unit",
    "WsgiRateLimitMiddleware",
    "load_config",
    "parse_limit",
    "parse_limits",
]
