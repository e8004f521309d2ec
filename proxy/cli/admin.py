"""Operator commands that talk to a running gateway's admin API.

``sidestep status | pause | resume | drain | reset | disable | enable | reload | events |
explain``. The gateway is found by ``proxy.cli.locate`` (``--url``, ``SIDESTEP_URL``, the
config's ``listen``, never a silent fallback; the ``/v1`` URL that ``serve`` prints works
too); the token from ``--token``, else ``SIDESTEP_ADMIN_TOKEN``, else the config's
``admin.token``. Requests never go through
``HTTP(S)_PROXY``: they carry the admin token.

Exit codes a script can rely on: 0 done; 1 the gateway refused (unknown target, invalid
config on reload…); 3 the gateway could not be reached; 4 authentication failed.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from proxy.cli.locate import NotLocated, Via, locate, mismatch

EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_AUTH = 0, 1, 3, 4
TARGET_ACTIONS = ("pause", "resume", "drain", "reset", "disable", "enable")


class AdminError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class AdminClient:
    def __init__(self, url: str, token: str | None, timeout_s: float = 10.0) -> None:
        # the URL ``serve`` prints is the client base URL, ending in /v1: accept it too
        self.url = url.rstrip("/").removesuffix("/v1")
        self.token = token
        self.timeout_s = timeout_s
        # Never through HTTP(S)_PROXY: the gateway is local, and the request carries the
        # admin token, which has no business reaching a proxy.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _request(self, method: str, path: str, body: object = None) -> urllib.request.Request:
        data = None if body is None else json.dumps(body).encode()
        if data is None and method != "GET":
            data = b""  # a body-less POST still says Content-Length: 0
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            # the gateway refuses a state change without it (what a browser form cannot send)
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        return req

    def _open(self, req: urllib.request.Request, timeout_s: float | None) -> Any:
        try:
            return self._opener.open(req, timeout=timeout_s)
        except urllib.error.HTTPError as exc:
            raise _refusal(exc) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: BaseException) -> AdminError:
        return AdminError(EXIT_UNREACHABLE, f"cannot reach sidestep at {self.url}: {_reason(exc)}")

    def call(self, method: str, path: str, body: object = None) -> Any:
        with self._open(self._request(method, path, body), self.timeout_s) as resp:
            try:
                raw = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                raise self._unreachable(exc) from None
        try:
            return json.loads(raw or b"null")
        except ValueError:
            message = f"{self.url} answered with something other than JSON: is it sidestep?"
            raise AdminError(EXIT_REFUSED, message) from None

    def stream(self, path: str) -> Iterator[bytes]:
        with self._open(self._request("GET", path), None) as resp:
            try:
                yield from resp
            except (OSError, http.client.HTTPException) as exc:
                raise self._unreachable(exc) from None


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or exc)


def _refusal(exc: urllib.error.HTTPError) -> AdminError:
    try:
        message = json.loads(exc.read())["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = exc.reason
    if exc.code == 401:
        hint = " (pass --token, or set SIDESTEP_ADMIN_TOKEN or admin.token in --config)"
        return AdminError(EXIT_AUTH, f"sidestep answered 401: {message}{hint}")
    code = EXIT_AUTH if exc.code == 403 else EXIT_REFUSED
    return AdminError(code, f"sidestep answered {exc.code}: {message}")


def client_from(args: argparse.Namespace) -> AdminClient:
    """A client for the gateway ``proxy.cli.locate`` names; one found through the config is
    first asked which file it was started from, and refused when that is another file."""
    try:
        located = locate(args.url, args.token, args.config)
    except NotLocated as exc:
        raise AdminError(EXIT_REFUSED, str(exc)) from None
    client = AdminClient(located.url, located.token)
    if located.via is Via.CONFIG:
        served = client.call("GET", "/admin/status")
        problem = mismatch(located, served.get("config_path") if isinstance(served, dict) else None)
        if problem is not None:
            raise AdminError(EXIT_REFUSED, problem)
    return client


def _when(unix: float | None) -> str:
    return "-" if unix is None else datetime.fromtimestamp(unix, UTC).strftime("%H:%M:%S")


def cmd_status(args: argparse.Namespace) -> int:
    data = client_from(args).call("GET", "/admin/status")
    if args.json:
        print(json.dumps(data, indent=2))
        return EXIT_OK
    reload_info = data.get("reload") or {}
    print(
        f"sidestep {data['version']}  up {data['uptime_s']:.0f}s"
        f"  config {data.get('config') or '(environment)'}"
        f"  last reload: {reload_info.get('result', 'none')}"
    )
    print(f"in flight {data['in_flight']}  queued {data['queued']}")
    rows = [("TARGET", "STATE", "IN-FLIGHT", "HEALTH", "LATENCY", "USAGE rpm/tpm", "LAST ERROR")]
    for t in data["targets"]:
        state = t["state"] + (
            f" until {_when(t['cooling_down_until'])}" if t.get("cooling_down_until") else ""
        )
        latency = "-" if t["latency_ewma_s"] is None else f"{t['latency_ewma_s'] * 1000:.0f} ms"
        usage = ", ".join(f"{u.get('rpm') or 0:g}/{u.get('tpm') or 0:g}" for u in t["usage"])
        err = _last_error(t.get("last_error"))
        rows.append(
            (t["id"], state, str(t["in_flight"]), f"{t['health']:.2f}", latency, usage, err)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return EXIT_OK


def _last_error(last: dict[str, Any] | None) -> str:
    """``rate_limited 429 at 12:00:03`` / ``interrupted_stream (reset after 6 chunks) at …``."""
    if not last:
        return "-"
    status = f" {last['status']}" if last.get("status") else ""
    detail = f" ({last['detail']})" if last.get("detail") else ""
    return f"{last['class']}{status}{detail} at {_when(last['at'])}"


def _segment(value: str) -> str:
    """``value`` as one URL path segment (a typo with a space or slash stays a 404)."""
    return urllib.parse.quote(value, safe="")


def cmd_target(args: argparse.Namespace) -> int:
    path = f"/admin/targets/{_segment(args.target)}/{args.command}"
    data = client_from(args).call("POST", path)
    print(f"{data['id']}: {data['state']} (operator: {data['operator']})")
    return EXIT_OK


_DIFF_LABELS = {
    "added": "added",
    "removed": "removed",
    "changed": "changed",
    "sections_changed": "sections changed",
}


def cmd_reload(args: argparse.Namespace) -> int:
    try:
        data = client_from(args).call("POST", "/admin/reload")
    except AdminError as exc:
        if exc.code == EXIT_REFUSED:
            message = f"reload rejected, the running config is unchanged; {exc}"
            raise AdminError(exc.code, message) from None
        raise
    diff = data.get("diff", {})
    changes = [f"{label}: {', '.join(diff[k])}" for k, label in _DIFF_LABELS.items() if diff.get(k)]
    print("reloaded: " + ("; ".join(changes) if changes else "no effective change"))
    if diff.get("restart_required"):
        print(f"restart sidestep to apply: {', '.join(diff['restart_required'])}")
    return EXIT_OK


def cmd_events(args: argparse.Namespace) -> int:
    for line in client_from(args).stream("/admin/events"):
        if line.startswith(b"data: "):
            event = json.loads(line[6:])
            kind = event.pop("type", "event")
            at = _when(event.pop("at", None))
            detail = "  ".join(f"{k}={v}" for k, v in event.items() if v is not None)
            print(f"{at}  {kind:<22} {detail}", flush=True)
    return EXIT_OK


def cmd_explain(args: argparse.Namespace) -> int:
    record = client_from(args).call("GET", f"/admin/requests/{_segment(args.request_id)}")
    print(explain(record))
    return EXIT_OK


def explain(record: dict[str, Any]) -> str:
    """Why a request went where it went, in a few lines."""
    split = [(w["target"], w["chars"]) for w in record.get("written_by", [])]
    served = "→".join(t for t, _ in split) or record.get("served_by") or "nobody"
    lines = [
        f"{record['request_id']}  {record['endpoint']}  model {record['client_model']}"
        f"  -> {record['outcome']} ({record.get('status')})"
        f" served by {served}"
        f"  attempts {len(record.get('attempts', []))}"
        f"  failovers {record['failovers']}  resumes {record['resumes']}"
    ]
    if len(split) > 1:
        total = sum(n for _, n in split) or 1
        parts = ", ".join(f"{t} {n} chars ({100 * n / total:.0f}%)" for t, n in split)
        lines.append(f"  written by: {parts}  (x-sidestep-target names the first)")
    for i, decision in enumerate(record.get("decisions", []), 1):
        ranked = ", ".join(f"{r['lane']} {r['score']:.3f}" for r in decision.get("ranked", []))
        lines.append(
            f"  decision {i}: chose {decision.get('chosen') or 'nothing'}  ranked [{ranked}]"
        )
        if decision.get("note"):
            lines.append(f"    {decision['note']}")
        for rej in decision.get("rejections", []):
            lines.append(f"    left out {rej['lane']}: {rej['reason']}")
    for a in record.get("attempts", []):
        lines.append(
            f"  attempt {a['target']}#{a['key_index']} ({a['model']}):"
            f" {a['error_class']} {a.get('status') or ''}"
        )
    for s in record.get("segments", []):
        lines.append(
            f"  segment {s['target']} ({s['model']})"
            f" chars {s['start_char']}-{s['end_char']}: {s['ended']}"
        )
    return "\n".join(lines)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--url",
        help="gateway base URL (default: SIDESTEP_URL, else the listen of a valid --config or"
        " ./sidestep.yaml, else http://127.0.0.1:8787 when there is no config)",
    )
    p.add_argument(
        "--token", help="admin token (default: SIDESTEP_ADMIN_TOKEN or the config's admin.token)"
    )
    p.add_argument("--config", "-c", help="read listen and admin.token from this config")


def register(sub: Any) -> None:
    status = sub.add_parser("status", help="show each target's state")
    _common(status)
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=_guarded(cmd_status))
    for action in TARGET_ACTIONS:
        p = sub.add_parser(action, help=f"{action} a target")
        _common(p)
        p.add_argument("target")
        p.set_defaults(func=_guarded(cmd_target))
    reload = sub.add_parser("reload", help="reload the gateway's config file now")
    _common(reload)
    reload.set_defaults(func=_guarded(cmd_reload))
    events = sub.add_parser("events", help="tail the live event stream")
    _common(events)
    events.set_defaults(func=_guarded(cmd_events))
    explain_p = sub.add_parser("explain", help="why a request went where it went")
    _common(explain_p)
    explain_p.add_argument("request_id")
    explain_p.set_defaults(func=_guarded(cmd_explain))


def _guarded(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except AdminError as exc:
            print(f"sidestep: {exc}", file=sys.stderr)
            return exc.code

    return run
