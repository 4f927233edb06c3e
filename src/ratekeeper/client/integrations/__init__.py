"""Framework glue: a decorator, a pure ASGI middleware and a WSGI middleware.

Each takes a key function (the request to the rate limit key; ``None`` to let a request through
unlimited), answers refused requests with 429, and sends the IETF RateLimit headers
(draft-ietf-httpapi-ratelimit-headers-10) built by :func:`rate_limit_headers`. Per-route
decorators for Starlette and FastAPI, Flask and Django, and a Django middleware, are in the
submodules named after each framework.
"""

from ratekeeper.client.integrations.asgi import RateLimitMiddleware
from ratekeeper.client.integrations.decorator import limit
from ratekeeper.client.integrations.headers import rate_limit_headers
from ratekeeper.client.integrations.wsgi import WsgiRateLimitMiddleware

__all__ = ["RateLimitMiddleware", "WsgiRateLimitMiddleware", "limit", "rate_limit_headers"]
