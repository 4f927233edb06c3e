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
from typing import Any

from ratekeeper.assigner.settings import AssignerSettings
from ratekeeper.errors import ConfigError

__all__ = ["OPTIONS", "add_arguments", "from_sources"]


#: One row per option: flag name (``unhealthy_after`` is ``--unhealthy-after``), variable
#: without the ``RATEKEEPER_`` prefix, the :class:`AssignerSettings` field, parser, help line.
OPTIONS: tuple[tuple[str, str, str, Callable[[str], Any], str], ...] = (
    ("listen", "ASSIGNER_LISTEN", "listen", str,
     "host:port to serve AssignerService on (port 0 picks one)."),
    ("heartbeat_interval", "HEARTBEAT_INTERVAL", "heartbeat_interval_s", float,
     "Seconds between a member's heartbeats."),
    ("unhealthy_after", "UNHEALTHY_AFTER", "unhealthy_after_s", float,
     "Seconds without a heartbeat after which a member's slices move."),
    ("min_interval", "MIN_INTERVAL", "min_interval_s", float,
     "Least seconds between load rounds (membership changes never wait)."),
    ("load_interval", "LOAD_INTERVAL", "load_interval_s", float,
     "Seconds between rounds for load alone."),
    ("join_batch", "JOIN_BATCH", "join_batch_s", float,
     "Seconds a join waits, so that joins arriving together share one round (None: the "
     "heartbeat interval)."),
    ("grpc_tls_cert", "GRPC_TLS_CERT", "grpc_tls_cert", str,
     "PEM certificate of the listener: serve over TLS only (empty: plaintext)."),
    ("grpc_tls_key", "GRPC_TLS_KEY", "grpc_tls_key", str, "PEM private key of --grpc-tls-cert."),
    ("grpc_tls_client_ca", "GRPC_TLS_CLIENT_CA", "grpc_tls_client_ca", str,
     "PEM CA file: members and clients must present a certificate it signed (mTLS)."),
    ("auth_token_file", "AUTH_TOKEN_FILE", "auth_token_file", str,
     "File holding the shared token every call must carry (the members' --auth-token-file)."),
)  # fmt: skip


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per option; an absent flag leaves the variable or the default in force."""
    defaults = AssignerSettings()
    for name, env, field, _, text in OPTIONS:
        parser.add_argument(
            _flag(name),
            dest=name,
            default=None,
            metavar=name.upper(),
            help=f"{text} [env RATEKEEPER_{env}, default {getattr(defaults, field)!r}]",
        )


def from_sources(flags: Mapping[str, Any], environ: Mapping[str, str]) -> AssignerSettings:
    """Settings from defaults, then ``environ``, then ``flags`` (text values or ``None``)."""
    values: dict[str, Any] = {}
    last = "the assigner's settings"
    for name, env, field, parse, _ in OPTIONS:
        text, source = flags.get(name), _flag(name)
        if text is None:
            text, source = environ.get(f"RATEKEEPER_{env}"), f"RATEKEEPER_{env}"
        if text is None:
            continue
        try:
            values[field] = parse(text)
        except ValueError as exc:
            raise ConfigError(f"cannot parse {text!r}: {exc}", key=source) from None
        last = source
    try:
        return dataclasses.replace(AssignerSettings(), **values)
    except ValueError as exc:
        # the checks span fields (unhealthy_after > heartbeat_interval): name the last one set
        raise ConfigError(str(exc), key=last) from None
