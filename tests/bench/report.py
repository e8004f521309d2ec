"""Turning raw runs into the results: medians over rounds, ratios within each round, the
issue's targets, and the JSON and Markdown files.

Absolute numbers drift on shared machines, so every comparison is made inside one round
(sidestep against direct, or against the bare pass-through, measured minutes apart at
most) and the median of those per-round figures is reported.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

MODES = ("direct", "bare", "sidestep")
MEDIANS = (
    "rps",
    "lat_p50_ms",
    "lat_p99_ms",
    "ttft_p50_ms",
    "ttft_p99_ms",
    "chunks_per_s",
    "cpu_per_req_us",
    "cpu_per_chunk_us",
    "others_cpu_pct",
)
TIMES = "\u00d7"  # the multiplication sign, written as an escape (ruff RUF001 flags it)
FLAT_TOLERANCE = 1.10  # last window vs first: beyond this the per-chunk cost is growing

Run = dict[str, Any]  # {"round", "workload", "mode", "result"}
Summary = dict[str, dict[str, dict[str, Any]]]  # workload -> mode -> figures


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _per_round(runs: list[Run], workload: str) -> dict[int, dict[str, dict[str, Any]]]:
    rounds: dict[int, dict[str, dict[str, Any]]] = {}
    for run in runs:
        if run["workload"] == workload:
            rounds.setdefault(run["round"], {})[run["mode"]] = run["result"]
    return rounds


def _compare(
    rounds: dict[int, dict[str, dict[str, Any]]],
    mode: str,
    base: str,
    key: str,
    op: Callable[[float, float], float | None],
) -> float | None:
    """Median over rounds of ``op(mode's key, base's key)`` within each round."""
    values = []
    for results in rounds.values():
        a, b = results.get(mode, {}).get(key), results.get(base, {}).get(key)
        if a is not None and b is not None:
            values.append(op(a, b))
    return median(values)


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _minus(a: float, b: float) -> float:
    return a - b


def summarize(runs: list[Run]) -> Summary:
    """Per workload and path: medians over rounds, summed errors, per-round comparisons."""
    summary: Summary = {}
    for workload in dict.fromkeys(run["workload"] for run in runs):
        rounds = _per_round(runs, workload)
        summary[workload] = {}
        for mode in MODES:
            results = [r[mode] for r in rounds.values() if mode in r]
            if not results:
                continue
            figures: dict[str, Any] = {k: median(r.get(k) for r in results) for k in MEDIANS}
            # RSS never shrinks much once grown, so only the first round says what *this*
            # workload (after the ones before it) needed; later rounds repeat the peak.
            figures["rss_max_mib"] = results[0].get("rss_max_mib")
            figures["requests"] = sum(r["requests"] for r in results)
            figures["errors"] = sum(r["errors"] for r in results)
            figures["error_samples"] = sorted({e for r in results for e in r["error_samples"]})
            figures["rps_x_direct"] = _compare(rounds, mode, "direct", "rps", _ratio)
            figures["chunks_x_direct"] = _compare(rounds, mode, "direct", "chunks_per_s", _ratio)
            figures["lat_added_ms"] = _compare(rounds, mode, "direct", "lat_p50_ms", _minus)
            figures["ttft_added_ms"] = _compare(rounds, mode, "direct", "ttft_p50_ms", _minus)
            figures["cpu_req_x_bare"] = _compare(rounds, mode, "bare", "cpu_per_req_us", _ratio)
            figures["flatness"] = _flatness(results)
            summary[workload][mode] = figures
    return summary


def _flatness(results: list[dict[str, Any]]) -> dict[str, float | None] | None:
    """First and last window of a long stream, µs a chunk, from the round with the least
    other load: another process's busy phase during part of one stream would look like a
    trend, and no median over rounds removes it."""
    rounds = [r for r in results if len([w for w in r.get("windows") or [] if w["chunks"]]) >= 2]
    if not rounds:
        return None
    quietest = min(rounds, key=lambda r: r.get("others_cpu_pct") or 0.0)
    wins = [w for w in quietest["windows"] if w["chunks"]]
    return {
        "first_cpu_us": wins[0]["cpu_us"],
        "last_cpu_us": wins[-1]["cpu_us"],
        "first_wall_us": wins[0]["wall_us"],
        "last_wall_us": wins[-1]["wall_us"],
        "others_cpu_pct": quietest.get("others_cpu_pct"),
    }


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    goal: str
    sidestep: str
    bare: str
    met: bool | None  # None: not measured in this run


def _get(summary: Summary, workload: str, mode: str, key: str) -> Any:
    return summary.get(workload, {}).get(mode, {}).get(key)


def _at_most(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def _at_least(value: float | None, limit: float) -> bool | None:
    return None if value is None else value >= limit


def _fmt(value: float | None, spec: str, unit: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{unit}"


def targets(summary: Summary, idle_mib: dict[str, float | None]) -> list[Target]:
    """The issue's targets, each with sidestep's figure and the bare pass-through's."""

    def both(workload: str, key: str) -> tuple[Any, Any]:
        return _get(summary, workload, "sidestep", key), _get(summary, workload, "bare", key)

    cpu_s, cpu_b = both("plain-c32", "cpu_per_req_us")
    cpu_x, _ = both("plain-c32", "cpu_req_x_bare")
    rps_s, rps_b = both("plain-c32", "rps_x_direct")
    lat_s, lat_b = both("plain-c1", "lat_added_ms")
    chunk_s, chunk_b = both("stream-g20-c32", "cpu_per_chunk_us")
    cps_s, cps_b = both("stream-g0-c32", "chunks_x_direct")
    ttft_s, ttft_b = both("stream-g20-c4", "ttft_added_ms")
    rss_s, rss_b = both("slow-1000", "rss_max_mib")
    flat_s, flat_b = both("long-20k", "flatness")
    return [
        Target(
            "CPU per non-streaming request (plain-c32)",
            f"≤ 1.2{TIMES} bare",
            f"{_fmt(cpu_s, '.0f', ' µs')} = {_fmt(cpu_x, '.2f', TIMES)} bare",
            _fmt(cpu_b, ".0f", " µs"),
            _at_most(cpu_x, 1.2),
        ),
        Target(
            f"non-streaming throughput at c32, {TIMES} direct (plain-c32)",
            "≥ 0.30",
            _fmt(rps_s, ".2f"),
            _fmt(rps_b, ".2f"),
            _at_least(rps_s, 0.30),
        ),
        Target(
            "added p50 latency at c1 (plain-c1)",
            "≤ 0.7 ms",
            _fmt(lat_s, ".2f", " ms"),
            _fmt(lat_b, ".2f", " ms"),
            _at_most(lat_s, 0.7),
        ),
        Target(
            "CPU per relayed chunk, stitch buffer on (stream-g20-c32)",
            "≤ 20 µs",
            _fmt(chunk_s, ".1f", " µs"),
            _fmt(chunk_b, ".1f", " µs"),
            _at_most(chunk_s, 20.0),
        ),
        Target(
            f"streaming chunks/s at 0 ms gap, {TIMES} direct (stream-g0-c32)",
            "≥ 0.7",
            _fmt(cps_s, ".2f"),
            _fmt(cps_b, ".2f"),
            _at_least(cps_s, 0.7),
        ),
        Target(
            "added TTFT p50, 4 streams, 20 ms gap (stream-g20-c4)",
            "≤ 1 ms",
            _fmt(ttft_s, ".2f", " ms"),
            _fmt(ttft_b, ".2f", " ms"),
            _at_most(ttft_s, 1.0),
        ),
        Target(
            "idle RSS",
            "≤ 60 MiB",
            _fmt(idle_mib.get("sidestep"), ".1f", " MiB"),
            _fmt(idle_mib.get("bare"), ".1f", " MiB"),
            _at_most(idle_mib.get("sidestep"), 60.0),
        ),
        Target(
            "RSS with 1,000 open streams (slow-1000)",
            "≤ 200 MiB",
            _fmt(rss_s, ".1f", " MiB"),
            _fmt(rss_b, ".1f", " MiB"),
            _at_most(rss_s, 200.0),
        ),
        Target(
            "CPU per chunk, first → last 1,000 chunks (long-20k)",
            "last ≤ first (+10 % noise)",
            _flat_text(flat_s),
            _flat_text(flat_b),
            _is_flat(flat_s),
        ),
    ]


def _flat_text(flat: dict[str, float | None] | None) -> str:
    if not flat:
        return "—"
    return f"{_fmt(flat['first_cpu_us'], '.1f')} → {_fmt(flat['last_cpu_us'], '.1f')} µs"


def _is_flat(flat: dict[str, float | None] | None) -> bool | None:
    if not flat or flat["first_cpu_us"] is None or flat["last_cpu_us"] is None:
        return None
    return flat["last_cpu_us"] <= flat["first_cpu_us"] * FLAT_TOLERANCE


COLUMNS = (
    "workload",
    "path",
    "req/s",
    f"{TIMES} direct",
    "p50 ms",
    "p99 ms",
    "TTFC p50 ms",
    "chunks/s",
    f"{TIMES} direct",
    "proxy CPU/req µs",
    "proxy CPU/chunk µs",
    "proxy RSS max MiB (round 1)",
    "errors",
    "others %",
)


def _row(workload: str, mode: str, f: dict[str, Any]) -> str:
    cells = (
        workload,
        mode,
        _fmt(f["rps"], ",.0f"),
        _fmt(f["rps_x_direct"], ".2f"),
        _fmt(f["lat_p50_ms"], ".2f"),
        _fmt(f["lat_p99_ms"], ".2f"),
        _fmt(f["ttft_p50_ms"], ".2f"),
        _fmt(f["chunks_per_s"], ",.0f"),
        _fmt(f["chunks_x_direct"], ".2f"),
        _fmt(f["cpu_per_req_us"], ",.0f"),
        _fmt(f["cpu_per_chunk_us"], ".1f"),
        _fmt(f["rss_max_mib"], ".1f"),
        str(f["errors"]),
        _fmt(f["others_cpu_pct"], ".0f"),
    )
    return "| " + " | ".join(cells) + " |"


def markdown(
    summary: Summary,
    target_list: list[Target],
    meta: dict[str, Any],
    about: dict[str, str] | None = None,
) -> str:
    """The results table, the targets table and how they were measured."""
    lines = [
        f"## sidestep benchmark — {meta['date']}",
        "",
        f"`{meta['command']}` · {meta['rounds']} round(s), medians; ratios within each round "
        f"· {meta['machine']} · {meta['layout']} · sidestep {meta['commit']}",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    lines += [_row(w, m, f) for w, modes in summary.items() for m, f in modes.items()]
    lines += [
        "",
        "| target | goal | sidestep | bare pass-through (floor) | met |",
        "|---|---|---|---|---|",
    ]
    for t in target_list:
        met = "not run" if t.met is None else ("yes" if t.met else "**no**")
        lines.append(f"| {t.name} | {t.goal} | {t.sidestep} | {t.bare} | {met} |")
    total = sum(f["errors"] for modes in summary.values() for f in modes.values())
    lines += ["", f"Total errors: {total} (every answer compared byte-for-byte with the mock's)."]
    lines += [""] + [f"- {line}" for line in meta.get("notes", [])]
    if about:
        lines += ["", "Workloads: " + "; ".join(f"`{k}` {v}" for k, v in about.items() if v) + "."]
    return "\n".join(lines) + "\n"


def write(out: Path, doc: dict[str, Any], text: str) -> tuple[Path, Path]:
    """``bench-<stamp>.json`` and ``.md`` in ``out``, copied to ``latest.json``/``latest.md``."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = doc["meta"]["stamp"]
    data = orjson.dumps(doc, option=orjson.OPT_INDENT_2)
    json_path, md_path = out / f"bench-{stamp}.json", out / f"bench-{stamp}.md"
    for path, content in ((json_path, data), (out / "latest.json", data)):
        path.write_bytes(content)
    for path in (md_path, out / "latest.md"):
        path.write_text(text)
    return json_path, md_path
