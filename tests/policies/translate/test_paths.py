"""Which protocol a target is spoken to in, per client protocol (``policies.translate.paths``)."""

from __future__ import annotations

import pytest

from policies.translate.paths import Api, Wire, served, translation_path

ALL = frozenset({"chat", "completions", "embeddings", "responses", "streaming", "tools", "vision"})
NO_RESPONSES = ALL - {"responses"}
C, M, R = Wire.CHAT, Wire.MESSAGES, Wire.RESPONSES

PATHS = [
    (C, Api.OPENAI, ALL, (C,)),
    (C, Api.ANTHROPIC, ALL, (C, M)),
    (M, Api.ANTHROPIC, ALL, (M,)),
    (M, Api.OPENAI, ALL, (M, C)),
    (R, Api.OPENAI, ALL, (R,)),
    (R, Api.OPENAI, NO_RESPONSES, (R, C)),
    (R, Api.ANTHROPIC, ALL, (R, C, M)),
    (Wire.EMBEDDINGS, Api.OPENAI, ALL, (Wire.EMBEDDINGS,)),
]


@pytest.mark.parametrize(("client", "api", "caps", "path"), PATHS)
def test_translation_path(
    client: Wire, api: Api, caps: frozenset[str], path: tuple[Wire, ...]
) -> None:
    """A protocol the target speaks goes natively; any other chat protocol goes through chat."""
    assert translation_path(client, api, caps) == path


@pytest.mark.parametrize("client", [Wire.EMBEDDINGS, Wire.COMPLETIONS])
def test_no_path_to_anthropic_for_non_chat(client: Wire) -> None:
    """Embeddings and legacy completions have no translation to the Messages API."""
    with pytest.raises(ValueError, match="no translation"):
        translation_path(client, Api.ANTHROPIC, ALL)


def test_served_capabilities() -> None:
    """Routing sees the protocols a target serves through translation, and only what its API
    has: an Anthropic target never offers embeddings; stateful Responses only natively."""
    anthropic = served(Api.ANTHROPIC, ALL)
    assert anthropic == {"chat", "messages", "responses", "streaming", "tools", "vision"}
    assert "responses_state" in served(Api.OPENAI, ALL)
    assert "responses_state" not in served(Api.OPENAI, NO_RESPONSES)
    assert "responses" in served(Api.OPENAI, NO_RESPONSES)
    assert served(Api.OPENAI, frozenset({"embeddings"})) == {"embeddings"}
