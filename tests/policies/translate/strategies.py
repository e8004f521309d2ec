"""Hypothesis strategies shared by the translation tests: text a JSON parser can produce,
tool names, tool inputs and tool calls."""

from __future__ import annotations

from hypothesis import strategies as st

from tests.policies.translate.streams import Call

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60)
NAME = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,20}", fullmatch=True)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
CALL = st.builds(
    Call,
    id=st.from_regex(r"(toolu|call)_[A-Za-z0-9]{1,24}", fullmatch=True),
    name=NAME,
    input=st.dictionaries(TEXT, JSON_VALUE, max_size=4),
)
