"""The ``targets`` section: one upstream endpoint each, with its keys, models and limits."""

from __future__ import annotations

import re
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Annotated, Any, Literal, overload
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    Field,
    PrivateAttr,
    SecretStr,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from policies.translate.paths import Api

from .errors import SUB_PATH_CTX
from .model_names import ModelMatcher, ModelSpec
from .secret import OptionalSecret, Secret
from .section import Section
from .streams import Streams

_ID = re.compile(r"[a-z0-9_-]{1,64}")
_HEADER_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Framing and connection headers belong to the HTTP client; letting config set them
# would corrupt the request.
_MANAGED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})

StrictStr = Annotated[str, StringConstraints(strict=True)]


class Capability(StrEnum):
    CHAT = "chat"
    COMPLETIONS = "completions"
    STREAMING = "streaming"
    TOOLS = "tools"
    VISION = "vision"
    EMBEDDINGS = "embeddings"
    RESPONSES = "responses"


def _check_id(value: str) -> str:
    if not _ID.fullmatch(value):
        raise PydanticCustomError(
            "target_id", "must be 1 to 64 characters from a-z, 0-9, '_' and '-'"
        )
    return value


def _check_base_url(value: str) -> str:
    """An http(s) URL with a host, stored without its trailing slash."""
    url = value.strip()
    # urlsplit silently drops tabs and newlines, so they are refused before parsing.
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise PydanticCustomError("url", "invalid URL (contains whitespace)")
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        raise PydanticCustomError("url", "invalid URL (bad port)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PydanticCustomError("url", "invalid URL (must be http:// or https://)")
    if parts.username is not None or parts.password is not None:
        # Credentials here would be printed wherever the URL is shown.
        raise PydanticCustomError("url", "must not contain credentials; use api_key or headers")
    if parts.query or parts.fragment:
        raise PydanticCustomError("url", "must not have a query or fragment")
    return url.rstrip("/")


def _check_header_name(value: str) -> str:
    if not _HEADER_TOKEN.fullmatch(value):
        raise PydanticCustomError("header_name", "not a valid HTTP header name")
    if value.lower() in _MANAGED_HEADERS:
        raise PydanticCustomError("header_name", "this header is set by sidestep itself")
    return value


def _check_header_value(value: str) -> str:
    if any(not ch.isprintable() and ch != "\t" for ch in value):
        raise PydanticCustomError(
            "header_value", "must not contain line breaks or control characters"
        )
    return value


def _dedupe(capabilities: tuple[Capability, ...]) -> tuple[Capability, ...]:
    if not capabilities:
        raise PydanticCustomError(
            "capabilities", "must list at least one capability (use enabled: false instead)"
        )
    return tuple(dict.fromkeys(capabilities))


TargetId = Annotated[StrictStr, AfterValidator(_check_id)]
BaseUrl = Annotated[StrictStr, AfterValidator(_check_base_url)]
HeaderName = Annotated[StrictStr, AfterValidator(_check_header_name)]
HeaderValue = Annotated[StrictStr, AfterValidator(_check_header_value)]
PositiveInt = Annotated[int, Field(gt=0)]
PositiveSeconds = Annotated[float, Field(gt=0)]


class TargetLimits(Section):
    """Provider quotas for this target (per key lane); ``None`` = unlimited."""

    rpm: PositiveInt | None = None
    """Requests per minute."""
    tpm: PositiveInt | None = None
    """Tokens per minute (prompt estimate plus expected output)."""
    max_concurrency: PositiveInt | None = None
    """Requests in flight at once."""


class TargetTimeouts(Section):
    """Per-target overrides of ``streams.*_timeout_s`` and ``streams.hedge_after_s``, in
    seconds; ``None`` inherits."""

    connect_s: PositiveSeconds | None = None
    first_byte_s: PositiveSeconds | None = None
    first_token_s: PositiveSeconds | None = None
    idle_s: PositiveSeconds | None = None
    hedge_after_s: PositiveSeconds | None = None
    """``streams.hedge_after_s`` for requests that start on this target."""


TimeoutKind = Literal["connect", "first_byte", "first_token", "idle"]
"""A limit ``targets[].timeouts`` may override (see ``Target.timeout``); ``hedge_after``
too, which may be unset."""


class Target(Section):
    """An upstream endpoint and how sidestep may use it."""

    id: TargetId
    base_url: BaseUrl
    api: Api = Api.OPENAI
    """What the endpoint speaks: ``openai`` (OpenAI-compatible) or ``anthropic`` (the
    Messages API, native: ``x-api-key``, prompt caching, thinking). Requests in another
    protocol are translated (``policies.translate``)."""
    api_key: OptionalSecret = None
    api_keys: tuple[Secret, ...] | None = None
    """Several keys for the same endpoint; each is its own lane (limits, cooldown)."""
    models: ModelSpec = ("*",)
    """Names served: a list (literals and fnmatch patterns) or a mapping; see ``model_names``."""
    priority: float = 0.0
    """Higher is preferred."""
    enabled: bool = True
    limits: TargetLimits = TargetLimits()
    capabilities: Annotated[tuple[Capability, ...], AfterValidator(_dedupe)] = tuple(Capability)
    context_window: PositiveInt | None = None
    """Tokens; ``None`` when unknown."""
    max_output_tokens: PositiveInt | None = None
    """The most output tokens the target's models take: a request asking for more (Claude
    Code asks for 32,000 to 64,000) is capped to this, since many OpenAI-compatible providers
    refuse a larger ``max_tokens`` outright."""
    prefill: bool = False
    """Whether the upstream continues a trailing assistant message (used to resume)."""
    prefill_models: dict[Annotated[StrictStr, StringConstraints(min_length=1)], bool] = Field(
        default_factory=dict
    )
    """``prefill`` per upstream model name or fnmatch pattern; see :meth:`prefills`."""
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict)
    """Extra headers sent upstream, e.g. ``HTTP-Referer`` for OpenRouter."""
    timeouts: TargetTimeouts = TargetTimeouts()

    _matcher: ModelMatcher = PrivateAttr()

    def model_post_init(self, context: Any, /) -> None:
        self._matcher = ModelMatcher.build(self.models)

    @field_validator("api_keys")
    @classmethod
    def _one_key_source(
        cls, keys: tuple[SecretStr, ...] | None, info: ValidationInfo
    ) -> tuple[SecretStr, ...] | None:
        if keys is None:
            return None
        if info.data.get("api_key") is not None:
            raise PydanticCustomError(
                "api_keys", "api_key and api_keys are mutually exclusive; use one of them"
            )
        if not keys:
            raise PydanticCustomError("api_keys", "must list at least one key (or omit it)")
        values = [key.get_secret_value() for key in keys]
        for index, value in enumerate(values):
            if value in values[:index]:
                # A repeated key would count as two lanes and double its provider quota.
                raise PydanticCustomError("api_keys", "key listed twice", {SUB_PATH_CTX: (index,)})
        return keys

    @field_validator("headers")
    @classmethod
    def _unique_header_names(cls, headers: dict[str, str]) -> dict[str, str]:
        seen: set[str] = set()
        for name in headers:
            if name.lower() in seen:
                raise PydanticCustomError(
                    "header_name",
                    "header given twice (names are case-insensitive)",
                    {SUB_PATH_CTX: (name,)},
                )
            seen.add(name.lower())
        return headers

    @property
    def keys(self) -> tuple[SecretStr | None, ...]:
        """One entry per key lane; ``(None,)`` when the upstream takes no key."""
        if self.api_keys:
            return self.api_keys
        return (self.api_key,)

    @property
    def serves_any(self) -> bool:
        """Whether ``models`` has a pattern, so names beyond ``listed_models()`` match."""
        return bool(self._matcher.patterns)

    @property
    def matcher(self) -> ModelMatcher:
        """The compiled ``models`` (for callers that cache its ``upstream`` method)."""
        return self._matcher

    def upstream_model(self, client_model: str) -> str | None:
        """The model name to send upstream for ``client_model``; ``None`` if not served."""
        return self._matcher.upstream(client_model)

    def prefills(self, upstream_model: str) -> bool:
        """Whether ``upstream_model`` takes a prefill: its literal ``prefill_models`` entry,
        else the first matching pattern there (in the order written), else ``prefill``."""
        found = self.prefill_models.get(upstream_model)
        if found is not None:
            return found
        for pattern, value in self.prefill_models.items():
            if fnmatchcase(upstream_model, pattern):
                return value
        return self.prefill

    def url(self, path: str) -> str:
        """The upstream URL of an API path such as ``/chat/completions``. An ``anthropic``
        target's base URL may omit the version (``https://api.anthropic.com``)."""
        if self.api is Api.ANTHROPIC and not self.base_url.endswith("/v1"):
            return self.base_url + "/v1" + path
        return self.base_url + path

    @overload
    def timeout(self, kind: TimeoutKind, streams: Streams) -> float: ...
    @overload
    def timeout(self, kind: Literal["hedge_after"], streams: Streams) -> float | None: ...
    def timeout(self, kind: TimeoutKind | Literal["hedge_after"], streams: Streams) -> float | None:
        """The ``kind`` limit in seconds on this target: its own ``timeouts`` value, else
        ``streams``' (None only for ``hedge_after``: hedging off)."""
        t = self.timeouts
        if kind == "connect":
            return t.connect_s or streams.connect_timeout_s
        if kind == "first_byte":
            return t.first_byte_s or streams.first_byte_timeout_s
        if kind == "first_token":
            return t.first_token_s or streams.first_token_timeout_s
        if kind == "idle":
            return t.idle_s or streams.idle_timeout_s
        return t.hedge_after_s or streams.hedge_after_s

    def listed_models(self) -> tuple[str, ...]:
        """Literal client-facing names (list entries or mapping keys), patterns excluded."""
        return self._matcher.listed
