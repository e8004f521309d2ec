"""The ``streams`` section: upstream timeouts and mid-stream resume, in seconds.

Each target may override the three timeouts (``targets[].timeouts``); ``None`` there
inherits the value from here.
"""

from __future__ import annotations

from pydantic import Field

from .section import Section


class Streams(Section):
    connect_timeout_s: float = Field(default=10.0, gt=0)
    """Opening the TCP/TLS connection to the upstream."""
    first_byte_timeout_s: float = Field(default=30.0, gt=0)
    """From sending the request to the first response byte (time to first token)."""
    idle_timeout_s: float = Field(default=60.0, gt=0)
    """Longest silence between two chunks of a streaming response."""
    resume: bool = True
    """Resume a stream cut after its first byte by continuing on another attempt."""
    max_resumes: int = Field(default=2, ge=0)
    """Resumes allowed per client request."""
    provenance_comment: bool = False
    """Emit an SSE comment naming the target that served each part of a stream."""
