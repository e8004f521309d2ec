"""The ``streams`` section: upstream timeouts, hedging and mid-stream resume, in seconds.

Each target may override the timeouts and the hedge delay (``targets[].timeouts``); ``None``
there inherits the value from here. The timeline of one streaming attempt, each limit
counted from the moment the request is sent::

    connect ── headers ──── first token ────── chunk ── chunk ── … ── [DONE]
    connect_timeout_s
    first_byte_timeout_s (to the headers)
    first_token_timeout_s (to the first content/tool-call/reasoning delta)
    hedge_after_s (optional: start a second attempt while waiting)
                                   idle_timeout_s (between chunks, after the first token)
"""

from __future__ import annotations

from pydantic import Field

from .section import Section


class Streams(Section):
    connect_timeout_s: float = Field(default=10.0, gt=0)
    """Opening the TCP/TLS connection to the upstream."""
    first_byte_timeout_s: float = Field(default=30.0, gt=0)
    """From sending the request to the upstream's response headers."""
    first_token_timeout_s: float = Field(default=180.0, gt=0)
    """From sending the request to the first token of a streamed answer (a content,
    tool-call, refusal or reasoning delta, a finish_reason or an error; role-only chunks,
    comments and empty deltas do not count). Nothing but the wait has reached the client by
    then, so running out fails over like a 5xx. Generous by default: reasoning models may
    think for minutes before their first token."""
    idle_timeout_s: float = Field(default=60.0, gt=0)
    """Longest silence between two chunks of a streaming response, once its first token
    arrived (before it, only ``first_token_timeout_s`` applies)."""
    hedge_after_s: float | None = Field(default=None, gt=0)
    """Off by default. After this long without a first token, send the same request to the
    next lane routing chooses as well, keep whichever produces a token first and cancel the
    other. Costs a second upstream request whenever it fires."""
    resume: bool = True
    """Resume a stream cut after its first byte by continuing on another attempt."""
    max_resumes: int = Field(default=2, ge=0)
    """Resumes allowed per client request."""
    provenance_comment: bool = False
    """Emit an SSE comment naming the target that served each part of a stream."""
