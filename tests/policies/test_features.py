"""What a request needs of a target, read per protocol (``policies.features``)."""

from __future__ import annotations

from typing import Any

import pytest

from policies.features import read_features
from policies.translate.paths import Wire

IMAGE_CHAT = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
IMAGE_MESSAGES = {"role": "user", "content": [{"type": "image", "source": {"type": "url"}}]}
IMAGE_RESPONSES = {"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}
TOOLS = [{"name": "t"}]
ALL = {"streaming", "tools", "vision"}
STATE = {"responses", "responses_state"}

CASES: list[tuple[Wire, dict[str, Any], bool, set[str]]] = [
    (Wire.CHAT, {"messages": []}, False, {"chat"}),
    (Wire.CHAT, {"messages": [IMAGE_CHAT], "tools": TOOLS}, True, {"chat", *ALL}),
    (Wire.CHAT, {"functions": TOOLS}, False, {"chat", "tools"}),
    (Wire.MESSAGES, {"messages": [IMAGE_MESSAGES], "tools": TOOLS}, True, {"messages", *ALL}),
    (Wire.MESSAGES, {"messages": [IMAGE_CHAT]}, False, {"messages"}),
    (Wire.RESPONSES, {"input": [IMAGE_RESPONSES]}, False, {"responses", "vision"}),
    (Wire.RESPONSES, {"input": "hi", "previous_response_id": "r"}, False, STATE),
    (Wire.RESPONSES, {"input": "hi", "conversation": "c"}, False, STATE),
    (Wire.EMBEDDINGS, {"input": "hi", "tools": TOOLS}, False, {"embeddings"}),
    (Wire.COMPLETIONS, {"prompt": "hi"}, True, {"completions", "streaming"}),
]  # fmt: skip


@pytest.mark.parametrize(("wire", "obj", "stream", "needs"), CASES)
def test_needs(wire: Wire, obj: dict[str, Any], stream: bool, needs: set[str]) -> None:
    """Each protocol's request needs its protocol, streaming, tools, vision and state as
    its own wire format expresses them."""
    assert read_features(wire, obj, stream).needs == needs


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        ({"max_tokens": 64000}, 64000),
        ({"max_completion_tokens": 10, "max_tokens": 20}, 10),
        ({"max_output_tokens": 5}, 5),
        ({"max_tokens": True}, None),
        ({"max_tokens": 0}, None),
        ({"max_tokens": "9"}, None),
        ({}, None),
    ],
)
def test_max_output_tokens(obj: dict[str, Any], expected: int | None) -> None:
    """The output limit a request asks for, whatever the protocol calls it; junk is none."""
    assert read_features(Wire.CHAT, obj, False).max_output_tokens == expected
