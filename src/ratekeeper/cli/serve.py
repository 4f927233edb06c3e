"""``ratekeeper serve``: run the rate limit service (Envoy RLS, /json, health, metrics)."""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from ratekeeper.cli.running import add_service_parser, log_to_stderr, refuse
from ratekeeper.errors import ConfigError
from ratekeeper.server.app import run
from ratekeeper.server.options import add_arguments, from_sources
from ratekeeper.server.settings import ServerSettings

__all__ = ["DESCRIPTION", "HELP", "add_parser"]

#: The line ``ratekeeper --help`` lists it with.
HELP = "run the rate limit service (Envoy RLS, /json, batch reports, health, metrics)"
#: What ``ratekeeper serve --help`` says it does (the module docstring is for developers).
DESCRIPTION = (
    "Run the rate limit service: Envoy's rate limit API (gRPC ShouldRateLimit, and POST /json), "
    "the batch Report API of ratekeeper clients, /healthcheck, /metrics, /rlconfig and gRPC "
    "health. Policies are envoyproxy/ratelimit YAML files (--config; reloaded when they "
    "change); counters live in memory or in Redis (--backend). It runs alone, or as a member "
    "of a cluster (--join)."
)


def add_parser(subparsers: Any) -> None:
    parser = add_service_parser(subparsers, "serve", HELP, DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    try:
        settings: ServerSettings = from_sources(vars(args), os.environ)
    except ConfigError as exc:
        return refuse("serve", exc)
    log_to_stderr(settings.log_level)
    return asyncio.run(run(settings))
