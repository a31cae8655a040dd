"""Where a server listens: whether an address is this host's loopback, which is what decides
whether the console and the API ask callers for a token."""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, without brackets or port) is this host's loopback:
    localhost, any of 127.0.0.0/8, or ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
