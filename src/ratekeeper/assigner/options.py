"""The flags and ``RATEKEEPER_*`` variables of the assigner, and the settings fields they set.

One row per option, read by :class:`~ratekeeper.config.flags.OptionTable` as ``ratekeeper
serve``'s are (:mod:`ratekeeper.server.options`): the flag ``--<name>`` with dashes, its
variable, the :class:`AssignerSettings` field and a help line. Defaults are the settings' own.
Precedence, lowest first: default, variable, flag; a bad value raises
:class:`~ratekeeper.errors.ConfigError` naming the flag or variable (a check across fields
names the last one set). A server embedding the assigner takes some of these rows too.
"""

from __future__ import annotations

from ratekeeper.assigner.settings import AssignerSettings
from ratekeeper.config.flags import Option, OptionTable

__all__ = ["OPTIONS", "add_arguments", "from_sources"]


#: Every option, in ``--help`` order. Names and variables are what users type: never rename one.
OPTIONS: tuple[Option, ...] = (
    Option("listen", "ASSIGNER_LISTEN", "listen", str,
           "host:port to serve AssignerService on (port 0 picks one)."),
    Option("heartbeat_interval", "HEARTBEAT_INTERVAL", "heartbeat_interval_s", float,
           "Seconds between a member's heartbeats."),
    Option("unhealthy_after", "UNHEALTHY_AFTER", "unhealthy_after_s", float,
           "Seconds without a heartbeat after which a member's slices move."),
    Option("min_interval", "MIN_INTERVAL", "min_interval_s", float,
           "Least seconds between load rounds (membership changes never wait)."),
    Option("load_interval", "LOAD_INTERVAL", "load_interval_s", float,
           "Seconds between rounds for load alone."),
    Option("join_batch", "JOIN_BATCH", "join_batch_s", float,
           "Seconds a join waits, so that joins arriving together share one round (None: the "
           "heartbeat interval)."),
    Option("grpc_tls_cert", "GRPC_TLS_CERT", "grpc_tls_cert", str,
           "PEM certificate of the listener: serve over TLS only (empty: plaintext)."),
    Option("grpc_tls_key", "GRPC_TLS_KEY", "grpc_tls_key", str,
           "PEM private key of --grpc-tls-cert."),
    Option("grpc_tls_client_ca", "GRPC_TLS_CLIENT_CA", "grpc_tls_client_ca", str,
           "PEM CA file: members and clients must present a certificate it signed (mTLS)."),
    Option("auth_token_file", "AUTH_TOKEN_FILE", "auth_token_file", str,
           "File holding the shared token every call must carry (the members' "
           "--auth-token-file)."),
)  # fmt: skip

_TABLE = OptionTable(AssignerSettings, OPTIONS)

add_arguments = _TABLE.add_arguments
from_sources = _TABLE.from_sources
