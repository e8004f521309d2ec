"""The last line of defence for secrets in text that came from outside (upstream error
bodies). Keys never enter our own records; this scrubs what an upstream might echo back."""

from __future__ import annotations

import re
from collections.abc import Iterable

_KEYLIKE = re.compile(
    rb"(?:sk|rk|pk|gsk|xai|AIza|sk-ant|sk-or)[-_][A-Za-z0-9_\-]{6,}|AIza[0-9A-Za-z_\-]{20,}"
    rb"|(?i:bearer)\s+[A-Za-z0-9_\-.=]{8,}"
)
REDACTED = b"[redacted]"


def scrub(data: bytes, secrets: Iterable[bytes] = ()) -> bytes:
    """``data`` with every configured secret and key-like token replaced."""
    for secret in secrets:
        if secret and secret in data:
            data = data.replace(secret, REDACTED)
    return _KEYLIKE.sub(REDACTED, data)


def needs_scrub(text: str, secrets: Iterable[bytes] = ()) -> bool:
    """Whether ``scrub_text`` would change ``text`` (a cheap check for the common case)."""
    raw = text.encode("utf-8", "surrogateescape")
    return any(secret and secret in raw for secret in secrets) or _KEYLIKE.search(raw) is not None


def scrub_text(text: str, secrets: Iterable[bytes] = ()) -> str:
    """``scrub`` for text, e.g. a header value; undecodable bytes (which aiohttp hands over
    surrogate-escaped) pass through unchanged instead of raising."""
    return scrub(text.encode("utf-8", "surrogateescape"), secrets).decode(
        "utf-8", "surrogateescape"
    )
