"""The ``notifications`` section: webhooks told about failovers, breakers and outages, and
the session handoff callback.

A webhook URL is a credential (Discord and Slack put a token in the path), so URLs are
``SecretStr`` like keys: masked in ``repr`` and dumps, and logged by host only.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, SecretStr
from pydantic_core import PydanticCustomError

from .secret import Secret
from .section import Section


class NotificationEvent(StrEnum):
    """What a webhook can subscribe to (``proxy.observe.notify`` says which bus event is which)."""

    FAILOVER = "failover"
    BREAKER_OPEN = "breaker_open"
    BREAKER_CLOSED = "breaker_closed"
    ALL_TARGETS_UNAVAILABLE = "all_targets_unavailable"
    GIT_ISOLATION = "git_isolation"


class WebhookFormat(StrEnum):
    GENERIC = "generic"  # the full JSON payload
    DISCORD = "discord"  # {"content": one line}
    SLACK = "slack"  # {"text": one line}


def _check_url(value: SecretStr) -> SecretStr:
    parts = urlsplit(value.get_secret_value())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PydanticCustomError("url", "invalid URL (must be http:// or https:// with a host)")
    return value


WebhookUrl = Annotated[Secret, AfterValidator(_check_url)]


class Webhook(Section):
    """One receiver. ``events`` it is told about; the same (target, event) is sent at most
    once per ``min_interval_s`` (the next payload counts what was held back); each POST
    times out after ``timeout_s`` and is retried ``retries`` times."""

    url: WebhookUrl
    format: WebhookFormat = WebhookFormat.GENERIC
    events: tuple[NotificationEvent, ...] = Field(default=tuple(NotificationEvent), min_length=1)
    min_interval_s: float = Field(default=60.0, ge=0)
    timeout_s: float = Field(default=5.0, gt=0)
    retries: int = Field(default=2, ge=0, le=10)
    include_diffs: bool = False


class Notifications(Section):
    """``webhooks`` to notify; ``callback_url`` receives a handoff POST after each session
    switch (a session's request completed on another target than it started on)."""

    webhooks: tuple[Webhook, ...] = ()
    callback_url: WebhookUrl | None = None
