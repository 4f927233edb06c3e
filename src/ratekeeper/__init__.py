"""ratekeeper: distributed rate limiting with batch-reporting clients.

The public API is what ``__all__`` lists; everything else is private and may change.
"""

from ratekeeper.client import Decision, Limiter
from ratekeeper.core.limits import Algorithm, Limit, Unit, parse_limit, parse_limits
from ratekeeper.errors import (
    BackendError,
    ClientClosedError,
    ConfigError,
    LimitParseError,
    RatekeeperError,
    RateLimited,
)

__all__ = [
    "Algorithm",
    "BackendError",
    "ClientClosedError",
    "ConfigError",
    "Decision",
    "Limit",
    "LimitParseError",
    "Limiter",
    "RateLimited",
    "RatekeeperError",
    "Unit",
    "parse_limit",
    "parse_limits",
]

__version__ = "0.1.0"
