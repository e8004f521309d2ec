"""Session commands over the admin API (``proxy.cli.admin`` finds the URL and token):

    sidestep sessions [SESSION] [--json]    list sessions, or show one with its history
    sidestep rollback SESSION               back to the parent branch (child kept)
    sidestep merge SESSION                  merge the session's branch into its parent
    sidestep pin SESSION TARGET / unpin SESSION
    sidestep decisions [--all]              blocked-by-tests decisions (open ones by default)
    sidestep decide DECISION isolate|skip

Exit codes as for the other admin commands; a refused or conflicting git action exits 1.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from proxy.cli.admin import EXIT_OK, _common, _guarded, client_from


def _when(unix: float | None) -> str:
    if unix is None:
        return "-"
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _path(sid: str) -> str:
    return "/admin/sessions/" + quote(sid, safe="")


def cmd_sessions(args: argparse.Namespace) -> int:
    client = client_from(args)
    if args.session:
        data = client.call("GET", _path(args.session))
        print(json.dumps(data, indent=2) if args.json else show(data))
        return EXIT_OK
    data = client.call("GET", "/admin/sessions")
    if args.json:
        print(json.dumps(data, indent=2))
        return EXIT_OK
    rows = [("SESSION", "TARGET", "PINNED", "BRANCH", "SWITCHES", "LAST SEEN")]
    for s in data["sessions"]:
        rows.append(
            (
                s["id"],
                s["current_target"] or "-",
                s["pinned_target"] or "-",
                s["branch"] or "-",
                str(s["switches"]),
                _when(s["last_seen"]),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def show(s: dict[str, Any]) -> str:
    """One session for people: state, lineage, then its history, oldest first."""
    lines = [
        f"session {s['id']}: on {s['current_target'] or '-'}"
        + (f" (pinned to {s['pinned_target']})" if s["pinned_target"] else ""),
        f"  lineage: {' -> '.join(s['lineage']) or '-'}"
        + (f"  in {s['repo']} ({s['mode']} mode)" if s["repo"] else ""),
    ]
    if s.get("open_decisions"):
        lines.append(f"  open decisions: {', '.join(s['open_decisions'])}")
    for e in s.get("history", []):
        branch = f"  {e['branch_from']} -> {e['branch']}" if e.get("branch") else ""
        commit = f"  commit {e['commit'][:12]}" if e.get("commit") else ""
        lines.append(
            f"  {_when(e['at'])}  {e['kind']:<8} {e['from_target'] or '-'} -> "
            f"{e['to_target'] or '-'} ({e['reason']}): {e['outcome']}{branch}{commit}"
            f"  tests {e['test_result']}" + (f"  [{e['detail']}]" if e.get("detail") else "")
        )
    return "\n".join(lines)


def _print_action(data: dict[str, Any]) -> None:
    line = f"{data['session']}: {data['action']} {data['outcome']}"
    if data.get("branch_from") and data.get("branch_to"):
        line += f" ({data['branch_from']} -> {data['branch_to']})"
    print(line)
    for path in data.get("conflicts") or ():
        print(f"  conflict: {path}")
    if data.get("detail"):
        print(f"  {data['detail']}")


def cmd_action(args: argparse.Namespace) -> int:
    client = client_from(args)
    _print_action(client.call("POST", f"{_path(args.session)}/{args.command}"))
    return EXIT_OK


def cmd_pin(args: argparse.Namespace) -> int:
    client = client_from(args)
    if args.command == "pin":
        data = client.call("POST", _path(args.session) + "/pin", {"target": args.target})
    else:
        data = client.call("POST", _path(args.session) + "/unpin", {})
    print(f"{data['id']}: pinned to {data['pinned_target'] or 'nothing'}")
    return EXIT_OK


def cmd_decisions(args: argparse.Namespace) -> int:
    query = "" if args.all else "?state=open"
    data = client_from(args).call("GET", "/admin/decisions" + query)
    for d in data["decisions"]:
        print(
            f"{d['id']}  {d['state']:<8} session {d['session']}  {d['from_target']} -> "
            f"{d['to_target']}  tests {d['test_result']}  would branch "
            f"{d['branch_from']} -> {d['branch_to']}  ({_when(d['created_at'])})"
        )
    return EXIT_OK


def cmd_decide(args: argparse.Namespace) -> int:
    path = "/admin/decisions/" + quote(args.decision, safe="")
    _print_action(client_from(args).call("POST", path, {"choice": args.choice}))
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser("sessions", help="list sessions, or show one with its history")
    _common(p)
    p.add_argument("session", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_guarded(cmd_sessions))
    for action, text in (
        ("rollback", "commit the session's work and go back to its parent branch"),
        ("merge", "commit the session's work and merge its branch into the parent"),
    ):
        p = sub.add_parser(action, help=text)
        _common(p)
        p.add_argument("session")
        p.set_defaults(func=_guarded(cmd_action))
    p = sub.add_parser("pin", help="keep a session on one target")
    _common(p)
    p.add_argument("session")
    p.add_argument("target")
    p.set_defaults(func=_guarded(cmd_pin))
    p = sub.add_parser("unpin", help="let a session's target follow routing again")
    _common(p)
    p.add_argument("session")
    p.set_defaults(func=_guarded(cmd_pin))
    p = sub.add_parser("decisions", help="decisions opened because tests failed")
    _common(p)
    p.add_argument("--all", action="store_true", help="answered ones too")
    p.set_defaults(func=_guarded(cmd_decisions))
    p = sub.add_parser("decide", help="answer a decision: isolate (branch anyway) or skip")
    _common(p)
    p.add_argument("decision")
    p.add_argument("choice", choices=("isolate", "skip"))
    p.set_defaults(func=_guarded(cmd_decide))
