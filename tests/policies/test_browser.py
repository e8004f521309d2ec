"""The pure browser decisions: which Host the gateway answers to, which Origin may call it,
which Content-Type may change state."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.browser import (
    OriginVerdict,
    host_allowed,
    host_rules,
    is_json_media_type,
    normalize_origin,
    origin_verdict,
    split_host,
)

RULES = host_rules(["gw.lan", "*.svc.cluster.local", "10.0.0.0/8", "fd00::/8"], "127.0.0.1")


@pytest.mark.parametrize(
    ("host", "local", "allowed"),
    [
        ("localhost", None, True),
        ("LocalHost:8787", None, True),
        ("localhost.", None, True),
        ("app.localhost:3000", None, True),
        ("127.0.0.1:8787", None, True),
        ("127.9.9.9", None, True),
        ("[::1]:8787", None, True),
        ("[::ffff:127.0.0.1]", None, True),
        ("gw.lan:80", None, True),
        ("GW.LAN", None, True),
        ("a.b.svc.cluster.local", None, True),
        ("10.20.30.40:8787", None, True),
        ("[fd12::1]:8787", None, True),
        ("192.168.1.5:8787", "192.168.1.5", True),  # the address the connection arrived on
        ("192.168.1.5:8787", "192.168.1.6", False),
        ("evil.example", None, False),
        ("localhost.evil.example", None, False),
        ("gw.lan.evil.example", None, False),
        ("svc.cluster.local", None, False),  # *.domain is subdomains only
        ("evil-svc.cluster.local", None, False),
        ("11.0.0.1", None, False),
        ("[::2]", None, False),
        ("", None, False),
        ("evil.example:80:80", None, False),
        ("evil.example:x", None, False),
        ("[::1", None, False),
        ("a b", None, False),
        ("localhost@evil.example", None, False),
        (None, None, True),  # no Host at all: never a browser
    ],
)
def test_host_allowed(host: str | None, local: str | None, allowed: bool) -> None:
    """Loopback, the listen host, the local address and listed entries only."""
    assert host_allowed(host, RULES, local) is allowed


def test_bind_all_listen_host_adds_nothing_and_star_allows_any() -> None:
    """Listening on 0.0.0.0 is no Host anyone uses; '*' gives up the check on purpose."""
    assert not host_allowed("0.0.0.0:8787", host_rules([], "0.0.0.0"), None)
    assert host_allowed("myhost:8787", host_rules([], "myhost"), None)
    assert host_allowed("anything.example", host_rules(["*"], "127.0.0.1"), None)


@pytest.mark.parametrize(
    ("origin", "fetch_site", "verdict"),
    [
        (None, None, OriginVerdict.ABSENT),
        (None, "same-origin", OriginVerdict.ABSENT),
        (None, "none", OriginVerdict.ABSENT),
        (None, "cross-site", OriginVerdict.REFUSED),
        ("http://localhost:3000", "same-site", OriginVerdict.SAME_HOST),
        ("http://127.0.0.1:8787", "same-origin", OriginVerdict.SAME_HOST),
        ("https://console.example.com", "cross-site", OriginVerdict.LISTED),
        ("HTTPS://Console.Example.com", "cross-site", OriginVerdict.LISTED),
        ("http://console.example.com", "cross-site", OriginVerdict.REFUSED),  # scheme differs
        ("https://console.example.com:8443", "cross-site", OriginVerdict.REFUSED),
        ("http://evil.example", "cross-site", OriginVerdict.REFUSED),
        ("null", "cross-site", OriginVerdict.REFUSED),
        ("file://", None, OriginVerdict.REFUSED),
        ("chrome-extension://abc", None, OriginVerdict.REFUSED),
        ("http://localhost/path", None, OriginVerdict.REFUSED),
        ("http://user@localhost", None, OriginVerdict.REFUSED),
    ],
)
def test_origin_verdict(origin: str | None, fetch_site: str | None, verdict: OriginVerdict) -> None:
    """Listed origins exactly; our own hosts; nothing else, and no cross-site no-Origin GET."""
    listed = frozenset({"https://console.example.com"})
    assert origin_verdict(origin, fetch_site, RULES, listed, None) is verdict


@pytest.mark.parametrize(
    ("content_type", "ok"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("Application/JSON ;charset=UTF-8", True),
        ("application/vnd.api+json", True),
        ("application/problem+json", True),
        (None, False),
        ("", False),
        ("text/plain", False),
        ("text/plain; application/json", False),
        ("application/x-www-form-urlencoded", False),
        ("multipart/form-data; boundary=x", False),
        ("application/jsonx", False),
        ("application/+json", False),
        ("text/json", False),
        ("application/*+json", False),
    ],
)
def test_json_media_type(content_type: str | None, ok: bool) -> None:
    """application/json with any parameters and application/<token>+json; nothing a page
    can send cross-site without a preflight."""
    assert is_json_media_type(content_type) is ok


@given(st.text(max_size=60))
def test_parsers_never_raise(value: str) -> None:
    """Any header value gets an answer, never an exception."""
    split_host(value)
    normalize_origin(value)
    is_json_media_type(value)
    host_allowed(value, RULES, value)
    origin_verdict(value, value, RULES, frozenset(), None)
