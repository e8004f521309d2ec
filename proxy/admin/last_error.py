"""Each target's last upstream failure, for ``/admin/status`` and ``sidestep status``.

Read from every finished request's record (a bus subscriber): a failed attempt counts when
its class is the upstream's doing, and so does a stream segment that broke off mid-answer
(a reset, an idle stream, an error event…) even when the request was then stitched to a
success. A client's own mistake — a request the upstream rejected as invalid, too long for
the context, or filtered — is never a target's error. ``at`` is when the request finished
(monotonic seconds of the app clock). A target that a reload removed or replaced starts
without one, like the rest of its state.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.taxonomy import ErrorClass
from proxy.lifecycle.record import RequestFinished
from proxy.state.fleet import Fleet, TargetRuntime

CAUSED_BY_CLIENT = frozenset(
    c.value
    for c in (ErrorClass.INVALID_REQUEST, ErrorClass.CONTEXT_TOO_LONG, ErrorClass.CONTENT_FILTERED)
)
"""Classes that describe the client's request, not the target (returned to the client as is,
or failed over only because another model might take a longer context)."""
_SEGMENT_OK = frozenset({"complete", "finished_no_done"})


@dataclass(frozen=True, slots=True)
class LastError:
    error_class: str
    status: int | None
    detail: str | None  # e.g. "reset after 6 chunks"
    at: float


class LastErrors:
    """Each target's ``LastError``; feed it ``RequestFinished`` events."""

    __slots__ = ("_by_target", "_fleet")

    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet
        self._by_target: dict[str, tuple[TargetRuntime, LastError]] = {}

    def of(self, runtime: TargetRuntime) -> LastError | None:
        """``runtime``'s last error; None also when it was its predecessor's (reloaded)."""
        entry = self._by_target.get(runtime.config.id)
        return entry[1] if entry is not None and entry[0] is runtime else None

    def __call__(self, event: object) -> None:
        if not isinstance(event, RequestFinished) or event.at is None:
            return
        record, at = event.record, event.at
        for attempt in record.attempts:
            if attempt.error_class != "ok" and attempt.error_class not in CAUSED_BY_CLIENT:
                self._note(attempt.target, LastError(attempt.error_class, attempt.status, None, at))
        for segment in record.segments:
            if segment.ended not in _SEGMENT_OK:
                detail = f"{segment.ended} after {segment.chunks} chunks"
                self._note(
                    segment.target, LastError(ErrorClass.INTERRUPTED_STREAM.value, None, detail, at)
                )

    def _note(self, target_id: str, error: LastError) -> None:
        runtime = self._fleet.targets.get(target_id)
        if runtime is not None:  # gone: a reload removed it while the request ran
            self._by_target[target_id] = (runtime, error)
