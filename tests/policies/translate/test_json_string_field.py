"""A string field decoded out of JSON text that arrives in pieces (a custom tool's input
streamed out of a chat tool call's arguments)."""

from __future__ import annotations

import itertools
import json

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.translate.json_string_field import StringFieldStream


def stream(pieces: list[str], key: str = "input") -> str:
    field = StringFieldStream(key)
    return "".join(field.feed(piece) for piece in pieces)


@st.composite
def split(draw: st.DrawFn, whole: str) -> list[str]:
    cuts = sorted(draw(st.lists(st.integers(0, len(whole)), max_size=8)))
    return [whole[a:b] for a, b in itertools.pairwise([0, *cuts, len(whole)])]


@given(data=st.data(), value=st.text(), ascii_only=st.booleans(), before=st.booleans())
def test_value_survives_any_split(
    data: st.DataObject, value: str, ascii_only: bool, before: bool
) -> None:
    """Whatever the value and however its JSON is split, the pieces decode to the value, with
    escapes and surrogate pairs split across pieces too (as ensure_ascii servers send them)."""
    obj = {"note": 'x"input":"', "input": value} if before else {"input": value, "after": "y"}
    text = json.dumps(obj, ensure_ascii=True) if ascii_only else orjson.dumps(obj).decode()
    assert stream(data.draw(split(text))) == value


@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        (['{"input" : "a\\', 'nb"}'], "a\nb"),
        (['{"input":"\\u00', "e9", '!"}'], "é!"),
        (['{"input":"\\ud83d', "\\ude00", '"}'], "😀"),
        (['{"input":"\\ud83dx"}'], "\ufffdx"),
        (['{"input":"\\ude00"}'], "\ufffd"),
        (['{"input":"\\uZZZZ!"}'], "\ufffd!"),
        (['{"other":"v"}'], ""),
        (['{"input":"done"}', ' trailing "input":"no"'], "done"),
        (["x" * 5000, '"input":"late"'], ""),
    ],
    ids=[
        "split-escape",
        "split-unicode",
        "pair",
        "lone-high",
        "lone-low",
        "bad-hex",
        "absent",
        "after-end",
        "gave-up",
    ],
)
def test_escapes_and_edges(pieces: list[str], expected: str) -> None:
    """Escapes decode across pieces; malformed ones show U+FFFD; nothing after the value or
    past the search limit is taken for it."""
    assert stream(pieces) == expected
