"""Policy configuration: envoyproxy/ratelimit YAML and the native spelling, validated once.

:func:`~ratekeeper.load_config` reads files into an immutable :class:`~ratekeeper.PolicyTree`;
the server asks :meth:`~ratekeeper.PolicyTree.match` for the rule of each request descriptor.
"""

from ratekeeper.config.bounded_yaml import LoadBounds
from ratekeeper.config.loader import config_files, default_config_path, load_config
from ratekeeper.config.model import Match, RateLimitRule
from ratekeeper.config.tree import PolicyTree

__all__ = [
    "LoadBounds",
    "Match",
    "PolicyTree",
    "RateLimitRule",
    "config_files",
    "default_config_path",
    "load_config",
]
