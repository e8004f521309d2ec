"""Protocol codecs: everything specific to a wire protocol's stream, behind one interface
(``base.StreamCodec``). Chat completions (``chat``, ``chat_stitch``), Anthropic Messages
(``messages``) and the Responses API (``responses``, ``responses_stitch``) are stitched; legacy
completions are relayed whole (``plain``). A new
protocol adds a codec here and an entry in ``codec_for``/``resume_blocked``; the lifecycle does
not change."""

from __future__ import annotations

from aiohttp import web

from proxy.codecs.base import StreamCodec
from proxy.codecs.chat_stitch import ChatStitch
from proxy.codecs.messages import MessagesStitch
from proxy.codecs.plain import PlainStream
from proxy.codecs.responses_stitch import ResponsesStitch
from proxy.http.inbound import Endpoint
from proxy.lifecycle.run import Run

_RESUMABLE = (Endpoint.CHAT, Endpoint.MESSAGES)


def codec_for(run: Run, out: web.StreamResponse) -> StreamCodec:
    if run.creq.endpoint is Endpoint.CHAT:
        return ChatStitch(run, out)
    if run.creq.endpoint is Endpoint.MESSAGES:
        return MessagesStitch(run, out, resumable=resume_blocked(run) is None)
    if run.creq.endpoint is Endpoint.RESPONSES:
        return ResponsesStitch(run, out, resumable=resume_blocked(run) is None)
    return PlainStream(run, out)


def resume_blocked(run: Run) -> str | None:
    """Why a cut stream of this request can never be resumed; None when it may be."""
    streams = run.gw.config.streams
    if not streams.resume:
        return "resume is off (streams.resume: false)"
    if run.http.headers.get("x-sidestep-resume", "").strip().lower() == "off":
        return "resume is off for this request (x-sidestep-resume: off)"
    obj = run.creq.obj
    if run.creq.endpoint is Endpoint.RESPONSES:
        return _responses_blocked(obj)
    n = obj.get("n")
    if run.creq.endpoint not in _RESUMABLE or (type(n) is int and n > 1):
        return "only single-choice chat, Anthropic Messages and Responses streams can be resumed"
    return None


def _responses_blocked(obj: dict[str, object]) -> str | None:
    """Responses kept on the target's side cannot be continued by a second request."""
    if obj.get("conversation") is not None:
        return "a response added to a stored conversation is not resumed"
    if obj.get("background") is True:
        return "background responses are not resumed"
    return None


__all__ = ["StreamCodec", "codec_for", "resume_blocked"]
