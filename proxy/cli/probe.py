"""``sidestep check --probe``: ask each enabled target, with each of its keys, for its model
list, and say per key whether the target is reachable and the key accepted (keys masked).

A 200 with an OpenAI model list is ``ok``; 401/403 is ``auth failed``; 404 usually means the
base URL lacks its version path; no answer names the kind of failure. Never prints a key or
an upstream's error text.
"""

from __future__ import annotations

import asyncio

from proxy.config import Config, Target, mask_secret
from proxy.upstream.model_lists import ModelsAnswer, fetch_models, probe_session

PROBE_TIMEOUT_S = 10.0


async def probe_targets(config: Config, timeout_s: float = PROBE_TIMEOUT_S) -> list[str]:
    """One line per (enabled target, key), ``ok`` or what went wrong, in config order; the
    caller counts the lines that start with ``FAIL``."""
    pairs = [(t, i) for t in config.enabled_targets for i in range(len(t.keys))]
    async with probe_session() as session:
        answers = await asyncio.gather(*(fetch_models(session, t, i, timeout_s) for t, i in pairs))
    return [_line(t, a) for (t, _), a in zip(pairs, answers, strict=True)]


def _line(target: Target, answer: ModelsAnswer) -> str:
    key = target.keys[answer.key_index]
    who = f"{target.id} key {mask_secret(key) if key is not None else '(none)'}"
    if answer.ok:
        return f"ok    {who}: reachable, key accepted, {len(answer.models)} models listed"
    return f"FAIL  {who}: {_problem(answer)}"


def _problem(answer: ModelsAnswer) -> str:
    if answer.status is None:
        return f"unreachable ({answer.failure})"
    if answer.status in (401, 403):
        return f"reachable, key refused (HTTP {answer.status})"
    if answer.status == 404:
        return (
            "reachable, but no /models there (HTTP 404): does base_url end in its version (…/v1)?"
        )
    if answer.failure is not None:
        return f"reachable, but {answer.failure}"
    return f"reachable, answered HTTP {answer.status}"
