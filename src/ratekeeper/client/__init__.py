"""The batch-reporting client: ``Limiter`` decides locally and reports in the background."""

from ratekeeper.client.keystate import Decision
from ratekeeper.client.limiter import Limiter
from ratekeeper.client.state import LimiterStats

__all__ = ["Decision", "Limiter", "LimiterStats"]
