"""Rate-limit header parsing into relative hints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.ratelimit import RateLimitHints, exhausted_until_s, parse_go_duration, parse_hints

WALL_NOW = datetime(2026, 11, 1, 12, 0, 0, tzinfo=UTC).timestamp()


def rfc3339_in(seconds: float) -> str:
    when = datetime.fromtimestamp(WALL_NOW + seconds, tz=UTC)
    return when.isoformat().replace("+00:00", "Z")


def http_date_in(seconds: float) -> str:
    when = datetime.fromtimestamp(WALL_NOW + seconds, tz=UTC)
    return when.strftime("%a, %d %b %Y %H:%M:%S GMT")


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        ("12ms", 0.012),
        ("1s", 1.0),
        ("7.66s", 7.66),
        ("6m0s", 360.0),
        ("1h2m3.5s", 3723.5),
        ("0s", 0.0),
        (" 2s ", 2.0),
        ("1m30s", 90.0),
    ],
)
def test_go_durations(raw: str, seconds: float) -> None:
    """OpenAI's Go-style reset durations parse to seconds."""
    assert parse_go_duration(raw) == pytest.approx(seconds)


@pytest.mark.parametrize("raw", ["1d", "", "s", "1", "-1s", "1.s", "1s garbage", "1us", "abc"])
def test_go_duration_garbage_is_rejected(raw: str) -> None:
    """Units we do not know and stray text yield None instead of a wrong duration."""
    assert parse_go_duration(raw) is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "20"}, 20.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after-ms": "junk", "retry-after": "9"}, 9.0),
        ({"retry-after": http_date_in(90)}, 90.0),
        ({"retry-after": http_date_in(-90)}, 0.0),
        ({"retry-after": "tomorrow-ish"}, None),
        ({"retry-after": "nan"}, None),
        ({"retry-after": "inf"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], expected: float | None) -> None:
    """retry-after-ms wins; retry-after may be seconds or an HTTP-date; junk is ignored."""
    got = parse_hints(headers, WALL_NOW).retry_after_s
    assert got == (None if expected is None else pytest.approx(expected))


def test_openai_headers() -> None:
    """OpenAI's remaining counts and Go-duration resets fill the hints."""
    hints = parse_hints(
        {
            "x-ratelimit-remaining-requests": "59",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-requests": "1s",
            "x-ratelimit-reset-tokens": "6m0s",
        },
        WALL_NOW,
    )
    assert hints == RateLimitHints(None, 1.0, 360.0, 59, 0)


def test_anthropic_headers_take_the_most_exhausted_token_family() -> None:
    """Among token families, the lowest remaining wins and brings its own reset."""
    hints = parse_hints(
        {
            "anthropic-ratelimit-requests-remaining": "10",
            "anthropic-ratelimit-requests-reset": rfc3339_in(5),
            "anthropic-ratelimit-tokens-remaining": "5000",
            "anthropic-ratelimit-tokens-reset": rfc3339_in(20),
            "anthropic-ratelimit-input-tokens-remaining": "0",
            "anthropic-ratelimit-input-tokens-reset": rfc3339_in(42),
            "anthropic-ratelimit-output-tokens-remaining": "800",
            "anthropic-ratelimit-output-tokens-reset": rfc3339_in(7),
        },
        WALL_NOW,
    )
    assert hints.remaining_requests == 10
    assert hints.reset_requests_s == pytest.approx(5)
    assert hints.remaining_tokens == 0
    assert hints.reset_tokens_s == pytest.approx(42)


def test_anthropic_reset_in_the_past_clamps_to_zero() -> None:
    """A reset timestamp already behind wall_now means 'now', never a negative wait."""
    hints = parse_hints({"anthropic-ratelimit-requests-reset": rfc3339_in(-30)}, WALL_NOW)
    assert hints.reset_requests_s == 0.0


def test_anthropic_resets_without_counts_take_the_earliest() -> None:
    """With resets but no remaining counts, the earliest token reset is reported."""
    hints = parse_hints(
        {
            "anthropic-ratelimit-tokens-reset": rfc3339_in(30),
            "anthropic-ratelimit-output-tokens-reset": rfc3339_in(10),
        },
        WALL_NOW,
    )
    assert hints.reset_tokens_s == pytest.approx(10)
    assert hints.remaining_tokens is None


def test_anthropic_unified_reset_is_epoch_seconds() -> None:
    """The unified reset (epoch seconds) becomes a requests reset; 'rejected' means none left."""
    hints = parse_hints(
        {
            "anthropic-ratelimit-unified-status": "rejected",
            "anthropic-ratelimit-unified-reset": str(int(WALL_NOW + 3600)),
        },
        WALL_NOW,
    )
    assert hints.reset_requests_s == pytest.approx(3600)
    assert hints.remaining_requests == 0
    assert exhausted_until_s(hints) == pytest.approx(3600)


def test_unified_allowed_is_not_exhausted() -> None:
    """An 'allowed' unified status reports the reset but no exhaustion."""
    hints = parse_hints(
        {
            "anthropic-ratelimit-unified-status": "allowed",
            "anthropic-ratelimit-unified-reset": str(WALL_NOW + 60),
        },
        WALL_NOW,
    )
    assert hints.remaining_requests is None
    assert exhausted_until_s(hints) is None


def test_openai_names_win_over_anthropic() -> None:
    """When both vocabularies are present, the OpenAI headers are taken."""
    hints = parse_hints(
        {
            "x-ratelimit-remaining-requests": "3",
            "anthropic-ratelimit-requests-remaining": "7",
        },
        WALL_NOW,
    )
    assert hints.remaining_requests == 3


def test_garbage_headers_are_ignored() -> None:
    """Unparseable values leave the corresponding hint unset."""
    hints = parse_hints(
        {
            "x-ratelimit-remaining-requests": "lots",
            "x-ratelimit-reset-tokens": "1d",
            "anthropic-ratelimit-tokens-reset": "yesterday",
            "anthropic-ratelimit-unified-reset": "soon",
            "retry-after": "",
        },
        WALL_NOW,
    )
    assert hints == RateLimitHints()


def test_negative_remaining_clamps_to_zero() -> None:
    """A negative remaining count is treated as exhausted."""
    assert parse_hints({"x-ratelimit-remaining-tokens": "-5"}, WALL_NOW).remaining_tokens == 0


@pytest.mark.parametrize(
    ("hints", "expected"),
    [
        (RateLimitHints(), None),
        (RateLimitHints(remaining_requests=5, reset_requests_s=10.0), None),
        (RateLimitHints(remaining_requests=0, reset_requests_s=10.0), 10.0),
        (
            RateLimitHints(
                remaining_tokens=0, reset_tokens_s=30.0, remaining_requests=2, reset_requests_s=1.0
            ),
            30.0,
        ),
        (
            RateLimitHints(
                remaining_requests=0, reset_requests_s=4.0, remaining_tokens=0, reset_tokens_s=30.0
            ),
            30.0,
        ),
        (RateLimitHints(remaining_requests=0, retry_after_s=8.0), 8.0),
        (RateLimitHints(remaining_requests=0), None),
    ],
)
def test_exhausted_until(hints: RateLimitHints, expected: float | None) -> None:
    """Only a limit at 0 remaining steers the router away, for as long as its reset says."""
    assert exhausted_until_s(hints) == expected


_HEADER_NAMES = [
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-requests",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-remaining",
    "anthropic-ratelimit-output-tokens-reset",
    "anthropic-ratelimit-unified-reset",
    "anthropic-ratelimit-unified-status",
]


_header_values = st.one_of(
    st.text(max_size=40),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["1h2m3.5s", "0s", "12ms", "rejected", "allowed", "Z", "2026-11-01T12:00Z"]),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
)


@settings(max_examples=300, deadline=None)
@given(
    headers=st.dictionaries(st.sampled_from(_HEADER_NAMES), _header_values, max_size=8),
    wall_now=st.floats(min_value=0, max_value=4e9),
)
def test_parse_hints_never_raises_and_never_negative(
    headers: dict[str, str], wall_now: float
) -> None:
    """Any header values parse without raising, and every duration or count is ≥ 0."""
    hints = parse_hints(headers, wall_now)
    for value in (
        hints.retry_after_s,
        hints.reset_requests_s,
        hints.reset_tokens_s,
        hints.remaining_requests,
        hints.remaining_tokens,
    ):
        assert value is None or value >= 0


def test_future_rfc3339_with_offset() -> None:
    """RFC 3339 timestamps with a numeric offset convert correctly."""
    when = datetime.fromtimestamp(WALL_NOW, tz=UTC) + timedelta(seconds=15)
    stamp = when.astimezone(tz=None).isoformat()
    hints = parse_hints({"anthropic-ratelimit-requests-reset": stamp}, WALL_NOW)
    assert hints.reset_requests_s == pytest.approx(15)
