"""Where a client on this machine reaches a gateway bound to a host and port."""

from __future__ import annotations

_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def client_base_url(host: str, port: int) -> str:
    """The base URL a client on this machine uses for a server bound to ``host:port``: a
    wildcard bind is reached through loopback, an IPv6 literal goes in brackets."""
    host = _WILDCARD_HOSTS.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/v1"
