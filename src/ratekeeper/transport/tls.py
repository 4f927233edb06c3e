"""Transport security: TLS (and mTLS) for gRPC channels and listeners, and the shared token.

Clients describe what they trust and who they are with :class:`TlsSettings`; listeners with
:class:`ListenerTls`. Both read their PEM files when credentials are made (at channel open or
listener start), so a missing or unreadable file fails there, with :class:`TlsError` naming it,
never later as a silent plaintext fallback.

The optional shared token travels as gRPC metadata ``authorization: Bearer <token>`` (and the
HTTP header of the same name); :func:`bearer` writes it and :func:`token_matches` checks it in
constant time.
"""

from __future__ import annotations

import hmac
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc

from ratekeeper.errors import ConfigError

__all__ = [
    "AUTHORIZATION",
    "ListenerTls",
    "TlsError",
    "TlsSettings",
    "bearer",
    "listener_tls",
    "read_token",
    "token_matches",
]

#: The metadata key (gRPC) and header (HTTP) the shared token travels in.
AUTHORIZATION = "authorization"
_BEARER = "Bearer "


class TlsError(ConfigError):
    """A certificate, key or token file cannot be read; the message names it."""


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read {what} {path!r}: {exc.strerror or exc}") from None


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """How a client opens a TLS channel: whom it trusts, and (mTLS) who it is.

    ``ca``: PEM file of the CAs that sign servers' certificates (``None``: the system roots);
    ``cert`` and ``key``: this client's certificate and private key, for servers that require
    client certificates (both or neither); ``server_name``: the name checked against the
    server's certificate instead of the address's host (for addresses given as IPs).
    """

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ConfigError("a client certificate needs its key, and a key its certificate")

    def credentials(self) -> grpc.ChannelCredentials:
        """gRPC channel credentials from the files (read now); raises :class:`TlsError`."""
        root = _read(self.ca, "CA file") if self.ca else None
        cert = _read(self.cert, "certificate") if self.cert else None
        key = _read(self.key, "private key") if self.key else None
        return grpc.ssl_channel_credentials(root, key, cert)

    def options(self) -> list[tuple[str, str]]:
        """Channel arguments the settings imply (the name to verify)."""
        if self.server_name is None:
            return []
        return [("grpc.ssl_target_name_override", self.server_name)]


@dataclass(frozen=True, slots=True)
class ListenerTls:
    """A listener's certificate and key, and (mTLS) the CA its clients' certificates must chain
    to: with ``client_ca`` set, a client without a certificate it signed is refused."""

    cert: str
    key: str
    client_ca: str | None = None

    def grpc_credentials(self) -> grpc.ServerCredentials:
        """gRPC server credentials (files read now); raises :class:`TlsError`."""
        pair = (_read(self.key, "private key"), _read(self.cert, "certificate"))
        ca = _read(self.client_ca, "client CA file") if self.client_ca else None
        return grpc.ssl_server_credentials(
            [pair], root_certificates=ca, require_client_auth=bool(ca)
        )

    def peer(self, ca: str | None = None) -> TlsSettings:
        """How the process listening with this TLS opens channels to its peers (the assigner,
        other members): presenting its own certificate, trusting ``ca`` (default: the client
        CA, as one CA signs every member's and client's certificate in a cluster)."""
        return TlsSettings(ca=ca or self.client_ca, cert=self.cert, key=self.key)

    def ssl_context(self) -> ssl.SSLContext:
        """An ``ssl`` server context (for the HTTP listener); raises :class:`TlsError`."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.cert, self.key)
            if self.client_ca:
                context.load_verify_locations(self.client_ca)
                context.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError) as exc:
            files = f"{self.cert!r}, {self.key!r}" + (
                f", {self.client_ca!r}" if self.client_ca else ""
            )
            raise TlsError(f"cannot load TLS files {files}: {exc}") from None
        return context


def listener_tls(cert: str, key: str, client_ca: str, *, name: str) -> ListenerTls | None:
    """A listener's TLS from its paths (empty: unset), ``None`` when no certificate is named.

    Raises :class:`~ratekeeper.errors.ConfigError` keyed ``<name>_cert`` or ``<name>_key``
    (``name`` as ``tls.grpc``) for a certificate without its key, a key without its
    certificate, or a client CA without a certificate. Files are read later, at bind."""
    what = name.rpartition(".")[2]
    if bool(cert) != bool(key):
        missing = "key" if cert else "cert"
        raise ConfigError(f"{what} TLS needs a certificate and its key", key=f"{name}_{missing}")
    if client_ca and not cert:
        raise ConfigError(f"a {what} client CA needs a {what} certificate", key=f"{name}_cert")
    return ListenerTls(cert, key, client_ca or None) if cert else None


def read_token(path: str) -> str:
    """The shared token in ``path`` (surrounding whitespace dropped); raises :class:`TlsError`
    for an unreadable or empty file."""
    token = _read(path, "token file").decode("utf-8", "replace").strip()
    if not token:
        raise TlsError(f"token file {path!r} is empty")
    return token


def bearer(token: str) -> str:
    """The ``authorization`` value carrying ``token``."""
    return _BEARER + token


def token_matches(value: str | bytes | None, token: str) -> bool:
    """Whether an ``authorization`` value carries ``token`` (constant time)."""
    if value is None:
        return False
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return hmac.compare_digest(value.encode(), bearer(token).encode())
