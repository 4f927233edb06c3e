"""Server addresses, checked once where a user gives them (no I/O, no gRPC import).

A wrong address must fail where it is written, not later as a silent fail-open: gRPC accepts
almost any string at channel creation and only reports ``UNAVAILABLE`` per call.
"""

from __future__ import annotations

__all__ = ["check_address"]

#: gRPC name-resolver schemes taken as given (their targets are not ``host:port``).
_SCHEMES = ("unix:", "unix-abstract:", "dns:", "ipv4:", "ipv6:", "vsock:")


def check_address(address: object) -> str:
    """``address`` if it is ``host:port`` (port 1-65535) or a gRPC scheme target, else raise.

    Raises ``ValueError`` naming the address and the expected forms.
    """
    expected = "expected 'host:port' (port 1-65535), '[v6addr]:port' or 'unix:PATH'"
    if not isinstance(address, str):
        raise ValueError(f"a server address is a string, not {address!r}: {expected}")
    if not address or address != address.strip() or any(c.isspace() for c in address):
        raise ValueError(f"server address {address!r} is empty or has spaces: {expected}")
    if address.startswith(_SCHEMES):
        scheme, _, target = address.partition(":")
        if not target.strip("/"):
            raise ValueError(f"server address {address!r} names no {scheme} target: {expected}")
        return address
    host, sep, port = address.rpartition(":")
    if not sep or not host:
        raise ValueError(f"server address {address!r} has no host or no port: {expected}")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"server address {address!r} has an invalid port {port!r}: {expected}")
    if host.startswith("[") != host.endswith("]") or (":" in host and not host.startswith("[")):
        raise ValueError(f"server address {address!r} has a malformed host: {expected}")
    return address
