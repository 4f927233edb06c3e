"""The flags and ``RATEKEEPER_*`` variables of the assigner, and the settings fields they set.

One row per option, as for ``ratekeeper serve`` (:mod:`ratekeeper.server.options`): the flag
``--<name>`` with dashes, its variable, the :class:`AssignerSettings` field and a help line.
Defaults are the settings' own. Precedence, lowest first: default, variable, flag; a bad value
raises :class:`~ratekeeper.errors.ConfigError` naming the flag or variable. A server embedding
the assigner adds the same rows to its own parser.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ratekeeper.assigner.settings import AssignerSettings
from ratekeeper.errors import ConfigError

__all__ = ["OPTIONS", "AssignerOption", "add_arguments", "from_sources"]


@dataclass(frozen=True, slots=True)
class AssignerOption:
    """One flag, its variable and the settings field they set."""

    #: Flag name with underscores (``unhealthy_after`` is ``--unhealthy-after``).
    name: str
    #: Environment variable, without the ``RATEKEEPER_`` prefix.
    env: str
    #: The :class:`AssignerSettings` field.
    field: str
    #: Text to value; raises ``ValueError``.
    parse: Callable[[str], Any]
    #: One line for ``--help``.
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def variable(self) -> str:
        return "RATEKEEPER_" + self.env


OPTIONS: tuple[AssignerOption, ...] = (
    AssignerOption("listen", "ASSIGNER_LISTEN", "listen", str,
                   "host:port to serve AssignerService on (port 0 picks one)."),
    AssignerOption("heartbeat_interval", "HEARTBEAT_INTERVAL", "heartbeat_interval_s", float,
                   "Seconds between a member's heartbeats."),
    AssignerOption("unhealthy_after", "UNHEALTHY_AFTER", "unhealthy_after_s", float,
                   "Seconds without a heartbeat after which a member's slices move."),
    AssignerOption("min_interval", "MIN_INTERVAL", "min_interval_s", float,
                   "Least seconds between load rounds (membership changes never wait)."),
    AssignerOption("load_interval", "LOAD_INTERVAL", "load_interval_s", float,
                   "Seconds between rounds for load alone."),
)  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per option; an absent flag leaves the variable or the default in force."""
    defaults = AssignerSettings()
    for option in OPTIONS:
        parser.add_argument(
            option.flag,
            dest=option.name,
            default=None,
            metavar=option.name.upper(),
            help=f"{option.help} [env {option.variable}, "
            f"default {getattr(defaults, option.field)!r}]",
        )


def from_sources(flags: Mapping[str, Any], environ: Mapping[str, str]) -> AssignerSettings:
    """Settings from defaults, then ``environ``, then ``flags`` (text values or ``None``)."""
    values: dict[str, Any] = {}
    last = "the assigner's settings"
    for option in OPTIONS:
        text, source = flags.get(option.name), option.flag
        if text is None:
            text, source = environ.get(option.variable), option.variable
        if text is None:
            continue
        try:
            values[option.field] = option.parse(text)
        except ValueError as exc:
            raise ConfigError(f"cannot parse {text!r}: {exc}", key=source) from None
        last = source
    try:
        return dataclasses.replace(AssignerSettings(), **values)
    except ValueError as exc:
        # the checks span fields (unhealthy_after > heartbeat_interval): name the last one set
        raise ConfigError(str(exc), key=last) from None
