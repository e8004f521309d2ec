"""The soak's summary table (and the JSON form of the same figures)."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

from tests.soak.faults import Fault
from tests.soak.outcome import Outcome
from tests.soak.run import SoakReport

MAX_LISTED = 10  # imperfect requests shown one by one


def summary(report: SoakReport) -> str:
    s, n = report.settings, sum(report.outcomes.values())
    rows = [
        ("requests", f"{n} ({sum(report.streams.values())} streaming)"),
        *((o.value, _share(report.outcomes[o], n, report.streams[o])) for o in Outcome),
        ("resumed streams", str(report.resumed)),
        *(
            [("replicas", f"{s.replicas} on one Redis, restarted {report.redis_restarts} times")]
            if s.replicas > 1
            else []
        ),
        ("upstream requests", _per_target(report)),
        ("faults injected", _faults(report.injected)),
        ("RSS before → after", f"{report.rss_before_mib:.1f} → {report.rss_after_mib:.1f} MiB"),
        ("duration", f"{report.duration_s:.1f} s ({n / max(report.duration_s, 1e-9):.0f} req/s)"),
        ("hang after", f"{report.hang_after_s:.1f} s"),
    ]
    head = (
        f"sidestep soak: seed {s.seed}, concurrency {s.concurrency}, {s.faulty_targets} faulty "
        f"+ {s.healthy_targets} healthy targets, fault rate {s.fault_rate:.0%}, "
        f"streams {s.stream_ratio:.0%}" + (f", config {s.config}" if s.config else "")
    )
    width = max(len(k) for k, _ in rows)
    lines = [head, "", *(f"  {k:<{width}}  {v}" for k, v in rows)]
    lines += _by_fault(report)
    lines += _imperfect(report)
    lines += ["", "PASS" if report.ok else "FAIL: corrupted answers, hangs or unclean errors"]
    return "\n".join(lines)


def _per_target(report: SoakReport) -> str:
    each = ", ".join(f"{name} {n}" for name, n in report.per_target.items())
    return f"{report.upstream_requests} ({each})"


def _share(count: int, total: int, streams: int) -> str:
    pct = 100.0 * count / total if total else 0.0
    return f"{count} ({pct:.1f} %; {streams} streaming)"


def _faults(injected: Counter[Fault]) -> str:
    total = sum(injected.values())
    parts = ", ".join(
        f"{f.value} {c}" for f, c in sorted(injected.items(), key=lambda x: x[0].value)
    )
    return f"{total}: {parts}" if total else "0"


def fault_name(fault: Fault, stream: bool) -> str:
    return f"{fault.value} ({'stream' if stream else 'plain'})"


def _by_fault(report: SoakReport) -> list[str]:
    """One row per fault kind: requests that met it, and how they ended."""
    if not report.by_fault:
        return []
    lines = [
        "",
        f"  {'fault (request kind)':<30} {'requests':>8}  "
        + "  ".join(f"{o.value:>13}" for o in Outcome),
    ]
    for fault, stream in itertools.product(Fault, (True, False)):
        seen = report.by_fault.get((fault, stream))
        if seen:
            cells = "  ".join(f"{seen[o]:>13}" for o in Outcome)
            name = fault_name(fault, stream)
            lines.append(f"  {name:<30} {sum(seen.values()):>8}  {cells}")
    return lines


def _imperfect(report: SoakReport) -> list[str]:
    if not report.failures:
        return []
    by_fault: Counter[str] = Counter()
    for result, met in report.failures:
        by_fault[
            f"{result.outcome.value} after {'+'.join(f.value for f in met) or 'no fault'}"
        ] += 1
    lines = ["", "not exact, by the faults the request met:"]
    lines += [f"  {count:5}  {what}" for what, count in by_fault.most_common()]
    lines += ["", f"first {min(MAX_LISTED, len(report.failures))} of them:"]
    for result, met in report.failures[:MAX_LISTED]:
        kind = "stream" if result.stream else "plain"
        faults = ",".join(f.value for f in met) or "-"
        lines.append(f"  {result.outcome.value:<13} {kind:<6} [{faults}] {result.detail[:160]}")
    return lines


def as_json(report: SoakReport) -> dict[str, Any]:
    return {
        "settings": {
            k: v if v is None or isinstance(v, int | float) else str(v)
            for k, v in vars_of(report).items()
        },
        "requests": sum(report.outcomes.values()),
        "outcomes": {o.value: report.outcomes[o] for o in Outcome},
        "stream_outcomes": {o.value: report.streams[o] for o in Outcome},
        "resumed": report.resumed,
        "redis_restarts": report.redis_restarts,
        "upstream_requests": report.upstream_requests,
        "per_target": report.per_target,
        "injected": {f.value: c for f, c in report.injected.items()},
        "by_fault": {
            fault_name(f, stream): {o.value: c for o, c in seen.items()}
            for (f, stream), seen in report.by_fault.items()
        },
        "rss_before_mib": round(report.rss_before_mib, 1),
        "rss_after_mib": round(report.rss_after_mib, 1),
        "duration_s": round(report.duration_s, 2),
        "ok": report.ok,
        "imperfect": [
            {
                "outcome": r.outcome.value,
                "stream": r.stream,
                "faults": [f.value for f in m],
                "detail": r.detail[:500],
            }
            for r, m in report.failures
        ],
    }


def vars_of(report: SoakReport) -> dict[str, Any]:
    s = report.settings
    return {name: getattr(s, name) for name in s.__slots__}
