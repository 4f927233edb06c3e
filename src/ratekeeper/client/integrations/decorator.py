"""``@limiter.limit(key=...)`` for framework code: the decorator lives with the Limiter.

Integrations depend on the client, never the reverse; this module keeps the integrations'
import path for the decorator and the :class:`Acquirer` protocol they share.
"""

from ratekeeper.client.decorator import Acquirer, limit

__all__ = ["Acquirer", "limit"]
