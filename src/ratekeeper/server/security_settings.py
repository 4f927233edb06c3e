"""The security sections of :class:`~ratekeeper.server.settings.ServerSettings`: TLS on the
listeners, the shared token, and the separate admin listener.

Paths are empty when unset. Each section checks itself when built and raises
:class:`~ratekeeper.errors.ConfigError` naming ``section.field``; files are read only when the
listeners start (or the token when the process is built), so a bad path fails the start with
the file named.
"""

from __future__ import annotations

from dataclasses import dataclass

from ratekeeper.errors import ConfigError
from ratekeeper.transport.tls import ListenerTls, TlsSettings

__all__ = ["AdminSettings", "AuthSettings", "ListenerTlsSettings"]


def _pair(section: str, cert: str, key: str, ca: str, what: str) -> ListenerTls | None:
    if bool(cert) != bool(key):
        missing = "key" if cert else "cert"
        raise ConfigError(
            f"{what} TLS needs a certificate and its key", key=f"{section}.{what}_{missing}"
        )
    if ca and not cert:
        raise ConfigError(
            f"a {what} client CA needs a {what} certificate", key=f"{section}.{what}_cert"
        )
    return ListenerTls(cert, key, ca or None) if cert else None


@dataclass(frozen=True, slots=True)
class ListenerTlsSettings:
    """TLS on the gRPC and HTTP listeners (mTLS with a client CA); empty: plaintext."""

    #: PEM certificate and private key of the gRPC listener.
    grpc_cert: str = ""
    grpc_key: str = ""
    #: PEM CA file: gRPC clients must present a certificate it signed (mTLS).
    grpc_client_ca: str = ""
    #: The same for the HTTP listeners (``/json``, health, metrics, the admin port).
    http_cert: str = ""
    http_key: str = ""
    http_client_ca: str = ""

    def __post_init__(self) -> None:
        self.grpc()
        self.http()

    def grpc(self) -> ListenerTls | None:
        """The gRPC listener's TLS, or ``None``."""
        return _pair("tls", self.grpc_cert, self.grpc_key, self.grpc_client_ca, "grpc")

    def http(self) -> ListenerTls | None:
        """The HTTP listeners' TLS, or ``None``."""
        return _pair("tls", self.http_cert, self.http_key, self.http_client_ca, "http")

    def peer(self) -> TlsSettings | None:
        """How this server opens channels to other members (assigner, hand-off, forwarding):
        TLS trusting the gRPC client CA (one CA signs every member's and client's certificate
        in a cluster), presenting its own certificate; ``None`` when gRPC is plaintext."""
        if not self.grpc_cert:
            return None
        return TlsSettings(ca=self.grpc_client_ca or None, cert=self.grpc_cert, key=self.grpc_key)


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """The optional shared token required on Report, Watch and the admin endpoints."""

    #: File holding the token; empty: no token required.
    token_file: str = ""


@dataclass(frozen=True, slots=True)
class AdminSettings:
    """Where ``/metrics`` and ``/rlconfig`` are served instead of the main HTTP port."""

    #: ``HOST:PORT`` of the admin listener (port 0 picks one); empty: on the main HTTP port.
    listen: str = ""

    def __post_init__(self) -> None:
        self.host_port  # noqa: B018 (checks the text)

    @property
    def host_port(self) -> tuple[str, int] | None:
        """``(host, port)`` of the admin listener, or ``None``."""
        if not self.listen:
            return None
        host, _, port = self.listen.rpartition(":")
        if not port.isdigit() or not host or int(port) > 65535:
            raise ConfigError(f"expected HOST:PORT, got {self.listen!r}", key="admin.listen")
        return host.strip("[]"), int(port)
