"""The NDJSON audit trail: one line per finished request, written off the loop, rotated."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from proxy.config import Config, ConfigError, parse_config
from proxy.config.audit import Audit
from proxy.lifecycle.record import AttemptRecord, RequestFinished, RequestRecord
from proxy.observe.audit import AuditFile, AuditTrail, audit_ctx
from proxy.observe.events import ConfigReloaded
from proxy.state.gateway import Gateway
from tests.clock import FakeClock
from tests.conftest import target
from tests.fakes import error

PROMPT = "PROMPT-TEXT-that-must-not-be-audited"


async def read_lines(path: Path, count: int, timeout_s: float = 5.0) -> list[bytes]:
    """The file's lines once it has ``count`` of them (the writer runs in a thread)."""
    async with asyncio.timeout(timeout_s):
        while True:
            lines = path.read_bytes().splitlines() if path.exists() else []
            if len(lines) >= count:
                return lines
            await asyncio.sleep(0.01)


def finished(request_id: str) -> RequestFinished:
    record = RequestRecord(request_id, "chat", "m", "s1", False, 1_800_000_000.0, outcome="ok")
    record.attempts.append(AttemptRecord("a", 0, "m", "ok", 200, 0.01))
    return RequestFinished(record)


def trail_at(path: Path, clock: FakeClock, *, max_queued: int = 100, **settings: Any) -> AuditTrail:
    audit = Audit(path=str(path), **settings)
    return AuditTrail(lambda: audit, clock, max_queued=max_queued)


async def test_line_holds_attempts_failover_decisions_and_no_text(
    upstream: Any, gateway: Any, tmp_path: Path
) -> None:
    """A failed-over request is one JSON line with each attempt, the decisions and usage."""
    a, b = await upstream("a"), await upstream("b")
    a.queue(error(500, "boom"))
    path = tmp_path / "audit.ndjson"
    gw = await gateway(
        [target(a, priority=10), target(b)],
        audit={"path": str(path)},
        routing={"retries_per_target": 0},
    )
    reply = await gw.openai().chat.completions.with_raw_response.create(
        model="m",
        messages=[{"role": "user", "content": PROMPT}],
        extra_headers={"x-sidestep-session": "s1"},
    )
    answer = reply.parse().choices[0].message.content
    (line,) = await read_lines(path, 1)
    doc = orjson.loads(line)
    assert doc["type"] == "request"
    assert doc["request_id"] == reply.headers["x-sidestep-request-id"]
    assert (doc["session"], doc["endpoint"], doc["model"]) == ("s1", "chat", "m")
    assert (doc["outcome"], doc["status"], doc["served_by"]) == ("ok", 200, "b")
    assert doc["failovers"] == 1 and doc["duration_s"] is not None
    attempts = [(x["target"], x["error_class"], x["status"]) for x in doc["attempts"]]
    assert attempts == [("a", "transient_server_failure", 500), ("b", "ok", 200)]
    assert [d["chosen"] for d in doc["decisions"]] == ["a#0", "b#0"]
    assert {"lane": "a#0", "reason": "failed_this_request", "until": None} in doc["decisions"][1][
        "excluded"
    ]
    assert doc["decisions"][0]["ranked"][0]["lane"] == "a#0"
    assert doc["usage"]["total_tokens"] > 0
    assert PROMPT.encode() not in line and answer.encode() not in line


async def test_file_rotates_to_dot_one_at_max_bytes(tmp_path: Path) -> None:
    """Past max_bytes the file moves to <path>.1 (replacing it) and a new one starts."""
    path = tmp_path / "audit.ndjson"
    sink = AuditFile()
    lines = [b"line-%d---\n" % i for i in range(1, 6)]  # 10 bytes each
    for line in lines:
        sink.write([line], str(path), 25, reopen=False)
    sink.close()
    assert Path(str(path) + ".1").read_bytes() == lines[2] + lines[3]
    assert path.read_bytes() == lines[4]


async def test_gateway_rotates_with_whole_lines(
    upstream: Any, gateway: Any, tmp_path: Path
) -> None:
    """Every line stays whole across rotations; the newest request is in the live file."""
    up = await upstream("a")
    path = tmp_path / "audit.ndjson"
    gw = await gateway([target(up)], audit={"path": str(path), "max_bytes": 1})
    ids = []
    for _ in range(3):
        reply = await gw.openai().chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": "x"}]
        )
        ids.append(reply.headers["x-sidestep-request-id"])
        await read_lines(path, 1)
    async with asyncio.timeout(5):
        while orjson.loads(path.read_bytes())["request_id"] != ids[2]:
            await asyncio.sleep(0.01)
    assert orjson.loads(Path(str(path) + ".1").read_bytes())["request_id"] == ids[1]


async def test_reopen_follows_an_external_rotation(tmp_path: Path) -> None:
    """After logrotate moves the file, a reload (SIGHUP) makes new lines go to a new file."""
    path = tmp_path / "audit.ndjson"
    trail = trail_at(path, FakeClock())
    trail.on_event(finished("req_1"))
    await trail.flush()
    path.rename(tmp_path / "moved.ndjson")
    trail.on_event(ConfigReloaded("ok", "sidestep.yaml", {}, 0.0))
    trail.on_event(finished("req_2"))
    await trail.flush()
    trail.file.close()
    assert orjson.loads((tmp_path / "moved.ndjson").read_bytes())["request_id"] == "req_1"
    assert orjson.loads(path.read_bytes())["request_id"] == "req_2"


async def test_full_queue_drops_oldest_and_marks_the_gap(tmp_path: Path) -> None:
    """A disk slower than traffic loses the oldest lines, counted, never unbounded memory."""
    path = tmp_path / "audit.ndjson"
    trail = trail_at(path, FakeClock(), max_queued=3)
    for i in range(1, 6):
        trail.on_event(finished(f"req_{i}"))
    await trail.flush()
    trail.file.close()
    docs = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert docs[0]["type"] == "audit_gap" and docs[0]["dropped"] == 2
    assert [d["request_id"] for d in docs[1:]] == ["req_3", "req_4", "req_5"]
    assert trail.dropped == 2


async def test_dash_writes_to_stdout(capsysbinary: Any) -> None:
    """``path: "-"`` sends the trail to stdout."""
    audit = Audit(path="-")
    trail = AuditTrail(lambda: audit, FakeClock(), max_queued=10)
    trail.on_event(finished("req_1"))
    await trail.flush()
    out = capsysbinary.readouterr().out
    assert orjson.loads(out)["request_id"] == "req_1"


async def test_lines_queued_at_shutdown_are_flushed(tmp_path: Path) -> None:
    """Requests that finish just before shutdown still reach the file."""
    path = tmp_path / "audit.ndjson"
    config = Config.model_validate(
        {
            "targets": [{"id": "a", "base_url": "http://127.0.0.1:9", "api_key": "k"}],
            "audit": {"path": str(path)},
        }
    )
    gw = Gateway.build(config, clock=FakeClock())
    lifetime = audit_ctx(gw)(None)  # type: ignore[arg-type]  # the ctx does not use the app
    await anext(lifetime)
    for i in range(50):
        gw.events.emit(finished(f"req_{i}"))
    await anext(lifetime, None)
    assert len(path.read_bytes().splitlines()) == 50


def test_include_content_is_refused_until_supported() -> None:
    """``include_content: true`` is an error naming the path, not a silent no-op."""
    text = "targets: [{id: a, base_url: 'http://x', api_key: k}]\naudit: {include_content: true}"
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="s.yaml", environ={})
    assert "audit.include_content: not supported yet" in str(info.value)


async def test_unwritable_path_fails_at_startup(tmp_path: Path) -> None:
    """An audit path in a missing directory stops the gateway from starting."""
    config = Config.model_validate(
        {
            "targets": [{"id": "a", "base_url": "http://127.0.0.1:9", "api_key": "k"}],
            "audit": {"path": str(tmp_path / "missing" / "audit.ndjson")},
        }
    )
    lifetime = audit_ctx(Gateway.build(config, clock=FakeClock()))(None)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        await anext(lifetime)
