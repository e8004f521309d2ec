"""How one soak request ended, judged as a user would judge it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import openai


class Outcome(Enum):
    EXACT = "exact"  # the answer's text is exactly the expected text
    CLEAN_ERROR = "clean error"  # the SDK raised its own error type, with a message
    HANG = "hang"  # nothing decided within the client's deadline
    CORRUPTED = "corrupted"  # a complete-looking answer whose text is wrong (or missing)
    UNCLEAN_ERROR = "unclean error"  # any other exception (a JSON or Unicode error, …)


@dataclass(frozen=True, slots=True)
class Result:
    prompt: str
    stream: bool
    outcome: Outcome
    detail: str  # the error or the wrong text; "" when exact


def classify_error(exc: BaseException) -> Outcome:
    """The SDK's timeout is a hang; its other errors with a message are clean."""
    if isinstance(exc, openai.APITimeoutError):
        return Outcome.HANG
    if isinstance(exc, openai.APIError) and str(exc).strip():
        return Outcome.CLEAN_ERROR
    return Outcome.UNCLEAN_ERROR
