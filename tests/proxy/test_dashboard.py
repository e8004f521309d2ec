"""The Grafana dashboard and the Prometheus config: well-formed, accepted by promtool, alerts
that fire when they should, and every dashboard query answered by a real Prometheus that
scraped a real sidestep."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
from contextlib import suppress
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from openai import AsyncOpenAI

from proxy.cli.simulator import Behaviour, canonical_text
from proxy.config import Config
from proxy.http.app import make_app
from tests.clock import FakeClock
from tests.conftest import target
from tests.fakes import FakeUpstream, Reply, chat_frames
from tests.prom import PrometheusServer, Tools, tools
from tests.proxy.test_metrics import (
    PROMPT,
    SECTIONS,
    WORDS,
    ask,
    drive_scenario,
    samples,
    scenario_targets,
    scenario_upstreams,
    scrape,
    stream_text,
)

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "grafana" / "sidestep.json"
DEPLOY = ROOT / "deploy" / "prometheus"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# Grafana's built-in interval variables, as Grafana would set them for a 1 s scrape interval
BUILTINS = {"$__rate_interval": "15s", "$__interval": "1s", "$__range": "5m"}
SCRAPE_INTERVAL = "1s"
CONTRACT = (
    "sidestep_requests_total",
    "sidestep_hedges_total",
    "sidestep_stream_events_dropped_total",
    "sidestep_request_duration_seconds",
    "sidestep_ttft_seconds",
    "sidestep_upstream_attempts_total",
    "sidestep_failovers_total",
    "sidestep_stream_resumes_total",
    "sidestep_breaker_state",
    "sidestep_breaker_transitions_total",
    "sidestep_cooldown_remaining_seconds",
    "sidestep_in_flight",
    "sidestep_queue_depth",
    "sidestep_admission_rejections_total",
    "sidestep_tokens_total",
    "sidestep_ratelimit_remaining",
    "sidestep_config_reloads_total",
    "sidestep_config_last_reload_timestamp_seconds",
    "sidestep_build_info",
)


HEDGE_AFTER_S = 0.2
WAIT_S = 10.0  # wall-clock bound on waits for real I/O


async def dashboard_upstreams(upstream: Any) -> dict[str, FakeUpstream]:
    """The metrics scenario's upstreams and ``slow``, whose streams are hedged."""
    ups = await scenario_upstreams(upstream)
    ups["slow"] = await upstream("slow", behaviour=Behaviour("slow", words=WORDS))
    return ups


def dashboard_targets(ups: dict[str, FakeUpstream]) -> list[dict[str, Any]]:
    """The metrics scenario's targets, and ``slow`` preferred for ``gpt-h`` with a hedge after
    ``HEDGE_AFTER_S`` (``steady`` serves ``gpt-h`` too: the twin)."""
    *misbehaving, steady = scenario_targets(ups)
    steady = {**steady, "models": [*steady["models"], "gpt-h"]}
    slow = target(
        ups["slow"], models=["gpt-h"], priority=100, timeouts={"hedge_after_s": HEDGE_AFTER_S}
    )
    return [*misbehaving, slow, steady]


async def drive_dashboard_scenario(
    client: Any, ups: dict[str, FakeUpstream], clock: FakeClock | None = None
) -> None:
    """The metrics scenario, then a hedge ``steady`` wins (``slow`` stalls before its first
    token) and a stream with an event the relay drops. ``clock``: a fake clock to move past
    the hedge delay (else real time passes it)."""
    await drive_scenario(client, ups)
    gate = asyncio.Event()
    stalled = Reply(frames=chat_frames(["late"]), gate_after=1, gate=gate)
    ups["slow"].queue(stalled)
    hedged = asyncio.create_task(stream_text(client, "gpt-h"))
    await asyncio.wait_for(stalled.gate_reached.wait(), WAIT_S)
    if clock is not None:
        clock.advance(HEDGE_AFTER_S * 2)
    assert await asyncio.wait_for(hedged, WAIT_S) == canonical_text(PROMPT, WORDS)
    gate.set()
    frames = chat_frames(["a", "b"])
    ups["steady"].queue(Reply(frames=[frames[0], b"just some text\n\n", *frames[1:]]))
    assert await stream_text(client, "gpt-d") == "ab"


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def queries(dash: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every query of every panel."""
    return [(p["title"], t["expr"]) for p in dash["panels"] for t in p.get("targets", [])]


def promql(expr: str, dash: dict[str, Any]) -> str:
    """``expr`` with Grafana's variables replaced as Grafana would (``All`` for ours)."""
    subs = dict(BUILTINS)
    for var in dash["templating"]["list"]:
        if var["type"] != "datasource":
            subs["${" + var["name"] + "}"] = subs["$" + var["name"]] = var["allValue"]
    for name in sorted(subs, key=len, reverse=True):
        expr = expr.replace(name, subs[name])
    assert "$" not in expr, expr
    return expr


def need_tools() -> Tools:
    found = tools()
    if isinstance(found, str):
        pytest.skip(found)
    return found


def promtool(*args: str, cwd: Path) -> str:
    done = subprocess.run(
        [need_tools().promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def deploy_copy(tmp_path: Path) -> Path:
    """deploy/prometheus copied to a fresh directory (rule paths resolve beside the config)."""
    home = tmp_path / "deploy"
    shutil.copytree(DEPLOY, home)
    return home


# -- the dashboard file ---------------------------------------------------------------------


def test_dashboard_panels_all_query_the_datasource_variable() -> None:
    """Every panel has the ``${datasource}`` Prometheus datasource and at least one expr."""
    dash = dashboard()
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert dash["uid"] and dash["title"] and dash["panels"]
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    for panel in dash["panels"]:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for query in panel["targets"]:
            assert query["expr"].strip(), panel["title"]
            assert query["datasource"] == DATASOURCE, panel["title"]
            assert "${datasource}" not in query["expr"]
    for var in variables.values():
        if var["type"] == "query":
            assert var["datasource"] == DATASOURCE


async def test_dashboard_uses_every_contract_metric_and_only_exported_ones(
    upstream: Any, gateway: Any, clock: FakeClock
) -> None:
    """The dashboard charts every contract metric and names no metric /metrics lacks."""
    exprs = " ".join(expr for _, expr in queries(dashboard()))
    for name in CONTRACT:
        assert name in exprs, f"{name} is on no panel"
    ups = await dashboard_upstreams(upstream)
    gw = await gateway(dashboard_targets(ups), **SECTIONS)
    await drive_dashboard_scenario(gw.openai(), ups, clock)
    exported = set(samples((await scrape(gw.url("/metrics")))[1]))
    assert set(re.findall(r"\bsidestep_[a-z_]+", exprs)) <= exported


# -- promtool -------------------------------------------------------------------------------


def test_promtool_accepts_the_prometheus_config_and_rules(tmp_path: Path) -> None:
    """``promtool check config`` (rule files included) and ``check rules`` pass."""
    home = deploy_copy(tmp_path)
    assert "1 rule files found" in promtool("check", "config", "prometheus.yml", cwd=home)
    promtool("check", "rules", "alerts.yml", cwd=home)
    scrape_config = yaml.safe_load((home / "prometheus.yml").read_text())["scrape_configs"]
    assert [(job["job_name"], job["static_configs"][0]["targets"]) for job in scrape_config] == [
        ("sidestep", ["sidestep:8787"])
    ]


GW = 'job="sidestep",instance="gw:8787"'


def _series(name: str, values: str, **labels: str) -> dict[str, str]:
    extra = "".join(f',{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{GW}{extra}}}", "values": values}


def _alert(at: str, name: str, *expected: dict[str, str]) -> dict[str, Any]:
    return {
        "eval_time": at,
        "alertname": name,
        "exp_alerts": [{"exp_labels": labels} for labels in expected],
    }


RULE_TESTS: list[dict[str, Any]] = [
    {  # target a: breaker open (and probing open again) from minute 2; b stays closed
        "interval": "1m",
        "input_series": [
            _series("sidestep_breaker_state", "0 0 2 2 1 2 2 2 1 2 2 2", target="a"),
            _series("sidestep_breaker_state", "0x11", target="b"),
            _series("sidestep_cooldown_remaining_seconds", "0x11", target="a"),
            _series("sidestep_cooldown_remaining_seconds", "0x11", target="b"),
        ],
        "alert_rule_test": [
            _alert("5m", "SidestepBreakerOpen"),
            _alert(
                "8m",
                "SidestepBreakerOpen",
                {"severity": "warning", "job": "sidestep", "instance": "gw:8787", "target": "a"},
            ),
            _alert("8m", "SidestepAllTargetsUnavailable"),
        ],
    },
    {  # a open throughout; b cooling down from minute 3: every target out from minute 3
        "interval": "1m",
        "input_series": [
            _series("sidestep_breaker_state", "2x11", target="a"),
            _series("sidestep_breaker_state", "0x11", target="b"),
            _series("sidestep_cooldown_remaining_seconds", "0x11", target="a"),
            _series("sidestep_cooldown_remaining_seconds", "0 0 0 30x8", target="b"),
        ],
        "alert_rule_test": [
            _alert("4m", "SidestepAllTargetsUnavailable"),
            _alert(
                "6m",
                "SidestepAllTargetsUnavailable",
                {"severity": "critical", "job": "sidestep", "instance": "gw:8787"},
            ),
        ],
    },
    # 25 % of requests fail (client errors count as served); the config reload breaks at
    # minute 2; the scrape at minute 3
    {
        "interval": "1m",
        "input_series": [
            _series("sidestep_requests_total", "0+70x30", target="a", outcome="ok"),
            _series("sidestep_requests_total", "0+30x30", target="a", outcome="upstream_error"),
            _series("sidestep_requests_total", "0+10x30", target="none", outcome="rejected"),
            _series("sidestep_requests_total", "0+50x30", target="a", outcome="client_error"),
            _series("sidestep_config_last_reload_successful", "1 1 0x28"),
            {"series": f"up{{{GW}}}", "values": "1 1 1 0x27"},
        ],
        "alert_rule_test": [
            _alert("8m", "SidestepHighErrorRatio"),
            _alert(
                "20m",
                "SidestepHighErrorRatio",
                {"severity": "warning", "job": "sidestep", "instance": "gw:8787"},
            ),
            _alert("2m", "SidestepConfigReloadFailing"),
            _alert(
                "5m",
                "SidestepConfigReloadFailing",
                {"severity": "warning", "job": "sidestep", "instance": "gw:8787"},
            ),
            _alert("4m", "SidestepDown"),
            _alert(
                "6m",
                "SidestepDown",
                {"severity": "critical", "job": "sidestep", "instance": "gw:8787"},
            ),
        ],
    },
]


def test_alert_rules_fire_when_they_should_and_not_before(tmp_path: Path) -> None:
    """``promtool test rules``: each alert fires on synthetic series only once its condition
    has held for its window, with the labels a router needs."""
    home = deploy_copy(tmp_path)
    # promtool compares annotations too; their templates are checked by `check rules`, so
    # the unit test looks at expressions, durations and labels only
    rules = yaml.safe_load((home / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (home / "alerts.yml").write_text(yaml.safe_dump(rules))
    spec = {"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": RULE_TESTS}
    (home / "alerts_test.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    promtool("test", "rules", "alerts_test.yml", cwd=home)


# -- a real Prometheus scraping a real sidestep ---------------------------------------------


def prometheus_config(home: Path, sidestep: str) -> Path:
    """deploy/prometheus/prometheus.yml scraping ``sidestep`` every second."""
    config = yaml.safe_load((home / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = SCRAPE_INTERVAL
    config["global"]["evaluation_interval"] = SCRAPE_INTERVAL
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [sidestep]}]
    path = home / "prometheus-test.yml"
    path.write_text(yaml.safe_dump(config))
    return path


async def keep_traffic(client: Any) -> None:
    """Requests and streams to ``steady`` until cancelled, so rates move between scrapes."""
    while True:
        await ask(client, "gpt-d")
        await stream_text(client, "gpt-d")
        await asyncio.sleep(0.1)


async def start_sidestep(config: Config) -> tuple[web.AppRunner, int]:
    """The gateway on a real loopback port, on the system clock."""
    runner = web.AppRunner(make_app(config))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port: int = runner.addresses[0][1]
    return runner, port


async def test_every_dashboard_query_returns_data_from_a_real_prometheus(
    upstream: Any, tmp_path: Path
) -> None:
    """Prometheus scrapes sidestep after failovers, a breaker opening, a stream resume, a
    hedge and a dropped event; every query of every panel returns at least one series."""
    found = need_tools()
    dash = dashboard()
    ups = await dashboard_upstreams(upstream)
    runner, port = await start_sidestep(
        Config.model_validate({"targets": dashboard_targets(ups), **SECTIONS})
    )
    client = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
    home = deploy_copy(tmp_path)
    prom = PrometheusServer(
        found.prometheus, prometheus_config(home, f"127.0.0.1:{port}"), tmp_path
    )
    try:
        await drive_dashboard_scenario(client, ups)
        async with aiohttp.ClientSession() as http:
            await prom.start(http)
            traffic = asyncio.create_task(keep_traffic(client))
            try:
                await prom.wait_for(lambda: _scraped(prom, http, 3), 30, "three scrapes")
            finally:
                traffic.cancel()
                with suppress(asyncio.CancelledError):
                    await traffic
            empty = [
                (title, expr)
                for title, expr in queries(dash)
                if not await prom.query(http, promql(expr, dash))
            ]
            assert not empty, f"panels without data: {empty}"
            breakers = await prom.query(http, "max by (target) (sidestep_breaker_state)")
            assert {r["metric"]["target"]: r["value"][1] for r in breakers}["flaky"] == "2"
            rules = (await prom.api(http, "/api/v1/rules"))["data"]["groups"]
            loaded = {r["name"]: r["health"] for g in rules for r in g["rules"]}
            assert "SidestepBreakerOpen" in loaded and set(loaded.values()) == {"ok"}
    finally:
        prom.stop()
        await client.close()
        await runner.cleanup()


async def _scraped(prom: PrometheusServer, http: aiohttp.ClientSession, times: int) -> bool:
    """Prometheus has scraped sidestep successfully at least ``times`` times."""
    result = await prom.query(http, 'sum_over_time(up{job="sidestep"}[1m])')
    return bool(result) and float(result[0]["value"][1]) >= times
