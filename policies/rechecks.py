"""Rechecks of suspect lanes: a lane whose last outcome failed gets one real request now and
then to show whether it recovered, instead of either every request or none.

Suspect lanes are held back (``Exclusion.AWAITING_RECHECK``) only while a lane that is not
suspect can serve; otherwise they compete like any other. A held-back lane whose recheck is
due (``recheck_from + settings.recheck_interval_s ≤ now``) and whose priority is at least
that of the best-ranked lane is chosen instead, as a *recheck*: the highest priority such
lane (then rank order), returned with ``recheck=True``. The shell sends it one attempt
without same-lane retries; the lane's recheck timer keeps that to one in flight and one per
``routing.recheck_interval_s``.

Called by :func:`policies.routing.choose` on its ranked candidates.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from policies.settings import RoutingSettings

if TYPE_CHECKING:  # the records are routing's; this module only reads and copies them
    from policies.routing import LaneView, Scored

__all__ = ["due_at", "hold_back"]


def due_at(lane: LaneView, settings: RoutingSettings) -> float | None:
    """When the lane's next recheck is due (monotonic seconds); None while one is in flight."""
    if lane.recheck_from is None:
        return None
    return lane.recheck_from + settings.recheck_interval_s


def hold_back(
    ranked: list[Scored], settings: RoutingSettings, now: float
) -> tuple[list[Scored], list[Scored], str]:
    """Split ``ranked`` (best first) into the lanes that may serve, best first — a due
    recheck put in front, marked ``recheck=True`` — and the suspect lanes held back, with a
    note in words when a recheck was chosen (else "")."""
    trusted = [s for s in ranked if not s.lane.suspect]
    if len(trusted) == len(ranked):  # nothing suspect: the usual case
        return ranked, [], ""
    held = [s for s in ranked if s.lane.suspect] if trusted else []
    serving = trusted or ranked
    recheck = _recheck(held, serving[0].lane, settings, now) if held else None
    if recheck is None:
        return serving, held, ""
    held.remove(recheck)
    note = _note(recheck.lane, serving[0].lane, now)
    return [replace(recheck, lane=replace(recheck.lane, recheck=True)), *serving], held, note


def _recheck(
    held: list[Scored], best: LaneView, settings: RoutingSettings, now: float
) -> Scored | None:
    """The held-back lane to recheck now, if any (see the module docstring)."""
    due = [
        s
        for s in held
        if (at := due_at(s.lane, settings)) is not None
        and at <= now
        and s.lane.priority >= best.priority
    ]
    return max(due, key=lambda s: s.lane.priority, default=None)  # max keeps rank order on ties


def _note(lane: LaneView, best: LaneView, now: float) -> str:
    ago = "" if lane.failed_at is None else f" {now - lane.failed_at:.1f} s ago"
    return (
        f"recheck of {lane.target_id} ({lane.label}): its last attempt failed{ago}; "
        f"one request goes there instead of {best.label} to see whether it recovered"
    )
