"""Prometheus metrics: scripted traffic shows up in /metrics with the contract's names and
labels, label values stay bounded, no secret is exposed, and the format is negotiated."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import yaml
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from proxy import __version__
from proxy.cli.simulator import Behaviour, canonical_text
from proxy.state.reload import Reloader
from tests.conftest import target
from tests.fakes import FakeUpstream, Reply, error

PROMPT = "tell me a story"
WORDS = 20
OPENMETRICS = "application/openmetrics-text; version=1.0.0"

# Breakers open on the second failure in a row; one retry on the same target without backoff,
# no cooldown after a 500 — so a request that meets two 500s opens a breaker (a second request
# would not reach the target: a lane whose request failed gets only rechecks).
SECTIONS: dict[str, Any] = {
    "breaker": {"consecutive_failures": 2, "open_s": 300},
    "routing": {"retries_per_target": 1, "backoff": {"base_ms": 0}},
    "cooldown": {"server_error_s": 0},
}

COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-d",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12},
}
HEADROOM = {"x-ratelimit-remaining-requests": "99", "x-ratelimit-remaining-tokens": "5000"}

LABELS = {
    "sidestep_requests_total": {"target", "model", "endpoint", "outcome"},
    "sidestep_request_duration_seconds_bucket": {"target", "endpoint", "le"},
    "sidestep_request_duration_seconds_count": {"target", "endpoint"},
    "sidestep_ttft_seconds_bucket": {"target", "le"},
    "sidestep_ttft_seconds_count": {"target"},
    "sidestep_upstream_attempts_total": {"target", "error_class"},
    "sidestep_failovers_total": {"from_target", "to_target", "reason"},
    "sidestep_stream_resumes_total": {"target", "reason"},
    "sidestep_breaker_state": {"target"},
    "sidestep_breaker_transitions_total": {"target", "to"},
    "sidestep_cooldown_remaining_seconds": {"target"},
    "sidestep_cooldowns_total": {"target", "reason"},
    "sidestep_in_flight": {"target"},
    "sidestep_queue_depth": set(),
    "sidestep_admission_rejections_total": {"reason"},
    "sidestep_tokens_total": {"target", "model", "kind"},
    "sidestep_ratelimit_remaining": {"target", "kind"},
    "sidestep_config_reloads_total": {"result"},
    "sidestep_config_last_reload_timestamp_seconds": set(),
    "sidestep_config_last_reload_successful": set(),
    "sidestep_build_info": {"version"},
    "sidestep_state_backend_up": {"backend"},
}


# -- the scripted scenario (also driven against a real Prometheus in test_dashboard) --------


async def scenario_upstreams(upstream: Any) -> dict[str, FakeUpstream]:
    """``limited`` answers every call 429 (retry-after 60 s), ``flaky`` whatever is queued
    (500s), ``cutter`` cuts every stream after 3 chunks, ``steady`` always answers."""
    return {
        "limited": await upstream(
            "limited", behaviour=Behaviour("limited", rate_limit_every=1, retry_after_s=60)
        ),
        "flaky": await upstream("flaky", behaviour=Behaviour("flaky", words=WORDS)),
        "cutter": await upstream(
            "cutter",
            behaviour=Behaviour("cutter", words=WORDS, cut_stream_every=1, cut_after_chunks=3),
        ),
        "steady": await upstream("steady", behaviour=Behaviour("steady", words=WORDS)),
    }


def scenario_targets(ups: dict[str, FakeUpstream]) -> list[dict[str, Any]]:
    """Each misbehaving target is preferred for its own models; ``steady`` backs them up
    (except ``gpt-e``, which only ``limited`` serves)."""
    return [
        target(ups["limited"], models=["gpt-a", "gpt-e"], priority=100),
        target(ups["flaky"], models=["gpt-b"], priority=100),
        target(ups["cutter"], models=["gpt-c"], priority=100),
        target(ups["steady"], models=["gpt-a", "gpt-b", "gpt-c", "gpt-d"]),
    ]


async def ask(client: Any, model: str) -> Any:
    return await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": PROMPT}]
    )


async def stream_text(client: Any, model: str) -> str:
    stream = await client.chat.completions.create(
        model=model, stream=True, messages=[{"role": "user", "content": PROMPT}]
    )
    return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])


async def drive_scenario(client: Any, ups: dict[str, FakeUpstream]) -> None:
    """Success with rate-limit headroom, a 429 failover, two 500s that open a breaker, a cut
    stream resumed elsewhere, a request no target can take, and a client error."""
    ups["steady"].queue(Reply(body=COMPLETION, headers=HEADROOM))
    await ask(client, "gpt-d")
    await ask(client, "gpt-a")  # limited: 429 → steady
    ups["flaky"].queue(error(500, "boom"), error(500, "boom"))
    await ask(client, "gpt-b")  # flaky: 500, retried: 500, its breaker opens → steady
    await ask(client, "gpt-b")  # flaky's breaker is open → steady
    assert await stream_text(client, "gpt-c") == canonical_text(PROMPT, WORDS)
    with pytest.raises(openai.APIStatusError) as rejected:
        await ask(client, "gpt-e")  # only limited serves it, and it said it has 0 left
    assert rejected.value.status_code == 429
    ups["steady"].queue(error(400, "bad request", "invalid_request_error"))
    with pytest.raises(openai.BadRequestError):
        await ask(client, "gpt-d")


# -- reading /metrics -----------------------------------------------------------------------


async def scrape(url: str, accept: str | None = None) -> tuple[str, str]:
    """(Content-Type, body) of ``GET url`` with no credentials."""
    headers = {"Accept": accept} if accept else {}
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        assert resp.status == 200
        return resp.headers["Content-Type"], await resp.text()


def samples(text: str) -> dict[str, list[Sample]]:
    """Every sample of a text-format exposition, by sample name."""
    found: dict[str, list[Sample]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name].append(sample)
    return found


def value(found: dict[str, list[Sample]], name: str, **labels: str) -> float:
    """The value of the one sample of ``name`` with exactly these labels."""
    matches = [s.value for s in found[name] if s.labels == labels]
    assert len(matches) == 1, f"{name}{labels}: {matches} in {found[name]}"
    return matches[0]


def by_label(found: dict[str, list[Sample]], name: str, label: str) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for sample in found[name]:
        totals[sample.labels[label]] += sample.value
    return dict(totals)


# -- tests ----------------------------------------------------------------------------------


async def test_scripted_traffic_fills_every_metric_with_the_contract_labels(
    upstream: Any, gateway: Any
) -> None:
    """Failover, breaker, resume, rejection and client error each land in the right series."""
    ups = await scenario_upstreams(upstream)
    gw = await gateway(scenario_targets(ups), **SECTIONS)
    await drive_scenario(gw.openai(), ups)
    _, text = await scrape(gw.url("/metrics"))
    found = samples(text)

    for name, labels in LABELS.items():
        assert found[name], f"{name} missing"
        for sample in found[name]:
            assert set(sample.labels) == labels, (name, sample.labels)

    requests = "sidestep_requests_total"
    assert value(found, requests, target="steady", model="gpt-d", endpoint="chat", outcome="ok")
    assert value(found, requests, target="steady", model="gpt-b", endpoint="chat", outcome="ok")
    assert (
        value(found, requests, target="cutter", model="gpt-c", endpoint="chat", outcome="ok") == 1
    )
    assert (
        value(found, requests, target="none", model="gpt-e", endpoint="chat", outcome="rejected")
        == 1
    )
    outcomes = by_label(found, requests, "outcome")
    assert outcomes == {"ok": 5, "rejected": 1, "client_error": 1}
    durations = by_label(found, "sidestep_request_duration_seconds_count", "target")
    assert durations == {"steady": 5, "cutter": 1, "none": 1}
    assert value(found, "sidestep_ttft_seconds_count", target="cutter") == 1

    attempts = "sidestep_upstream_attempts_total"
    assert value(found, attempts, target="limited", error_class="rate_limited") == 1
    assert value(found, attempts, target="flaky", error_class="transient_server_failure") == 2
    assert value(found, attempts, target="steady", error_class="invalid_request") == 1
    assert value(found, attempts, target="steady", error_class="ok") == 5  # 4 + a continuation
    assert value(found, attempts, target="cutter", error_class="ok") == 1

    failovers = "sidestep_failovers_total"
    assert (
        value(found, failovers, from_target="limited", to_target="steady", reason="rate_limited")
        == 1
    )
    assert (
        value(
            found,
            failovers,
            from_target="flaky",
            to_target="steady",
            reason="transient_server_failure",
        )
        == 1  # the second gpt-b request found flaky's breaker open: no attempt, no failover
    )
    resumes = found["sidestep_stream_resumes_total"]
    assert [(s.labels["target"], s.value) for s in resumes] == [("cutter", 1)]

    assert by_label(found, "sidestep_breaker_state", "target") == {
        "limited": 0,
        "flaky": 2,
        "cutter": 0,
        "steady": 0,
    }
    assert value(found, "sidestep_breaker_transitions_total", target="flaky", to="open") == 1
    assert value(found, "sidestep_breaker_transitions_total", target="steady", to="open") == 0
    cooling = by_label(found, "sidestep_cooldown_remaining_seconds", "target")
    assert cooling["limited"] >= 60 and cooling["flaky"] == 0 and cooling["steady"] == 0
    assert value(found, "sidestep_cooldowns_total", target="limited", reason="rate_limited") == 1
    assert set(by_label(found, "sidestep_in_flight", "target").values()) == {0}
    assert value(found, "sidestep_queue_depth") == 0
    assert by_label(found, "sidestep_admission_rejections_total", "reason") == {
        "queue_full": 0,
        "queue_timeout": 0,
        "no_target": 0,
    }

    tokens = "sidestep_tokens_total"
    assert value(found, tokens, target="steady", model="gpt-d", kind="prompt") == 7
    assert value(found, tokens, target="steady", model="gpt-d", kind="completion") == 5
    assert value(found, tokens, target="steady", model="gpt-b", kind="completion") > 0
    remaining = "sidestep_ratelimit_remaining"
    assert value(found, remaining, target="steady", kind="requests") == 99
    assert value(found, remaining, target="steady", kind="tokens") == 5000

    assert value(found, "sidestep_build_info", version=__version__) == 1
    assert value(found, "sidestep_config_last_reload_successful") == 1
    assert value(found, "sidestep_config_last_reload_timestamp_seconds") == gw.clock.wall()


async def test_config_reloads_are_counted_and_a_removed_target_leaves_metrics(
    upstream: Any, gateway: Any, tmp_path: Path
) -> None:
    """A failed reload sets the failure gauge; a good one counts, stamps and drops old targets."""
    a, b = await upstream("a"), await upstream("b")
    gw = await gateway([target(a, priority=10), target(b)])
    await ask(gw.openai(), "m")
    path = tmp_path / "sidestep.yaml"
    reloader = Reloader(gw.gw, str(path))

    path.write_text("targets: [{id: 'Bad Id'}]\n")
    assert (await reloader.reload(trigger="admin")).result == "error"
    found = samples((await scrape(gw.url("/metrics")))[1])
    assert value(found, "sidestep_config_reloads_total", result="error") == 1
    assert value(found, "sidestep_config_last_reload_successful") == 0

    gw.clock.advance(60)
    path.write_text(yaml.safe_dump({"targets": [target(b)]}))
    assert (await reloader.reload(trigger="admin")).result == "ok"
    found = samples((await scrape(gw.url("/metrics")))[1])
    assert value(found, "sidestep_config_reloads_total", result="ok") == 1
    assert value(found, "sidestep_config_last_reload_successful") == 1
    assert value(found, "sidestep_config_last_reload_timestamp_seconds") == gw.clock.wall()
    targets = {
        s.labels.get("target") for series in found.values() for s in series if "target" in s.labels
    }
    assert targets == {"b"}


async def test_label_values_stay_bounded_under_many_client_model_names(
    upstream: Any, gateway: Any
) -> None:
    """1,000 distinct model names on a ``models: ["*"]`` target add no series: model="other"."""
    wild = await upstream("wild")
    gw = await gateway([target(wild, models=["*"])])
    client = gw.openai()
    for batch in range(0, 1000, 100):
        await asyncio.gather(*(ask(client, f"model-{i}") for i in range(batch, batch + 100)))
    _, text = await scrape(gw.url("/metrics"))
    found = samples(text)
    requests = found["sidestep_requests_total"]
    assert [(s.labels, s.value) for s in requests] == [
        ({"target": "wild", "model": "other", "endpoint": "chat", "outcome": "ok"}, 1000)
    ]
    assert {s.labels["model"] for s in found["sidestep_tokens_total"]} == {"other"}
    sidestep_series = sum(len(v) for k, v in found.items() if k.startswith("sidestep_"))
    assert sidestep_series < 100, sidestep_series
    assert "model-1" not in text


async def test_metrics_expose_no_secret_and_need_no_credentials(
    upstream: Any, gateway: Any
) -> None:
    """/metrics answers without client key or admin token and contains neither, nor any
    upstream key — even after upstream errors."""
    a, b = await upstream("a"), await upstream("b")
    keys = ["sk-b-upstream-key-0001", "sk-b-upstream-key-0002"]
    gw = await gateway(
        [target(a, priority=10), target(b, api_key=None, api_keys=keys)],
        auth={"client_keys": ["client-key"]},
        admin={"token": "admin-token-secret-0001"},
        **SECTIONS,
    )
    a.queue(error(401, "bad key sk-a-upstream-key-0001", "invalid_request_error"))
    await ask(gw.openai(), "m")
    secrets = ["sk-a-upstream-key-0001", *keys, "client-key", "admin-token-secret-0001"]
    for accept in (None, OPENMETRICS):
        _, text = await scrape(gw.url("/metrics"), accept)
        assert "sidestep_requests_total" in text
        for secret in secrets:
            assert secret not in text


async def test_openmetrics_is_served_when_asked_for(upstream: Any, gateway: Any) -> None:
    """``Accept: application/openmetrics-text`` gets OpenMetrics; no Accept gets text 0.0.4."""
    a = await upstream("a")
    gw = await gateway([target(a)])
    await ask(gw.openai(), "m")
    content_type, text = await scrape(gw.url("/metrics"), OPENMETRICS)
    assert content_type.startswith("application/openmetrics-text")
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(text)}
    assert families["sidestep_requests"].type == "counter"
    assert families["sidestep_build"].type == "info"
    assert families["sidestep_request_duration_seconds"].type == "histogram"
    content_type, text = await scrape(gw.url("/metrics"))
    assert content_type.startswith("text/plain; version=0.0.4")
    assert {"sidestep_requests_total", "sidestep_build_info"} <= set(samples(text))
