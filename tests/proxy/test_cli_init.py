"""``sidestep init`` writes a commented, working starter config from the provider keys in the
environment — references to them, never their values — and never overwrites unasked."""

from __future__ import annotations

from pathlib import Path

import yaml  # type: ignore[import-untyped, unused-ignore]  # PyYAML ships no stubs

from proxy.config import parse_config
from proxy.config.starter import starter_config
from tests.proxy.test_cli import clean_env, run_cli

OPENAI_KEY = "sk-proj-init-test-Zq81xkP0aa55"
ANTHROPIC_KEY = "sk-ant-init-test-Lm27dd90bb66"
GROQ_KEY = "gsk_init_test_Yt64cc31ee77"


async def test_init_writes_references_never_key_values(tmp_path: Path) -> None:
    """With three keys set: three live targets reading ``${VAR}``, no key value in the file
    or the output, and the file loads as a valid config."""
    env = clean_env(
        OPENAI_API_KEY=OPENAI_KEY, ANTHROPIC_API_KEY=ANTHROPIC_KEY, GROQ_API_KEY=GROQ_KEY
    )
    code, out, err = await run_cli("init", cwd=tmp_path, env=env)
    assert code == 0, err
    text = (tmp_path / "sidestep.yaml").read_text()
    for key in (OPENAI_KEY, ANTHROPIC_KEY, GROQ_KEY):
        for part in (key, key[-8:], key[:12]):
            assert part not in text and part not in out + err
    assert "${OPENAI_API_KEY}" in text and "${GROQ_API_KEY}" in text
    assert (tmp_path / "sidestep.yaml").stat().st_mode & 0o077 == 0
    assert "targets: anthropic, openai, groq" in out
    environ = {
        "OPENAI_API_KEY": OPENAI_KEY,
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "GROQ_API_KEY": GROQ_KEY,
    }
    config = parse_config(text, source="sidestep.yaml", environ=environ)
    assert [t.id for t in config.targets] == ["anthropic", "openai", "groq"]
    assert config.targets[1].keys[0] is not None
    assert config.targets[1].keys[0].get_secret_value() == OPENAI_KEY
    code, out, err = await run_cli("check", cwd=tmp_path, env=env)
    assert code == 0, err


async def test_init_without_keys_writes_a_template(tmp_path: Path) -> None:
    """No key in the environment: every provider is there, commented out, with a hint."""
    code, out, err = await run_cli("init", cwd=tmp_path, env=clean_env())
    assert code == 0, err
    text = (tmp_path / "sidestep.yaml").read_text()
    assert yaml.safe_load(text)["targets"] is None  # nothing live
    for provider in ("anthropic", "openai", "openrouter", "gemini", "groq", "ollama"):
        assert f"  # - id: {provider}   # " in text
    assert "every target is commented out" in out


async def test_init_never_overwrites_without_force(tmp_path: Path) -> None:
    """An existing file is kept (exit 1, saying --force); ``--force`` replaces it."""
    path = tmp_path / "sidestep.yaml"
    path.write_text("# mine\n")
    env = clean_env(OPENAI_API_KEY=OPENAI_KEY)
    code, out, err = await run_cli("init", cwd=tmp_path, env=env)
    assert code == 1 and "--force" in err and out == ""
    assert path.read_text() == "# mine\n"
    code, _, err = await run_cli("init", "--force", cwd=tmp_path, env=env)
    assert code == 0, err
    assert "${OPENAI_API_KEY}" in path.read_text()


def test_gemini_reads_whichever_variable_is_set() -> None:
    """GOOGLE_API_KEY alone makes the gemini target read ``${GOOGLE_API_KEY}``; a local
    Ollama found on its port is a live target."""
    starter = starter_config({"GOOGLE_API_KEY": "g" * 20}, "http://127.0.0.1:11434/v1")
    assert starter.live == ("gemini", "ollama")
    config = parse_config(starter.text, source="s", environ={"GOOGLE_API_KEY": "g" * 20})
    assert [(t.id, t.base_url) for t in config.targets][1] == (
        "ollama",
        "http://127.0.0.1:11434/v1",
    )
    assert "${GOOGLE_API_KEY}" in starter.text
