"""The Claude Code config the README documents is valid and routes as it says."""

from __future__ import annotations

import re
from pathlib import Path

import yaml  # type: ignore[import-untyped, unused-ignore]  # PyYAML ships no stubs

from policies.translate.paths import Api
from proxy.config import Config

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_claude_code_config() -> None:
    """Anthropic first and native, OpenRouter mapping Claude names, Ollama taking any Claude
    name, with the output caps the text promises."""
    text = README.read_text()
    block = re.search(
        r"<!-- claude-code-config -->\n```yaml\n(.*?)```\n<!-- /claude-code-config -->", text, re.S
    )
    assert block is not None
    env = {"ANTHROPIC_API_KEY": "a", "OPENROUTER_API_KEY": "o"}
    raw = block[1]
    for name, value in env.items():
        raw = raw.replace("${" + name + "}", value)
    config = Config.model_validate(yaml.safe_load(raw))
    anthropic, openrouter, ollama = config.targets
    assert anthropic.api is Api.ANTHROPIC and anthropic.url("/messages").endswith("/v1/messages")
    assert anthropic.priority > openrouter.priority > ollama.priority
    assert openrouter.upstream_model("claude-sonnet-4-5") == "anthropic/claude-sonnet-4.5"
    assert ollama.upstream_model("claude-opus-4-1") == "qwen2.5-coder:14b"
    assert (openrouter.max_output_tokens, ollama.max_output_tokens) == (32000, 8192)
