"""The ``state`` section: memory by default, redis with a URL; errors name their path and
never quote the URL (it may hold a password)."""

from __future__ import annotations

import pytest

from proxy.config import Config, ConfigError, parse_config
from proxy.config.state import Backend
from proxy.state.gateway import config_secrets


def parse(text: str) -> Config:
    return parse_config(text, source="sidestep.yaml", environ={})


T0 = "targets:\n  - {id: a, base_url: 'http://x/v1'}\n"


def problems(text: str) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        parse(text)
    return info.value.problems


def test_memory_is_the_default_backend() -> None:
    """Without a ``state`` section nothing is shared and no Redis is needed."""
    config = parse(T0)
    assert config.state.backend is Backend.MEMORY
    assert not config.state.shared


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("{backend: redis}", "state.url: backend redis needs a url (redis://host:6379)"),
        ("{url: 'redis://h:6379'}", "state.url: url is only used with backend: redis"),
        ("{backend: redis, url: 'http://:hunter22@h'}", "state.url: invalid URL (must be"),
        ("{backend: valkey}", "state.backend: Input should be 'memory' or 'redis'"),
        ("{backend: redis, url: 'redis://h', timeout_s: 0}", "state.timeout_s: Input should be"),
        ("{backend: redis, url: 'redis://h', prefix: 'a b'}", "state.prefix: only letters"),
        ("{colour: red}", "state.colour: unknown key"),
    ],
)
def test_a_bad_state_section_names_its_path(section: str, expected: str) -> None:
    """Each mistake is reported as ``state.<key>: message``, never quoting a password."""
    found = problems(T0 + f"state: {section}\n")
    assert any(line.startswith(expected) for line in found), found
    assert not any("hunter22" in line for line in found)


def test_the_redis_password_is_scrubbed_like_any_secret() -> None:
    """A password in state.url is one of the secrets kept out of logs and error text."""
    config = parse(T0 + "state: {backend: redis, url: 'redis://:hunter22@h:6379/0'}\n")
    assert b"hunter22" in config_secrets(config)
    assert config.state.where() == "redis://h:6379"
    assert "hunter22" not in repr(config.state)
