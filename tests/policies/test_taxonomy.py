"""Error classification and the class → action table."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.taxonomy import (
    Action,
    BreakerEffect,
    ErrorClass,
    Stage,
    UpstreamOutcome,
    action_for,
    classify,
)

E = ErrorClass


def openai_error(
    message: str, type_: str = "invalid_request_error", code: str | None = None
) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}})


def anthropic_error(type_: str, message: str) -> bytes:
    return orjson.dumps(
        {"type": "error", "error": {"type": type_, "message": message}, "request_id": "req_1"}
    )


def gemini_error(code: int, status: str, message: str) -> bytes:
    return orjson.dumps([{"error": {"code": code, "message": message, "status": status}}])


def status(code: int, body: bytes = b"") -> UpstreamOutcome:
    return UpstreamOutcome(Stage.STATUS, status=code, body=body)


CASES = [
    # 429
    ("429 bare", status(429), E.RATE_LIMITED),
    (
        "429 openai rate limit",
        status(
            429,
            openai_error(
                "Rate limit reached for gpt-4o on tokens per min (TPM)",
                "tokens",
                "rate_limit_exceeded",
            ),
        ),
        E.RATE_LIMITED,
    ),
    (
        "429 openai insufficient_quota",
        status(
            429,
            openai_error(
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            ),
        ),
        E.QUOTA_EXHAUSTED,
    ),
    (
        "429 anthropic rate_limit_error",
        status(
            429,
            anthropic_error(
                "rate_limit_error",
                "Number of request tokens has exceeded your per-minute rate limit",
            ),
        ),
        E.RATE_LIMITED,
    ),
    (
        "429 gemini per-minute",
        status(
            429,
            gemini_error(
                429,
                "RESOURCE_EXHAUSTED",
                "You exceeded your current quota, please check your plan "
                "and billing details. See https://ai.google.dev/gemini-api/docs/rate-limits.",
            ),
        ),
        E.RATE_LIMITED,
    ),
    (
        "429 gemini resource exhausted",
        status(
            429,
            gemini_error(
                429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."
            ),
        ),
        E.RATE_LIMITED,
    ),
    (
        "429 plain text credit",
        status(429, b"Out of credits. Top up your account."),
        E.QUOTA_EXHAUSTED,
    ),
    ("429 quota exceeded text", status(429, b"Quota exceeded for this month"), E.QUOTA_EXHAUSTED),
    # 402 / 403 / 401
    ("402", status(402, anthropic_error("billing_error", "Payment required")), E.QUOTA_EXHAUSTED),
    (
        "403 region",
        status(
            403,
            openai_error(
                "Country, region, or territory not supported",
                "request_forbidden",
                "unsupported_country_region_territory",
            ),
        ),
        E.PERMISSION_FAILURE,
    ),
    (
        "403 anthropic permission",
        status(403, anthropic_error("permission_error", "no access")),
        E.PERMISSION_FAILURE,
    ),
    (
        "403 billing",
        status(403, b'{"error":{"message":"Billing hard limit has been reached"}}'),
        E.QUOTA_EXHAUSTED,
    ),
    (
        "401",
        status(401, anthropic_error("authentication_error", "invalid x-api-key")),
        E.AUTH_FAILURE,
    ),
    # overload and server errors
    ("529", status(529, anthropic_error("overloaded_error", "Overloaded")), E.OVERLOADED),
    (
        "503 overloaded",
        status(503, b'{"error":{"message":"The engine is currently overloaded"}}'),
        E.OVERLOADED,
    ),
    ("503 plain", status(503, b"Service Unavailable"), E.TRANSIENT_SERVER_FAILURE),
    ("500", status(500, openai_error("server error", "server_error")), E.TRANSIENT_SERVER_FAILURE),
    ("502", status(502, b"<html>Bad Gateway</html>"), E.TRANSIENT_SERVER_FAILURE),
    ("504", status(504, anthropic_error("timeout_error", "timeout")), E.TRANSIENT_SERVER_FAILURE),
    ("408", status(408), E.TRANSIENT_SERVER_FAILURE),
    ("522 cloudflare", status(522), E.TRANSIENT_SERVER_FAILURE),
    # 404
    (
        "404 model_not_found",
        status(
            404,
            openai_error(
                "The model `gpt-9` does not exist or you do not have access to it.",
                code="model_not_found",
            ),
        ),
        E.MODEL_UNAVAILABLE,
    ),
    ("404 decommissioned", status(404, b"model has been decommissioned"), E.MODEL_UNAVAILABLE),
    ("404 bare url", status(404, b"404 page not found"), E.MODEL_UNAVAILABLE),
    # 400 family
    (
        "400 context code",
        status(
            400,
            openai_error(
                "This model's maximum context length is 8192 tokens.",
                code="context_length_exceeded",
            ),
        ),
        E.CONTEXT_TOO_LONG,
    ),
    (
        "400 anthropic prompt too long",
        status(
            400,
            anthropic_error(
                "invalid_request_error", "prompt is too long: 208000 tokens > 200000 maximum"
            ),
        ),
        E.CONTEXT_TOO_LONG,
    ),
    (
        "400 groq reduce length",
        status(400, openai_error("Please reduce the length of the messages or completion.")),
        E.CONTEXT_TOO_LONG,
    ),
    (
        "400 gemini too many tokens",
        status(
            400,
            gemini_error(
                400, "INVALID_ARGUMENT", "The input token count exceeds the context window"
            ),
        ),
        E.CONTEXT_TOO_LONG,
    ),
    ("413 context", status(413, b"too many tokens in request"), E.CONTEXT_TOO_LONG),
    (
        "413 request_too_large",
        status(
            413,
            anthropic_error(
                "request_too_large", "Request exceeds the maximum allowed number of bytes."
            ),
        ),
        E.INVALID_REQUEST,
    ),
    (
        "400 content filter",
        status(
            400,
            openai_error(
                "The response was filtered due to the prompt triggering Azure OpenAI's content "
                "management policy.",
                code="content_filter",
            ),
        ),
        E.CONTENT_FILTERED,
    ),
    ("400 safety", status(400, b'{"detail":"blocked by safety system"}'), E.CONTENT_FILTERED),
    (
        "400 credit balance",
        status(
            400,
            anthropic_error(
                "invalid_request_error", "Your credit balance is too low to access the API."
            ),
        ),
        E.QUOTA_EXHAUSTED,
    ),
    ("400 plain invalid", status(400, openai_error("messages: field required")), E.INVALID_REQUEST),
    ("409", status(409), E.INVALID_REQUEST),
    ("422", status(422, b'{"detail":[{"loc":["body"],"msg":"bad"}]}'), E.INVALID_REQUEST),
    # stages and leftovers
    ("connect", UpstreamOutcome(Stage.CONNECT), E.TRANSIENT_SERVER_FAILURE),
    ("connect timeout", UpstreamOutcome(Stage.CONNECT, timed_out=True), E.TRANSIENT_SERVER_FAILURE),
    ("first byte", UpstreamOutcome(Stage.FIRST_BYTE, timed_out=True), E.TRANSIENT_SERVER_FAILURE),
    ("stream", UpstreamOutcome(Stage.STREAM, status=200), E.INTERRUPTED_STREAM),
    (
        "stream error frame",
        UpstreamOutcome(
            Stage.STREAM, status=200, body=anthropic_error("overloaded_error", "Overloaded")
        ),
        E.INTERRUPTED_STREAM,
    ),
    ("status none", UpstreamOutcome(Stage.STATUS), E.UNKNOWN),
    ("418", status(418), E.UNKNOWN),
    ("501", status(501), E.UNKNOWN),
    ("301", status(301), E.REDIRECTED),
    ("302", status(302), E.REDIRECTED),
    ("307", status(307), E.REDIRECTED),
    ("308", status(308), E.REDIRECTED),
    ("200 broken promise", status(200, b"<html>"), E.BAD_RESPONSE),
    ("204 broken promise", status(204), E.BAD_RESPONSE),
    ("reset before headers", UpstreamOutcome(Stage.RESET), E.CONNECTION_RESET),
]


@pytest.mark.parametrize(("outcome", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_classify_table(outcome: UpstreamOutcome, expected: ErrorClass) -> None:
    """Each status/body/stage combination maps to its documented class."""
    assert classify(outcome) is expected


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\xff\xfe\x00",
        b"[]",
        b"[1,2]",
        b"null",
        b'"str"',
        b"{}",
        b'{"error":null}',
        b'{"error":["x"]}',
        b'{"error":{"message":{"nested":1}}}',
        b"[" * 5000,
        b'{"error":{"code":true}}',
        b'[{"error":"quota"}]',
        b'{"error":{"code":123456789012345678901234567890}}',
        b'{"error":{"code":1e999}}',
    ],
)
def test_classify_tolerates_odd_bodies(body: bytes) -> None:
    """Malformed, deeply nested or oddly shaped bodies still classify without raising."""
    for code in (400, 403, 429, 503):
        assert isinstance(classify(status(code, body)), ErrorClass)


@settings(max_examples=300, deadline=None)
@given(
    stage=st.sampled_from(Stage),
    code=st.one_of(st.none(), st.integers(min_value=-1000, max_value=1000)),
    body=st.one_of(st.binary(max_size=256), st.text(max_size=128).map(str.encode)),
)
def test_classify_never_raises(stage: Stage, code: int | None, body: bytes) -> None:
    """classify returns a class for any stage, status and bytes."""
    assert isinstance(classify(UpstreamOutcome(stage, status=code, body=body)), ErrorClass)


_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=20)
)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.sampled_from(["error", "message", "type", "code", "status", "detail"]),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(doc=_json, code=st.sampled_from([400, 403, 413, 429, 503]))
def test_classify_never_raises_on_json_shapes(doc: object, code: int) -> None:
    """Arbitrary JSON documents in error-looking shapes never make classify raise."""
    assert isinstance(classify(status(code, orjson.dumps(doc))), ErrorClass)


def test_error_class_values_are_label_safe() -> None:
    """Enum values are short snake_case strings usable as Prometheus label values."""
    for member in (*ErrorClass, *Stage, *BreakerEffect):
        assert member.value == member.name.lower()


N, F = BreakerEffect.NEUTRAL, BreakerEffect.FAILURE

ACTION_CASES = [
    (E.INVALID_REQUEST, Action(False, False, N, False, True, False, False)),
    (E.CONTENT_FILTERED, Action(False, False, N, False, True, False, False)),
    (E.AUTH_FAILURE, Action(False, True, N, False, False, True, True)),
    (E.PERMISSION_FAILURE, Action(False, True, N, False, False, True, False)),
    (E.RATE_LIMITED, Action(False, True, N, True, False, False, False)),
    (E.QUOTA_EXHAUSTED, Action(False, True, N, True, False, False, False)),
    (E.OVERLOADED, Action(True, True, F, True, False, False, False)),
    (E.TRANSIENT_SERVER_FAILURE, Action(True, True, F, True, False, False, False)),
    (E.MODEL_UNAVAILABLE, Action(False, True, N, False, False, False, False)),
    (E.CONTEXT_TOO_LONG, Action(False, True, N, False, False, False, False)),
    (E.INTERRUPTED_STREAM, Action(True, True, F, False, False, False, False)),
    (E.CONNECTION_RESET, Action(True, True, F, True, False, False, False)),
    (E.BAD_RESPONSE, Action(True, True, F, True, False, False, False)),
    (E.REDIRECTED, Action(False, True, F, True, False, False, True)),
    (E.UNKNOWN, Action(False, False, F, False, True, False, False)),
]


@pytest.mark.parametrize(("error_class", "expected"), ACTION_CASES, ids=lambda v: str(v))
def test_action_table(error_class: ErrorClass, expected: Action) -> None:
    """At the status stage every class gets exactly its documented action."""
    assert action_for(error_class, Stage.STATUS) == expected


def test_action_table_covers_every_class() -> None:
    """No error class is missing from the action table."""
    assert {c for c, _ in ACTION_CASES} == set(ErrorClass)
    for error_class in ErrorClass:
        for stage in Stage:
            assert isinstance(action_for(error_class, stage), Action)


def test_first_byte_timeout_fails_over_without_retrying_same() -> None:
    """A target that accepted the connection but stayed silent is not asked again."""
    action = action_for(E.TRANSIENT_SERVER_FAILURE, Stage.FIRST_BYTE)
    assert not action.retry_same
    assert action.failover
    assert action.breaker is F


def test_connect_failure_belongs_to_the_whole_target() -> None:
    """A refused connection marks the whole target and fails over at once, without a retry."""
    action = action_for(E.TRANSIENT_SERVER_FAILURE, Stage.CONNECT)
    assert action.whole_target
    assert not action.retry_same
    assert action.failover


def test_classify_then_act_on_invalid_request_returns_to_client() -> None:
    """A caller's 400 goes straight back to the client without touching the breaker."""
    action = action_for(classify(status(400, openai_error("bad"))), Stage.STATUS)
    assert action.return_to_client
    assert not action.failover
    assert not action.retry_same
    assert action.breaker is N


def test_reset_after_sending_is_retried_on_the_same_target() -> None:
    """A connection lost after the request went out is retried there, not blamed on the host."""
    action = action_for(classify(UpstreamOutcome(Stage.RESET)), Stage.RESET)
    assert action.retry_same
    assert action.failover
    assert not action.whole_target
