"""The last line of defence for secrets in text that came from outside (upstream error
bodies and headers). Keys never enter our own records; this scrubs what an upstream might
echo back — raw, JSON-escaped (``\\u0073k-…`` for any character, ``\\/``) or
percent-encoded (``%73k-…``), in any mix.

Cost: the raw forms are plain substring checks plus one regex for key-like tokens, as
before. Only text holding a ``\\`` or ``%`` pays one more pass that decodes those escapes;
only when the decoded text holds a secret are the encoded forms replaced, with patterns
compiled once per secret set (so once per config) and cached.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

_KEYLIKE = re.compile(
    rb"(?:sk|rk|pk|gsk|xai|AIza|sk-ant|sk-or)[-_][A-Za-z0-9_\-]{6,}|AIza[0-9A-Za-z_\-]{20,}"
    rb"|(?i:bearer)\s+[A-Za-z0-9_\-.=]{8,}"
)
REDACTED = b"[redacted]"
# When a secret survives the targeted replacement (an escape of an escape), nothing of the
# text is kept: refusing the whole message beats leaking part of a key.
REDACTED_ALL = b"[redacted: the upstream's text quoted a configured secret]"

_ESCAPE = re.compile(
    rb"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})"  # a surrogate pair
    rb"|\\u([0-9a-fA-F]{4})|\\([/\"\\])|%([0-9a-fA-F]{2})"
)


def _unescape(match: re.Match[bytes]) -> bytes:
    high, low, code, short, pct = match.groups()
    if high is not None:
        pair = (int(high, 16) - 0xD800) * 0x400 + (int(low, 16) - 0xDC00) + 0x10000
        return chr(pair).encode()
    if code is not None:
        return chr(int(code, 16)).encode("utf-8", "surrogatepass")
    if short is not None:
        return bytes(short)
    return bytes([int(pct, 16)])


def _decoded(data: bytes) -> bytes | None:
    """``data`` with its JSON and percent escapes decoded, or None when it has none."""
    if b"\\" not in data and b"%" not in data:
        return None
    decoded = _ESCAPE.sub(_unescape, data)
    return None if decoded == data else decoded


_LAYERS = 2  # a JSON escape inside percent-encoding (or the reverse) is still found


def _layers(data: bytes) -> list[bytes]:
    """``data`` decoded once, twice…: empty for text without escapes (the common case)."""
    out: list[bytes] = []
    layer = _decoded(data)
    while layer is not None and len(out) < _LAYERS:
        out.append(layer)
        layer = _decoded(layer)
    return out


def _char_pattern(ch: str) -> bytes:
    """Every single-layer form of one character: raw, ``\\uXXXX`` (either case), a JSON
    short escape, ``%XX`` per UTF-8 byte."""
    raw = ch.encode("utf-8", "surrogateescape")
    forms = [re.escape(raw)]
    code = ord(ch)
    if code <= 0xFFFF:
        forms.append(rb"\\u(?i:" + b"%04x" % code + b")")
    else:
        high, low = 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF)
        forms.append(rb"\\u(?i:" + b"%04x" % high + rb")\\u(?i:" + b"%04x" % low + b")")
    if ch in '/"\\':
        forms.append(re.escape(b"\\" + raw))
    forms.append(b"".join(b"%(?i:" + b"%02x" % byte + b")" for byte in raw))
    return b"(?:" + b"|".join(forms) + b")"


@lru_cache(maxsize=1024)
def _encoded_pattern(secret: bytes) -> re.Pattern[bytes]:
    """One secret in any mix of its raw and escaped character forms."""
    text = secret.decode("utf-8", "surrogateescape")
    return re.compile(b"".join(_char_pattern(ch) for ch in text))


class _Compiled:
    """One secret set, longest first (a secret inside another must not cut it in half),
    with each secret's encoded-form pattern built once."""

    __slots__ = ("patterns", "raw")

    def __init__(self, secrets: tuple[bytes, ...]) -> None:
        self.raw = tuple(sorted({s for s in secrets if s}, key=len, reverse=True))
        self.patterns = {s: _encoded_pattern(s) for s in self.raw}


@lru_cache(maxsize=8)  # one entry per live secret set: a reload makes a new one
def _compiled(secrets: tuple[bytes, ...]) -> _Compiled:
    return _Compiled(secrets)


def _scrub_raw(data: bytes, compiled: _Compiled) -> bytes:
    for secret in compiled.raw:
        if secret in data:
            data = data.replace(secret, REDACTED)
    return _KEYLIKE.sub(REDACTED, data)


def _leaked(decoded: bytes, compiled: _Compiled) -> list[bytes]:
    """The configured secrets and key-like tokens in already-decoded text."""
    found = [s for s in compiled.raw if s in decoded]
    found += [m.group() for m in _KEYLIKE.finditer(decoded)]
    return found


def scrub(data: bytes, secrets: Iterable[bytes] = ()) -> bytes:
    """``data`` with every configured secret and key-like token replaced, in raw, JSON-escaped
    and percent-encoded forms."""
    compiled = _compiled(tuple(secrets))
    data = _scrub_raw(data, compiled)
    layers = _layers(data)
    if not any(_leaked(layer, compiled) for layer in layers):
        return data  # the common case: no escapes, or nothing behind them
    for secret in sorted(_leaked(layers[0], compiled), key=len, reverse=True):
        pattern = compiled.patterns.get(secret) or _encoded_pattern(secret)
        data = pattern.sub(REDACTED, data)
    if any(_leaked(layer, compiled) for layer in _layers(data)):
        return REDACTED_ALL
    return data


def needs_scrub(text: str, secrets: Iterable[bytes] = ()) -> bool:
    """Whether ``scrub_text`` would change ``text`` (a cheap check for the common case)."""
    compiled = _compiled(tuple(secrets))
    raw = text.encode("utf-8", "surrogateescape")
    if any(secret in raw for secret in compiled.raw) or _KEYLIKE.search(raw) is not None:
        return True
    return any(_leaked(layer, compiled) for layer in _layers(raw))


def scrub_text(text: str, secrets: Iterable[bytes] = ()) -> str:
    """``scrub`` for text, e.g. a header value; undecodable bytes (which aiohttp hands over
    surrogate-escaped) pass through unchanged instead of raising."""
    return scrub(text.encode("utf-8", "surrogateescape"), secrets).decode(
        "utf-8", "surrogateescape"
    )
