"""asyncio twins of ratekeeper's public API, name for name."""

from ratekeeper.aio.limiter import Limiter

__all__ = ["Limiter"]
