"""Scrubbing what an upstream echoes: every configured secret in every form it may take."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxy.config import Config
from proxy.state.gateway import config_secrets, header_secrets
from proxy.upstream.scrub import REDACTED, REDACTED_ALL, needs_scrub, scrub

KEY = "SCRUBKEY9f8e7d6c5b4a3210"
URL = "https://hooks.example/api/webhooks/123/TOKEN-abcdef0123"
SECRETS = (KEY.encode(), URL.encode())


def encode(text: str, forms: list[int]) -> str:
    """``text`` with character i written raw, as ``\\uXXXX``, upper/lower percent or a JSON
    short escape, by ``forms[i]``."""
    out = []
    for ch, form in zip(text, forms, strict=False):
        code = ord(ch)
        out.append(
            [
                ch,
                f"\\u{code:04x}",
                f"\\u{code:04X}",
                f"%{code:02X}",
                f"%{code:02x}",
                "\\/" if ch == "/" else ch,
            ][form]
        )
    return "".join(out)


@given(
    secret=st.sampled_from([KEY, URL]),
    forms=st.lists(st.integers(0, 5), min_size=60, max_size=60),
    before=st.text(max_size=20),
    after=st.text(max_size=20),
)
def test_any_mix_of_encodings_is_scrubbed(
    secret: str, forms: list[int], before: str, after: str
) -> None:
    """A secret with each character raw, \\u-escaped, \\/-escaped or percent-encoded is cut."""
    data = (before + " " + encode(secret, forms) + " " + after).encode()
    out = scrub(data, SECRETS)
    assert REDACTED in out
    assert needs_scrub(data.decode(), SECRETS)


@pytest.mark.parametrize(
    "data",
    [
        b'{"error": {"message": "caf\\u00e9 100% fine\\n", "type": "x"}}',
        b"plain text, no escapes at all",
        b"%zz and \\q and a trailing backslash \\",
    ],
)
def test_text_without_secrets_is_unchanged(data: bytes) -> None:
    """Escapes alone change nothing."""
    assert scrub(data, SECRETS) == data
    assert not needs_scrub(data.decode(), SECRETS)


def test_an_escape_inside_an_escape_refuses_the_whole_text() -> None:
    """A percent-encoded JSON escape of a secret is found, and nothing of the text is kept."""
    data = b"key %5Cu0053" + KEY[1:].encode()
    assert scrub(data, SECRETS) == REDACTED_ALL


def test_unconfigured_key_like_token_in_json_escapes_is_scrubbed() -> None:
    """A provider key sidestep does not know is still cut when written as \\u escapes."""
    data = b'{"message": "sk\\u002dproj\\u002dABCDEF123456"}'
    assert scrub(data, ()) == b'{"message": "[redacted]"}'


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("api-key", "hdr-0a1b2c3d", ["hdr-0a1b2c3d"]),
        ("x-api-key", "Bearer tok-123456789", ["Bearer tok-123456789", "tok-123456789"]),
        ("X-Auth-Token", "abcd", ["abcd"]),
        ("x-title", "My App", []),  # short and not a credential: not cut out of every message
        ("anthropic-version", "2023-06-01", ["2023-06-01"]),
        ("api-key", "abc", []),
    ],
)
def test_header_secrets(name: str, value: str, expected: list[str]) -> None:
    """Every target header value is a secret, unless too short to be one."""
    assert header_secrets(name, value) == expected


def test_config_secrets_include_headers_and_webhook_paths() -> None:
    """Target headers and the token-bearing path of each webhook URL are scrubbed."""
    spec: dict[str, Any] = {
        "targets": [{"id": "a", "base_url": "http://x", "headers": {"api-key": "hdr-SECRET-1234"}}],
        "notifications": {"webhooks": [{"url": URL}]},
    }
    found = config_secrets(Config.model_validate(spec))
    assert b"hdr-SECRET-1234" in found
    assert URL.encode() in found and b"/api/webhooks/123/TOKEN-abcdef0123" in found


def test_json_echo_of_a_header_secret_is_scrubbed_in_every_form() -> None:
    """An upstream's JSON error quoting a header secret keeps its shape, minus the secret."""
    body = orjson.dumps({"error": {"message": f"api-key: {KEY}"}})
    assert scrub(body, SECRETS) == b'{"error":{"message":"api-key: [redacted]"}}'
