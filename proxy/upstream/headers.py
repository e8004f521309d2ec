"""Which headers cross the proxy, in each direction.

Upstream-bound: an allowlist of the client's headers (never its credentials, never hop-by-hop
headers) plus the target's own key and extra headers. Client-bound: the upstream's headers minus
hop-by-hop, framing and encoding headers, which aiohttp sets for the response it writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from pydantic import SecretStr

from policies.translate.paths import Api
from proxy.upstream.scrub import needs_scrub, scrub_text

_COMMON_REQUEST_HEADERS = frozenset(
    {"idempotency-key", "user-agent", "accept", "http-referer", "x-title"}
)
FORWARDED_REQUEST_HEADERS: Mapping[Api, frozenset[str]] = MappingProxyType(
    {
        Api.OPENAI: _COMMON_REQUEST_HEADERS | {"openai-beta"},
        Api.ANTHROPIC: _COMMON_REQUEST_HEADERS | {"anthropic-version", "anthropic-beta"},
    }
)
ANTHROPIC_VERSION = "2023-06-01"
"""Sent to an ``anthropic`` target when the client did not name a version."""

DROPPED_RESPONSE_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "content-encoding",
        "set-cookie",
        "server",
        "date",
        "alt-svc",
    }
)


def upstream_headers(
    client: Mapping[str, str],
    key: SecretStr | None,
    extra: Mapping[str, str],
    api: Api = Api.OPENAI,
) -> dict[str, str]:
    """Headers for the upstream request: the client's headers allowlisted for the target's
    ``api`` (``anthropic-beta`` reaches only an Anthropic target), the target's extras and
    its own key — ``Authorization: Bearer`` for ``openai``, ``x-api-key`` plus an
    ``anthropic-version`` for ``anthropic``. The client's ``Authorization``/``x-api-key``
    never pass, nor does any header the client named in ``Connection`` (hop-by-hop, RFC 9110
    §7.6.1)."""
    hop_by_hop = _connection_listed(client.items())
    allowed = FORWARDED_REQUEST_HEADERS[api]
    out = {
        name: value
        for name, value in client.items()
        if (lower := name.lower()) in allowed and lower not in hop_by_hop
    }
    out.update(extra)
    out["Content-Type"] = "application/json"
    if api is Api.ANTHROPIC:
        if not any(name.lower() == "anthropic-version" for name in out):
            out["anthropic-version"] = ANTHROPIC_VERSION
        if key is not None:
            out["x-api-key"] = key.get_secret_value()
    elif key is not None:
        out["Authorization"] = "Bearer " + key.get_secret_value()
    return out


def _connection_listed(headers: Iterable[tuple[str, str]]) -> frozenset[str]:
    """Lower-cased names listed in every ``Connection`` header of ``headers``."""
    return frozenset(
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
        if token.strip()
    )


def client_headers(
    upstream: Iterable[tuple[str, str]], secrets: Iterable[bytes] = ()
) -> list[tuple[str, str]]:
    """The upstream's response headers that may reach the client: not hop-by-hop (listed
    above or named in the upstream's ``Connection``), not framing or encoding, and with any
    configured secret or key-like token an upstream echoed (e.g. in ``www-authenticate``)
    scrubbed from the values."""
    pairs = list(upstream)
    hop_by_hop = _connection_listed(pairs)
    kept = [
        (k, v)
        for k, v in pairs
        if (name := k.lower()) not in DROPPED_RESPONSE_HEADERS and name not in hop_by_hop
    ]
    secrets = tuple(secrets)
    if not needs_scrub("\n".join(v for _, v in kept), secrets):
        return kept  # the common case: one scan of all values, nothing to replace
    return [(k, scrub_text(v, secrets)) for k, v in kept]
