"""Which headers cross the proxy, in each direction.

Upstream-bound: an allowlist of the client's headers (never its credentials, never hop-by-hop
headers) plus the target's own key and extra headers. Client-bound: the upstream's headers minus
hop-by-hop, framing and encoding headers, which aiohttp sets for the response it writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import SecretStr

FORWARDED_REQUEST_HEADERS = frozenset(
    {
        "openai-beta",
        "idempotency-key",
        "user-agent",
        "accept",
        "anthropic-version",
        "anthropic-beta",
        "http-referer",
        "x-title",
    }
)

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
    client: Mapping[str, str], key: SecretStr | None, extra: Mapping[str, str]
) -> dict[str, str]:
    """Headers for the upstream request: allowlisted client headers, the target's extras and
    its own bearer key. The client's ``Authorization``/``x-api-key`` never pass."""
    out = {
        name: value for name, value in client.items() if name.lower() in FORWARDED_REQUEST_HEADERS
    }
    out.update(extra)
    out["Content-Type"] = "application/json"
    if key is not None:
        out["Authorization"] = "Bearer " + key.get_secret_value()
    return out


def client_headers(upstream: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The upstream's response headers that may reach the client unchanged."""
    return [(k, v) for k, v in upstream if k.lower() not in DROPPED_RESPONSE_HEADERS]
