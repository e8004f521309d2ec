"""The config package: YAML → validated ``Config``, env expansion, zero-config, secrets."""

from __future__ import annotations

import os
import textwrap
import traceback
from pathlib import Path

import pytest
from pydantic import ValidationError

from policies.settings import AdmissionSettings, BreakerSettings, RoutingSettings
from proxy.config import (
    Capability,
    Config,
    ConfigError,
    Target,
    config_from_env,
    describe_targets,
    load_config,
    mask_secret,
    ollama_base_url,
    parse_config,
)

SECRET = "sk-test-SECRET-9f8e7d6c5b4a"
MINIMAL = """\
targets:
  - id: local
    base_url: http://localhost:11434/v1
"""


def parse(text: str, **environ: str) -> Config:
    return parse_config(textwrap.dedent(text), source="sidestep.yaml", environ=environ)


def problems(text: str, **environ: str) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as info:
        parse(text, **environ)
    return info.value.problems


def target(**fields: object) -> Target:
    return Target.model_validate({"id": "t", "base_url": "http://x", **fields})


# --- loading -------------------------------------------------------------------------------


def test_minimal_file_loads(tmp_path: Path) -> None:
    """A file with one target and nothing else loads, and remembers where it came from."""
    path = tmp_path / "sidestep.yaml"
    path.write_text(MINIMAL)
    config = load_config(path)
    assert [t.id for t in config.targets] == ["local"]
    assert config.source == str(path)


def test_defaults_without_sections() -> None:
    """With no sections but targets, every section takes its documented defaults."""
    config = parse(MINIMAL)
    assert (config.listen.host, config.listen.port) == ("127.0.0.1", 8787)
    assert config.auth.client_keys == () and not config.auth.required
    assert config.limits.max_body_bytes == 32 * 1024 * 1024
    streams = config.streams
    assert (streams.idle_timeout_s, streams.first_byte_timeout_s) == (60, 30)
    assert (streams.connect_timeout_s, streams.resume, streams.max_resumes) == (10, True, 2)
    assert streams.provenance_comment is False
    assert config.admin.token is None
    assert config.routing == RoutingSettings()
    assert config.breaker == BreakerSettings()
    assert config.admission == AdmissionSettings()


def test_target_defaults() -> None:
    """A target with only id and base_url serves any model, keyless, with all capabilities."""
    t = parse(MINIMAL).targets[0]
    assert t.models == ("*",) and t.serves_any
    assert t.keys == (None,)
    assert (t.priority, t.enabled, t.prefill, t.context_window) == (0, True, False, None)
    assert t.capabilities == tuple(Capability)
    assert t.headers == {}
    assert (t.limits.rpm, t.limits.tpm, t.limits.max_concurrency) == (None, None, None)
    assert (t.timeouts.connect_s, t.timeouts.first_byte_s, t.timeouts.idle_s) == (None,) * 3


def test_base_url_trailing_slash_is_stripped() -> None:
    """base_url is stored without its trailing slash so paths can be appended."""
    assert target(base_url="https://api.openai.com/v1/").base_url == "https://api.openai.com/v1"


def test_config_is_frozen() -> None:
    """A Config snapshot cannot be changed in place; reload swaps it whole."""
    config = parse(MINIMAL)
    with pytest.raises(ValidationError):
        # mypy sees the frozen model only with the pydantic plugin, hence `unused-ignore`.
        config.listen = config.listen  # type: ignore[misc, unused-ignore]


def test_full_target_parses() -> None:
    """Every documented target key is accepted and lands on the model."""
    config = parse(
        """\
        targets:
          - id: groq_1
            base_url: https://api.groq.com/openai/v1
            api_keys: [k1-abcdefgh, k2-abcdefgh]
            models: {fast: llama-3.1-8b-instant}
            priority: 10.5
            enabled: false
            limits: {rpm: 30, tpm: 6000, max_concurrency: 4}
            capabilities: [chat, streaming]
            context_window: 131072
            prefill: true
            headers: {HTTP-Referer: https://example.org}
            timeouts: {connect_s: 5, first_byte_s: 20, idle_s: 45}
        """
    )
    t = config.targets[0]
    assert [k.get_secret_value() for k in t.keys if k] == ["k1-abcdefgh", "k2-abcdefgh"]
    assert t.upstream_model("fast") == "llama-3.1-8b-instant"
    assert (t.priority, t.enabled, t.prefill, t.context_window) == (10.5, False, True, 131072)
    assert (t.limits.rpm, t.limits.tpm, t.limits.max_concurrency) == (30, 6000, 4)
    assert t.capabilities == (Capability.CHAT, Capability.STREAMING)
    assert t.headers == {"HTTP-Referer": "https://example.org"}
    assert (t.timeouts.connect_s, t.timeouts.first_byte_s, t.timeouts.idle_s) == (5, 20, 45)


# --- validation errors name their path -------------------------------------------------------

T0 = "targets:\n  - id: a\n    base_url: http://x\n"

ERROR_CASES = {
    "bad url": (
        "targets:\n  - {id: a, base_url: 'ftp://x'}\n",
        "targets[0].base_url: invalid URL (must be http:// or https://)",
    ),
    "url without host": (
        "targets:\n  - {id: a, base_url: 'https://'}\n",
        "targets[0].base_url: invalid URL (must be http:// or https://)",
    ),
    "credentials in url": (
        "targets:\n  - {id: a, base_url: 'https://u:p@x'}\n",
        "targets[0].base_url: must not contain credentials; use api_key or headers",
    ),
    "bad id": (
        "targets:\n  - {id: Open AI, base_url: 'http://x'}\n",
        "targets[0].id: must be 1 to 64 characters from a-z, 0-9, '_' and '-'",
    ),
    "id too long": (
        f"targets:\n  - {{id: {'a' * 65}, base_url: 'http://x'}}\n",
        "targets[0].id: must be 1 to 64 characters from a-z, 0-9, '_' and '-'",
    ),
    "id not a string": (
        "targets:\n  - {id: 7, base_url: 'http://x'}\n",
        "targets[0].id: Input should be a valid string",
    ),
    "duplicate id": (
        "targets:\n  - {id: a, base_url: 'http://x'}\n  - {id: b, base_url: 'http://x'}\n"
        "  - {id: a, base_url: 'http://y'}\n",
        "targets[2].id: duplicate target id (already used by targets[0])",
    ),
    "unknown top-level key": (T0 + "colour: red\n", "colour: unknown key"),
    "unknown target key": (T0 + "    colour: red\n", "targets[0].colour: unknown key"),
    "unknown section key": (T0 + "streams: {idle_s: 3}\n", "streams.idle_s: unknown key"),
    "bad port": (
        T0 + "listen: {port: 70000}\n",
        "listen.port: Input should be less than or equal to 65535",
    ),
    "api_key and api_keys": (
        T0 + "    api_key: k1-abcdefgh\n    api_keys: [k2-abcdefgh]\n",
        "targets[0].api_keys: api_key and api_keys are mutually exclusive; use one of them",
    ),
    "empty api_keys": (
        T0 + "    api_keys: []\n",
        "targets[0].api_keys: must list at least one key (or omit it)",
    ),
    "repeated api_keys": (
        T0 + "    api_keys: [k1-abcdefgh, k2-abcdefgh, k1-abcdefgh]\n",
        "targets[0].api_keys[2]: key listed twice",
    ),
    "negative rpm": (
        T0 + "    limits: {rpm: -5}\n",
        "targets[0].limits.rpm: Input should be greater than 0",
    ),
    "empty targets": ("targets: []\n", "targets: at least one target is required"),
    "no targets": ("listen: {port: 1}\n", "targets: at least one target is required"),
    "targets not a list": ("targets: {id: a}\n", "targets: Input should be a list"),
    "section not a mapping": (
        T0 + "listen: 8080\n",
        "listen: Input should be a mapping (key: value)",
    ),
    "models wrong type": (
        T0 + "    models: gpt-4o\n",
        "targets[0].models: must be a list of model names or a mapping of client name to "
        "upstream name",
    ),
    "models item wrong type": (
        T0 + "    models: [gpt-4o, 4]\n",
        "targets[0].models[1]: must be a non-empty string",
    ),
    "models empty": (
        T0 + "    models: []\n",
        'targets[0].models: must list at least one model name (or "*" for any)',
    ),
    "bad capability": (
        T0 + "    capabilities: [chat, telepathy]\n",
        "targets[0].capabilities[1]: Input should be 'chat', 'completions', 'streaming', "
        "'tools', 'vision', 'embeddings' or 'responses'",
    ),
    "bad header name": (
        T0 + "    headers: {'X Title': x}\n",
        "targets[0].headers['X Title']: not a valid HTTP header name",
    ),
    "header value with newline": (
        T0 + '    headers: {X-Title: "a\\r\\nHost: evil"}\n',
        "targets[0].headers.X-Title: must not contain line breaks or control characters",
    ),
    "bad timeout": (
        T0 + "    timeouts: {idle_s: 0}\n",
        "targets[0].timeouts.idle_s: Input should be greater than 0",
    ),
    "policy section": (
        T0 + "breaker: {open_s: -1}\n",
        "breaker.open_s: Input should be greater than 0",
    ),
    "policy model validator": (
        T0 + "cooldown: {jitter: [0.5, 0.1]}\n",
        "cooldown: jitter must be [low, high] with 0 <= low <= high <= 1",
    ),
}


@pytest.mark.parametrize(("text", "expected"), ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_validation_error_names_path(text: str, expected: str) -> None:
    """Each invalid value is reported as `path: message`, in YAML terms."""
    assert expected in problems(text)


def test_all_problems_reported_at_once() -> None:
    """One ConfigError lists every problem, so a user fixes the file in one pass."""
    found = problems(T0 + "    colour: red\nlisten: {port: 0.5}\nbogus: 1\n")
    assert len(found) == 3
    assert "targets[0].colour: unknown key" in found and "bogus: unknown key" in found


def test_config_error_str_is_multiline_with_source() -> None:
    """str(ConfigError) names the file and puts one problem per line."""
    with pytest.raises(ConfigError) as info:
        parse("targets: []\nlisten: {port: 70000}\n")
    lines = str(info.value).splitlines()
    assert "sidestep.yaml" in lines[0] and len(lines) == 3
    assert info.value.source == "sidestep.yaml"


# --- YAML-level errors -------------------------------------------------------------------


def test_yaml_syntax_error_names_line_and_column() -> None:
    """A YAML syntax error points at file:line:column."""
    text = "targets:\n  - id: a\n    base_url: http://x: y\n"
    (problem,) = problems(text)
    assert problem.startswith("sidestep.yaml:3:"), problem


def test_duplicate_yaml_key_is_an_error() -> None:
    """A key written twice is refused instead of silently keeping the last one."""
    (problem,) = problems(T0 + "    base_url: http://y\n")
    assert problem == "sidestep.yaml:4:5: duplicate key 'base_url' (first at line 3)"


def test_yaml_merge_keys_may_override() -> None:
    """`<<: *anchor` merges still work and an explicit key overrides a merged one."""
    config = parse(
        """\
        targets:
          - &base {id: a, base_url: 'http://x', priority: 1}
          - <<: *base
            id: b
        """
    )
    assert [(t.id, t.priority) for t in config.targets] == [("a", 1), ("b", 1)]


def test_boolean_yaml_key_is_an_error() -> None:
    """An unquoted `yes:`/`on:` key (a YAML 1.1 boolean) gets a hint to quote it."""
    (problem,) = problems(T0 + "    headers: {on: x}\n")
    assert problem.startswith("sidestep.yaml:4:") and "quote it" in problem


def test_bad_yaml_value_names_line() -> None:
    """A scalar YAML cannot construct (an impossible date) is reported with its line."""
    (problem,) = problems(T0 + "    headers: {X-Date: 2024-13-01}\n")
    assert problem == "sidestep.yaml:4:23: invalid value (month must be in 1..12)"


def test_python_tags_are_refused() -> None:
    """The loader is a safe loader: python/object tags are errors, never executed."""
    (problem,) = problems(T0 + "admin: {token: !!python/object/apply:os.getcwd []}\n")
    assert "could not determine a constructor" in problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("# only a comment\n", "the file is empty"),
        ("- a\n- b\n", "the top level must be a mapping"),
        ("just text\n", "the top level must be a mapping"),
    ],
)
def test_empty_or_non_mapping_document(text: str, expected: str) -> None:
    """An empty file or a top level that is not a mapping gets a plain explanation."""
    (problem,) = problems(text)
    assert problem.startswith(expected)


def test_missing_file(tmp_path: Path) -> None:
    """A path that does not exist is a ConfigError naming the file."""
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert info.value.problems == ("file not found",)
    assert "nope.yaml" in str(info.value)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    """A directory given as the config path is a clear ConfigError."""
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert info.value.problems == ("is a directory, not a YAML file",)


def test_unreadable_file(tmp_path: Path) -> None:
    """A file without read permission is a clear ConfigError."""
    path = tmp_path / "sidestep.yaml"
    path.write_text(MINIMAL)
    path.chmod(0)
    if os.access(path, os.R_OK):
        pytest.skip("running with privileges that ignore file modes")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == ("cannot read the file: permission denied",)


def test_non_utf8_file(tmp_path: Path) -> None:
    """Bytes that are not UTF-8 are a ConfigError, not a UnicodeDecodeError."""
    path = tmp_path / "sidestep.yaml"
    path.write_bytes(b"targets: \xff\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == ("not UTF-8 text (bad byte at offset 9)",)


# --- environment expansion -----------------------------------------------------------------


def test_env_var_is_expanded() -> None:
    """${VAR} takes the variable's value."""
    config = parse(T0 + "    api_key: ${OPENAI_API_KEY}\n", OPENAI_API_KEY=SECRET)
    assert config.targets[0].api_key is not None
    assert config.targets[0].api_key.get_secret_value() == SECRET


@pytest.mark.parametrize("environ", [{}, {"PORT": ""}], ids=["unset", "empty"])
def test_env_default_used_when_unset_or_empty(environ: dict[str, str]) -> None:
    """${VAR:-default} falls back when VAR is unset or empty; the result is then coerced."""
    config = parse(T0 + "listen: {port: '${PORT:-9000}'}\n", **environ)
    assert config.listen.port == 9000


def test_env_default_ignored_when_set() -> None:
    """${VAR:-default} uses VAR when it is set and non-empty."""
    assert parse(T0 + "listen: {port: '${PORT:-9000}'}\n", PORT="9100").listen.port == 9100


def test_unset_env_var_names_path() -> None:
    """An unset ${VAR} without default is an error naming both the key path and VAR."""
    found = problems(T0 + "    api_key: ${OPENAI_API_KEY}\n")
    assert found == ("targets[0].api_key: environment variable OPENAI_API_KEY is not set",)


def test_double_dollar_is_literal() -> None:
    """`$$` yields a literal `$`, so `$${X}` is the text `${X}`; a lone `$` stays."""
    config = parse(T0 + "    headers: {X-Note: 'cost $$5 $${X} a$b'}\n")
    assert config.targets[0].headers["X-Note"] == "cost $5 ${X} a$b"


def test_malformed_reference_is_an_error() -> None:
    """An unterminated or malformed ${...} is reported, not passed through."""
    found = problems(T0 + "    headers: {X-Note: 'a ${B'}\n")
    assert found == (
        "targets[0].headers.X-Note: invalid ${...} reference (expected ${VAR} or ${VAR:-default})",
    )


def test_env_value_cannot_inject_yaml() -> None:
    """A variable's value stays one string even if it looks like YAML."""
    config = parse(T0 + "    models: ['${M}']\n", M="x\nlisten: {port: 1}")
    assert config.targets[0].models == ("x\nlisten: {port: 1}",)
    assert config.listen.port == 8787


def test_empty_api_key_means_no_key() -> None:
    """`api_key: ${KEY:-}` with KEY unset leaves the target keyless rather than failing."""
    assert parse(T0 + "    api_key: ${KEY:-}\n").targets[0].keys == (None,)


# --- zero-config -----------------------------------------------------------------------------

PROVIDERS = {
    "ANTHROPIC_API_KEY": ("anthropic", "https://api.anthropic.com", ("claude-*",), 60),
    "OPENAI_API_KEY": (
        "openai",
        "https://api.openai.com/v1",
        ("gpt-*", "o1*", "o3*", "o4*", "chatgpt-*", "text-embedding-*", "davinci-*", "babbage-*"),
        50,
    ),
    "OPENROUTER_API_KEY": ("openrouter", "https://openrouter.ai/api/v1", ("*",), 40),
    "GEMINI_API_KEY": (
        "gemini",
        "https://generativelanguage.googleapis.com/v1beta/openai",
        ("gemini-*", "text-embedding-004", "gemini-embedding-*"),
        30,
    ),
    "GROQ_API_KEY": ("groq", "https://api.groq.com/openai/v1", ("*",), 20),
}


@pytest.mark.parametrize(("var", "expected"), PROVIDERS.items(), ids=PROVIDERS.keys())
def test_zero_config_provider(var: str, expected: tuple[str, str, tuple[str, ...], int]) -> None:
    """Each provider key in the environment becomes its documented target."""
    config = config_from_env({var: SECRET})
    (t,) = config.targets
    assert (t.id, t.base_url, t.models, t.priority) == expected
    assert t.api_key is not None and t.api_key.get_secret_value() == SECRET
    assert t.prefill is (t.id == "anthropic")
    assert t.api == ("anthropic" if t.id == "anthropic" else "openai")
    assert ("responses" in t.capabilities) is (t.id in ("openai", "openrouter"))
    assert config.source is None


def test_zero_config_ollama() -> None:
    """OLLAMA_HOST adds a keyless ollama target serving any model at the lowest priority."""
    (t,) = config_from_env({"OLLAMA_HOST": "localhost"}).targets
    assert (t.id, t.base_url, t.models, t.priority, t.keys) == (
        "ollama",
        "http://localhost:11434/v1",
        ("*",),
        10,
        (None,),
    )


def test_zero_config_priority_order() -> None:
    """With every provider set, targets come out most preferred first."""
    environ = dict.fromkeys(PROVIDERS, SECRET) | {"OLLAMA_HOST": "127.0.0.1:11434"}
    config = config_from_env(environ)
    assert [(t.id, t.priority) for t in config.targets] == [
        ("anthropic", 60),
        ("openai", 50),
        ("openrouter", 40),
        ("gemini", 30),
        ("groq", 20),
        ("ollama", 10),
    ]


def test_zero_config_google_alias() -> None:
    """GOOGLE_API_KEY configures gemini; GEMINI_API_KEY wins when both are set."""
    (t,) = config_from_env({"GOOGLE_API_KEY": "g-key-alias-1234"}).targets
    assert t.id == "gemini" and t.api_key is not None
    assert t.api_key.get_secret_value() == "g-key-alias-1234"
    (t,) = config_from_env({"GOOGLE_API_KEY": "g-alias-0000", "GEMINI_API_KEY": SECRET}).targets
    assert t.api_key is not None and t.api_key.get_secret_value() == SECRET


@pytest.mark.parametrize(
    ("host", "base_url"),
    [
        ("localhost", "http://localhost:11434/v1"),
        ("gpu-box:8080", "http://gpu-box:8080/v1"),
        ("http://gpu-box:8080", "http://gpu-box:8080/v1"),
        ("https://ollama.example.org", "https://ollama.example.org/v1"),
        ("http://proxy/ollama/", "http://proxy/ollama/v1"),
        (":9999", "http://127.0.0.1:9999/v1"),
        ("0.0.0.0", "http://127.0.0.1:11434/v1"),
        ("[::1]:11434", "http://[::1]:11434/v1"),
        ("::", "http://[::1]:11434/v1"),
    ],
)
def test_ollama_host_forms(host: str, base_url: str) -> None:
    """OLLAMA_HOST is read as the ollama CLI reads it (default port 11434 without scheme)."""
    assert ollama_base_url(host) == base_url


def test_ollama_host_bad_port() -> None:
    """A malformed OLLAMA_HOST is a ConfigError naming the variable."""
    with pytest.raises(ConfigError) as info:
        config_from_env({"OLLAMA_HOST": "box:port"})
    assert info.value.problems == ("OLLAMA_HOST: invalid port",)


@pytest.mark.parametrize("environ", [{}, {"OPENAI_API_KEY": "  ", "PATH": "/bin"}])
def test_zero_config_without_keys(environ: dict[str, str]) -> None:
    """No (non-blank) provider key is an error that says what to set."""
    with pytest.raises(ConfigError) as info:
        config_from_env(environ)
    (problem,) = info.value.problems
    assert problem.startswith("no provider keys found in the environment; set one of ")
    assert "GOOGLE_API_KEY" in problem and problem.endswith("or pass --config")


# --- secrets ---------------------------------------------------------------------------------

SECRET_CONFIG = f"""\
auth: {{client_keys: [{SECRET}-client]}}
admin: {{token: {SECRET}-admin}}
targets:
  - id: a
    base_url: https://api.openai.com/v1
    api_key: {SECRET}
  - id: b
    base_url: https://api.openai.com/v1
    api_keys: [{SECRET}-1, {SECRET}-2]
"""


def test_secrets_hidden_in_repr_dump_and_description() -> None:
    """Keys and tokens never appear in repr, str, JSON dumps or describe_targets."""
    config = parse(SECRET_CONFIG)
    outputs = [repr(config), str(config), config.model_dump_json(), *describe_targets(config)]
    outputs += [repr(config.targets[1]), str(config.model_dump())]
    for output in outputs:
        assert "SECRET" not in output
    assert config.admin.token is not None
    assert config.admin.token.get_secret_value() == f"{SECRET}-admin"


@pytest.mark.parametrize(
    "text",
    [
        f"targets:\n  - {{id: a, base_url: 'http://x', api_key: [{SECRET}]}}\n",
        f"targets:\n  - {{id: a, base_url: 'http://x', api_keys: {SECRET}}}\n",
        f"targets:\n  - {{id: a, base_url: '{SECRET}'}}\n",
        f"targets:\n  - {{id: '{SECRET}', base_url: 'http://x'}}\n",
        f"targets:\n  - {{id: a, base_url: 'http://x', api_key: '{SECRET} x'}}\n",
        f"auth: {{client_keys: {SECRET}}}\n" + T0,
        f"admin: {{token: [{SECRET}]}}\n" + T0,
        f"targets:\n  - id: a\n    api_key: {SECRET}: x\n",
        f"targets:\n  - id: a\n    api_key: '{SECRET}\n",
    ],
)
def test_secrets_never_in_errors(text: str) -> None:
    """A rejected secret is echoed neither by str(ConfigError) nor by a chained error."""
    with pytest.raises(ConfigError) as info:
        parse(text)
    assert_secret_free(info.value)


def test_secrets_from_env_never_in_errors() -> None:
    """A key that arrives through ${VAR} is not echoed when it is rejected."""
    with pytest.raises(ConfigError) as info:
        parse(T0 + "    api_keys: ${KEYS}\n", KEYS=SECRET)
    assert_secret_free(info.value)


def assert_secret_free(error: ConfigError) -> None:
    # pydantic's and PyYAML's own messages quote input, so none may ride along as a cause.
    assert error.__cause__ is None and error.__context__ is None
    rendered = "".join(traceback.format_exception_only(error)) + repr(error)
    assert "SECRET" not in rendered, rendered


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        (SECRET, "sk-…5b4a"),
        ("abcdefghijkl", "abc…ijkl"),
        ("abcdefghijk", "…jk"),
        ("abcdefgh", "…gh"),
        ("abcdefg", "***"),
        ("", "***"),
    ],
)
def test_mask_secret(raw: str, masked: str) -> None:
    """mask_secret shows at most the first 3 and last 4 characters, less for short keys."""
    assert mask_secret(raw) == masked


def test_describe_targets_line() -> None:
    """describe_targets gives one aligned line per target with the key masked."""
    config = parse(
        f"""\
        targets:
          - id: openai-main
            base_url: https://api.openai.com/v1
            api_key: sk-abcdefgh1234
            models: [gpt-4o-mini, gpt-4o]
            priority: 10
          - id: ollama
            base_url: http://localhost:11434/v1
            api_keys: [{SECRET}, k-123456789]
            models: {{fast: llama3}}
            enabled: false
        """
    )
    assert describe_targets(config) == [
        "openai-main  https://api.openai.com/v1  key sk-…1234  models gpt-4o-mini, gpt-4o"
        "  priority 10",
        "ollama       http://localhost:11434/v1  2 keys sk-…5b4a, …89  models fast→llama3"
        "  priority 0  (disabled)",
    ]


# --- model routing helpers -------------------------------------------------------------------

UPSTREAM_CASES = [
    (["gpt-4o", "gpt-4o-mini"], "gpt-4o", "gpt-4o"),
    (["gpt-4o", "gpt-4o-mini"], "gpt-4", None),
    (["claude-*"], "claude-3-5-sonnet", "claude-3-5-sonnet"),
    (["claude-*"], "Claude-3", None),
    (["o[13]*"], "o3-mini", "o3-mini"),
    (["o[13]*"], "o2", None),
    (["gpt-?o"], "gpt-4o", "gpt-4o"),
    (["*"], "anything/at:all", "anything/at:all"),
    ({"fast": "llama-3.1-8b-instant"}, "fast", "llama-3.1-8b-instant"),
    ({"fast": "llama-3.1-8b-instant"}, "llama-3.1-8b-instant", None),
    ({"fast": "small", "*": "big"}, "fast", "small"),
    ({"fast": "small", "*": "big"}, "other", "big"),
]


@pytest.mark.parametrize(("models", "client", "upstream"), UPSTREAM_CASES)
def test_upstream_model(models: object, client: str, upstream: str | None) -> None:
    """upstream_model maps, passes through literals and pattern matches, or says not served."""
    assert target(models=models).upstream_model(client) == upstream


def test_target_listed_models_and_serves_any() -> None:
    """listed_models holds literal names or mapping keys only; patterns set serves_any."""
    listed = target(models=["gpt-4o", "gpt-*", "o1"])
    assert listed.listed_models() == ("gpt-4o", "o1") and listed.serves_any
    mapped = target(models={"fast": "a", "smart": "b"})
    assert mapped.listed_models() == ("fast", "smart") and not mapped.serves_any


def test_config_listed_models_union() -> None:
    """Config.listed_models is the ordered union over enabled targets, without repeats."""
    config = parse(
        """\
        targets:
          - {id: a, base_url: 'http://a', models: [gpt-4o, '*']}
          - {id: b, base_url: 'http://b', models: {fast: x, gpt-4o: y}}
          - {id: c, base_url: 'http://c', models: [hidden], enabled: false}
        """
    )
    assert config.listed_models() == ("gpt-4o", "fast")


def test_keys_lanes() -> None:
    """keys has one entry per lane: the api_keys, the api_key, or None."""
    assert target().keys == (None,)
    assert [k and k.get_secret_value() for k in target(api_key=" k-abcdefgh\n").keys] == [
        "k-abcdefgh"
    ]
    assert len(target(api_keys=["k1-abcdefgh", "k2-abcdefgh"]).keys) == 2


def test_target_lookup() -> None:
    """Config.target finds a target by id and returns None for an unknown id."""
    config = parse(MINIMAL)
    assert config.target("local") is config.targets[0]
    assert config.target("nope") is None


def test_prefill_per_model_overrides_the_target_default() -> None:
    """prefill_models: a literal name wins, then patterns in order, else the target's prefill."""
    t = target(prefill=True, prefill_models={"o3-*": False, "o3-mini": True, "*-nano": False})
    assert [t.prefills(m) for m in ("o3-mini", "o3-pro", "gpt-nano", "claude")] == [
        True,
        False,
        False,
        True,
    ]
    assert not target().prefills("any")


def test_prefill_models_rejects_bad_entries() -> None:
    """An empty model name or a non-boolean value is refused with its path."""
    with pytest.raises(ValidationError, match="prefill_models"):
        target(prefill_models={"": True})
    with pytest.raises(ValidationError, match="prefill_models"):
        target(prefill_models={"m": "sometimes"})
