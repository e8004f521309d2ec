"""What counts as a good 2xx: each endpoint's promise about a successful answer."""

from __future__ import annotations

import gzip

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.answers import AnswerForm, Problem, answer_form, check_body

CHAT = orjson.dumps(
    {"id": "c", "object": "chat.completion", "choices": [], "usage": {"total_tokens": 3}}
)


@pytest.mark.parametrize(
    ("content_type", "stream", "expected"),
    [
        ("text/event-stream", True, (AnswerForm.EVENT_STREAM, None)),
        ("Text/Event-Stream; charset=utf-8", True, (AnswerForm.EVENT_STREAM, None)),
        ("text/html", True, (AnswerForm.BROKEN, Problem.NOT_EVENT_STREAM)),
        ("application/json", True, (AnswerForm.BROKEN, Problem.NOT_EVENT_STREAM)),
        ("", True, (AnswerForm.BROKEN, Problem.NOT_EVENT_STREAM)),
        ("application/json", False, (AnswerForm.JSON, None)),
        ("text/html", False, (AnswerForm.JSON, None)),  # the body decides
        ("text/event-stream", False, (AnswerForm.BROKEN, Problem.UNEXPECTED_EVENT_STREAM)),
    ],
)
def test_answer_form(
    content_type: str, stream: bool, expected: tuple[AnswerForm, Problem | None]
) -> None:
    """A streaming request needs an event stream; a plain one must not get one."""
    assert answer_form(content_type, stream) == expected


@pytest.mark.parametrize(
    ("body", "path", "problem"),
    [
        (CHAT, "/chat/completions", None),
        (b'{"object": "list", "data": []}', "/embeddings", None),
        (b'{"object": "response", "output": [], "error": null}', "/responses", None),
        (b"<html><body>Bad gateway</body></html>", "/chat/completions", Problem.NOT_JSON),
        (gzip.compress(CHAT), "/chat/completions", Problem.NOT_JSON),
        (b'{"id": "c", "choices": [', "/chat/completions", Problem.NOT_JSON),
        (b"", "/chat/completions", Problem.NOT_JSON),
        (b"[1, 2]", "/chat/completions", Problem.NOT_AN_OBJECT),
        (b'{"error": {"message": "overloaded"}}', "/chat/completions", Problem.ERROR_OBJECT),
        (b'{"error": "boom", "choices": []}', "/chat/completions", Problem.ERROR_OBJECT),
        (b'{"id": "c", "choices": null}', "/chat/completions", Problem.MISSING_LIST),
        (b'{"object": "list"}', "/embeddings", Problem.MISSING_LIST),
        (b'{"anything": 1}', "/unknown", None),
    ],
)
def test_check_body(body: bytes, path: str, problem: Problem | None) -> None:
    """Only a JSON object with the endpoint's list and no error keeps the promise."""
    assert check_body(body, path).problem is problem


def test_check_body_hands_back_the_usage() -> None:
    """The usage comes from the one parse the check makes."""
    assert check_body(CHAT, "/chat/completions").usage == {"total_tokens": 3}


@given(st.binary(max_size=200))
def test_check_body_never_raises(body: bytes) -> None:
    """Any bytes at all get a verdict, never an exception."""
    check_body(body, "/chat/completions")
