"""Reading and validating what a client sent, before any upstream is involved.

Produces a ``ClientRequest``: the raw body (forwarded byte-for-byte unless the model name must
be mapped), the few fields sidestep routes on, and the capabilities the request needs (read
per protocol by ``policies.features``).
Bad input becomes a ``ClientRequestError`` in the OpenAI shape; nothing here can crash.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson
from aiohttp import StreamReader, web

from policies.features import read_features
from policies.translate.paths import Wire
from proxy.http.body_budget import BodyHold
from proxy.http.errors import ClientRequestError

WORKDIR_HEADER = "x-sidestep-workdir"
# Headers that name the client's session when the configured one (``sessions.header``) is
# absent, first match wins: Codex CLI sends ``session-id``, Claude Code
# ``X-Claude-Code-Session-Id``.
SESSION_FALLBACK_HEADERS = ("session-id", "x-claude-code-session-id")


class Endpoint(Enum):
    CHAT = "chat"
    COMPLETIONS = "completions"
    EMBEDDINGS = "embeddings"
    RESPONSES = "responses"
    MESSAGES = "messages"  # the Anthropic Messages API

    @property
    def path(self) -> str:
        return _PATHS[self]


_PATHS = {
    Endpoint.CHAT: "/chat/completions",
    Endpoint.COMPLETIONS: "/completions",
    Endpoint.EMBEDDINGS: "/embeddings",
    Endpoint.RESPONSES: "/responses",
    Endpoint.MESSAGES: "/messages",
}


@dataclass(frozen=True, slots=True)
class ClientRequest:
    request_id: str
    endpoint: Endpoint
    body: bytes
    obj: dict[str, Any]
    model: str
    stream: bool
    needs: frozenset[str]
    session: str | None
    prompt_chars: int
    max_output_tokens: int | None

    def body_for(self, upstream_model: str) -> bytes:
        """The body to send upstream: untouched bytes unless the model name is mapped."""
        if upstream_model == self.model:
            return self.body
        return orjson.dumps({**self.obj, "model": upstream_model})


_ID_PREFIX = "req_" + secrets.token_hex(6)  # per process: ids never repeat across restarts
_ID_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):010x}"


async def read_client_request(
    request: web.Request,
    endpoint: Endpoint,
    *,
    max_body_bytes: int,
    session_header: str,
    hold: BodyHold,
) -> ClientRequest:
    """Read and validate the body, reserving its bytes in ``hold`` before they are read
    (the caller releases the hold when the request is over)."""
    body = await _read_body(request, max_body_bytes, hold)
    obj = _parse_object(body)
    model = obj.get("model")
    if model is None or model == "":
        raise ClientRequestError(
            400,
            "you must provide a model parameter",
            param="model",
            code="missing_required_parameter",
        )
    if not isinstance(model, str):
        raise ClientRequestError(
            400, "'model' must be a string", param="model", code="invalid_type"
        )
    stream = obj.get("stream") is True
    features = read_features(Wire(endpoint.value), obj, stream)
    return ClientRequest(
        request_id=new_request_id(),
        endpoint=endpoint,
        body=body,
        obj=obj,
        model=model,
        stream=stream,
        needs=features.needs,
        session=_session(request, session_header),
        prompt_chars=len(body),
        max_output_tokens=features.max_output_tokens,
    )


def _session(request: web.Request, session_header: str) -> str | None:
    """The session the request names: the configured header, else a client's own."""
    for name in (session_header, *SESSION_FALLBACK_HEADERS):
        if value := request.headers.get(name):
            return value
    return None


async def _read_body(request: web.Request, max_body_bytes: int, hold: BodyHold) -> bytes:
    """The whole body. With a Content-Length its size is reserved at once; a chunked body
    reserves each chunk before it is kept, so no body is buffered beyond the budget."""
    length = request.content_length
    if length is not None:
        if length > max_body_bytes:
            raise _too_large(max_body_bytes)
        hold.take(length)
    chunks: list[bytes] = []
    size = 0
    content = request.content
    while chunk := await _next_piece(content):
        size += len(chunk)
        if size > max_body_bytes:
            raise _too_large(max_body_bytes)
        if length is None:
            hold.take(len(chunk))
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _too_large(limit: int) -> ClientRequestError:
    return ClientRequestError(
        413, f"request body is larger than the limit of {limit} bytes", code="request_too_large"
    )


async def _next_piece(content: StreamReader) -> bytes:
    """The next bytes of the body (b"" at its end). A body that cannot be decoded, such as
    bytes that do not match their Content-Encoding, is the client's error, not ours."""
    try:
        return await content.readany()
    except web.RequestPayloadError as exc:
        detail = getattr(exc.__cause__, "message", "") or "malformed body"
        raise ClientRequestError(
            400, f"request body could not be read: {detail}", code="invalid_body"
        ) from None


def _parse_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise ClientRequestError(
            400, "request body is empty; expected a JSON object", code="invalid_json"
        )
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ClientRequestError(
            400, f"request body is not valid JSON: {exc.msg}", code="invalid_json"
        ) from exc
    if not isinstance(obj, dict):
        raise ClientRequestError(
            400, f"request body must be a JSON object, not {_json_kind(obj)}", code="invalid_json"
        )
    return obj


def _json_kind(value: object) -> str:
    """The JSON name of a parsed non-object value, for messages a client can act on."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"
