"""A subcommand's own flags that a ``RATEKEEPER_*`` variable sets too (those outside the
settings tables of :mod:`ratekeeper.server.options` and :mod:`ratekeeper.assigner.options`)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from ratekeeper.config.flags import ENV_PREFIX

__all__ = ["add_env_flag"]


def add_env_flag(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    flag: str,
    variable: str,
    text: str,
    *,
    default: str | None = None,
    parse: Callable[[str], Any] = str,
) -> None:
    """``flag``, whose default is the variable ``RATEKEEPER_<variable>`` when it is set and not
    empty, else ``default`` (parsed by ``parse``, as the flag's text is); its help line names
    both (``default`` as ``none`` when empty)."""
    env = ENV_PREFIX + variable
    shown = "" if default is None else f", default {default or 'none'}"
    parser.add_argument(
        flag, type=parse, default=os.environ.get(env) or default, help=f"{text} [env {env}{shown}]."
    )
