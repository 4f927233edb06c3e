"""The batch-reporting client: ``Limiter`` decides locally and reports in the background."""

from ratekeeper.client.decide import Decision
from ratekeeper.client.health import ServerHealth
from ratekeeper.client.limiter import Limiter
from ratekeeper.client.stats import LimiterStats

__all__ = ["Decision", "Limiter", "LimiterStats", "ServerHealth"]
