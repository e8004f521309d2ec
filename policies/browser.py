"""What a web browser may ask of the gateway: the Host, Origin and Content-Type decisions.

The gateway holds provider keys and moves git branches, and it listens where any page in the
user's browser can reach it. Three browser behaviours are the attack surface:

- **DNS rebinding**: a page on ``evil.example`` re-resolves its own name to 127.0.0.1, and its
  requests (same-origin to the browser) reach the gateway carrying ``Host: evil.example``.
  ``host_allowed`` refuses every Host that is not loopback, the connection's own address, or
  an operator-listed name. An IP-literal Host cannot come from a rebinding page, which is why
  the address the connection arrived on is always accepted (Kubernetes probes, Prometheus).
- **Cross-site requests**: a page may POST to any URL without a preflight as long as the body
  is a form or ``text/plain``. The browser then says where it came from (``Origin``,
  ``Sec-Fetch-Site``): ``origin_verdict`` refuses foreign origins unless listed, and
  ``is_json_media_type`` refuses every state-changing request whose body a page could send
  without a preflight.
- **Reading answers**: only a listed origin ever gets CORS headers, and only its own.

Pure functions over strings and frozen records; the middleware in ``proxy.http.browser_guard``
applies them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ANY_HOST = "*"
WILDCARD_ADDRESSES = frozenset({"0.0.0.0", "::", ""})  # bind-all: not a name a client uses
STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_HOST_NAME = re.compile(r"[a-z0-9._-]+")
_TOKEN = re.compile(r"[a-z0-9!#$&^_.-]+")


class OriginVerdict(Enum):
    """What the request's ``Origin`` (and ``Sec-Fetch-Site``) say about who sent it."""

    ABSENT = "absent"  # no Origin: not a cross-site browser request (curl, SDKs, same-origin GET)
    SAME_HOST = "same_host"  # the Origin's host is one the gateway answers to
    LISTED = "listed"  # in server.cors_origins: allowed, and gets CORS headers
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class HostRules:
    """The names a request's ``Host`` may carry, besides loopback and the local address.

    ``names`` exact host names, ``suffixes`` the ``*.example.com`` entries (kept as
    ``.example.com``), ``networks`` the IP and CIDR entries, ``any_host`` the ``*`` entry."""

    names: frozenset[str] = frozenset()
    suffixes: tuple[str, ...] = ()
    networks: tuple[IPNetwork, ...] = ()
    any_host: bool = False


def host_rules(entries: Iterable[str], listen_host: str) -> HostRules:
    """Rules from validated ``server.allowed_hosts`` entries plus the configured listen host
    (a bind-all address adds nothing: it is not a name any client connects to)."""
    names: set[str] = set()
    suffixes: list[str] = []
    networks: list[IPNetwork] = []
    any_host = False
    listen = listen_host.strip("[]").lower()
    for entry in (*entries, *(() if listen in WILDCARD_ADDRESSES else (listen,))):
        entry = entry.lower().rstrip(".")
        if entry == ANY_HOST:
            any_host = True
        elif entry.startswith("*."):
            suffixes.append(entry[1:])
        elif (network := _network(entry)) is not None:
            networks.append(network)
        else:
            names.add(entry)
    return HostRules(frozenset(names), tuple(suffixes), tuple(networks), any_host)


def _network(entry: str) -> IPNetwork | None:
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return None


def split_host(authority: str) -> str | None:
    """The lower-case host of a ``Host`` header or an origin's authority, without port,
    brackets or a trailing dot; ``None`` when it is malformed."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        host, sep, rest = authority[1:].partition("]")
        if not sep or (rest and not _is_port(rest)):
            return None
        return host or None
    host, _, port = authority.partition(":") if authority.count(":") == 1 else (authority, "", "")
    if (port and not port.isdigit()) or ":" in host:
        return None
    host = host.rstrip(".")
    return host if _HOST_NAME.fullmatch(host) else None


def _is_port(rest: str) -> bool:
    return rest.startswith(":") and rest[1:].isdigit()


@lru_cache(maxsize=1024)  # a few distinct Hosts per deployment; a miss costs microseconds
def host_allowed(authority: str | None, rules: HostRules, local_address: str | None) -> bool:
    """Whether a request with this ``Host`` may be answered. No Host at all is allowed:
    browsers always send one, so its absence is never a browser's request."""
    if authority is None:
        return True
    host = split_host(authority)
    if host is None:
        return False
    if rules.any_host or host == "localhost" or host.endswith(".localhost"):
        return True
    address = _address(host)
    if address is None:
        return host in rules.names or host.endswith(rules.suffixes)
    return (
        _is_loopback(address)
        or address == _address(local_address or "")
        or any(address in network for network in rules.networks)
    )


def _address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return None


def _is_loopback(address: IPAddress) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    return bool((mapped or address).is_loopback)


def normalize_origin(origin: str) -> str | None:
    """``scheme://host[:port]`` in lower case, or ``None`` when it is not such an origin
    (a path, credentials, ``null``, an opaque scheme)."""
    scheme, sep, authority = origin.strip().lower().partition("://")
    if not sep or scheme not in ("http", "https") or not authority:
        return None
    if any(c in authority for c in "/?#@") or split_host(authority) is None:
        return None
    return f"{scheme}://{authority}"


def origin_verdict(
    origin: str | None,
    fetch_site: str | None,
    rules: HostRules,
    cors_origins: frozenset[str],
    local_address: str | None,
) -> OriginVerdict:
    """Who sent the request, from its ``Origin`` and ``Sec-Fetch-Site`` headers.

    A listed origin is allowed; an origin whose host the gateway answers to is allowed
    (a page the gateway served, or a local tool); any other origin, ``null`` included, is
    refused. Without an Origin, a ``Sec-Fetch-Site: cross-site`` request (an ``<img>`` or a
    link from another site) is refused too: browsers omit Origin on such GETs."""
    if origin is None:
        return OriginVerdict.REFUSED if fetch_site == "cross-site" else OriginVerdict.ABSENT
    normalized = normalize_origin(origin)
    if normalized is None:
        return OriginVerdict.REFUSED
    if normalized in cors_origins:
        return OriginVerdict.LISTED
    authority = normalized.partition("://")[2]
    if host_allowed(authority, rules, local_address):
        return OriginVerdict.SAME_HOST
    return OriginVerdict.REFUSED


def is_json_media_type(content_type: str | None) -> bool:
    """Whether a ``Content-Type`` names JSON: ``application/json`` or ``application/*+json``,
    any parameters allowed. No browser sends either cross-site without a CORS preflight."""
    if content_type is None:
        return False
    media = content_type.partition(";")[0].strip().lower()
    if media == "application/json":
        return True
    kind, _, subtype = media.partition("/")
    return (
        kind == "application"
        and subtype.endswith("+json")
        and _TOKEN.fullmatch(subtype[: -len("+json")]) is not None
    )
