"""The two checks that need Redis's atomic answer on the request path.

**Budget**: a lane's rpm and tpm are leaky buckets like aiolimiter's (capacity = the limit,
draining limit/60 per second), held in Redis and checked and charged by one Lua script in one
round trip, on Redis's own clock (``TIME``), so replicas' clocks do not matter. The answer
also lifts the local buckets to the shared level, so this replica's router sees a key the
others filled as full without asking again.

**Half-open probe**: when a lane's breaker would send a probe, the replica first takes the
lane's probe lease (``SET NX PX`` in a script that lets the holder renew): at most one
replica probes at a time. A replica that finds the lease taken holds its breaker open until
the lease ends; the holder's probe outcome (closed, or open again) reaches it as a change,
and the holder gives the lease back then.

Lanes without limits, and requests while the breaker is closed, never call Redis. When
Redis does not answer in time the local decision stands (the local aiolimiter already
charged this request) and the ``Link`` falls back to local state for the next requests.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from redis.asyncio import Redis

from policies.lanes import LaneId
from proxy.config.state import State
from proxy.state.budget import raise_level
from proxy.state.clock import Clock
from proxy.state.fleet import Lease
from proxy.state.shared.link import FAILURES, Link

_TAKE = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local period = tonumber(ARGV[5])
local levels = {}
local fits = true
for i = 1, 2 do
  local rate = tonumber(ARGV[2 * i - 1])
  local level = 0
  if rate > 0 then
    local held = redis.call('HMGET', KEYS[i], 'l', 't')
    level = tonumber(held[1]) or 0
    local since = tonumber(held[2]) or now
    level = math.max(0, level - math.max(0, now - since) * rate / period)
    if level + tonumber(ARGV[2 * i]) > rate then fits = false end
  end
  levels[i] = level
end
if fits then
  for i = 1, 2 do
    local rate = tonumber(ARGV[2 * i - 1])
    if rate > 0 then
      levels[i] = levels[i] + tonumber(ARGV[2 * i])
      redis.call('HSET', KEYS[i], 'l', tostring(levels[i]), 't', tostring(now))
      redis.call('PEXPIRE', KEYS[i], math.ceil(period * 1000))
    end
  end
end
return {fits and 1 or 0, tostring(levels[1]), tostring(levels[2])}
"""

_CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return -1
end
return redis.call('PTTL', KEYS[1])
"""

_GIVE_BACK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

PERIOD_S = 60.0


class Gates:
    def __init__(self, link: Link, settings: State, clock: Clock) -> None:
        self.link = link
        self.settings = settings
        self.clock = clock
        self.prefix = settings.prefix
        self._returns: set[asyncio.Task[None]] = set()

    async def admit(self, lease: Lease) -> bool:
        """Whether the shared state lets ``lease`` go (True when Redis is away)."""
        client = self.link.client
        budget = lease.budget
        limited = budget.rpm is not None or budget.tpm is not None
        probe = lease.permit.probe
        if client is None or not self.link.up or not (limited or probe):
            return True
        try:
            if probe and not await self._claim(client, lease):
                return False
            if limited and not await self._take(client, lease):
                if probe:
                    self.release_probe(lease.lane)
                return False
        except FAILURES as exc:
            self.link.lost(exc)
        return True

    async def _take(self, client: Redis, lease: Lease) -> bool:
        rpm, tpm = lease.budget.rpm, lease.budget.tpm
        tokens = 0.0 if tpm is None else float(min(lease.tokens, tpm.max_rate))
        base = f"{self.prefix}b:{lease.runtime.config.id}#{lease.key_index}"
        args: list[Any] = [rpm.max_rate if rpm else 0, 1, tpm.max_rate if tpm else 0, tokens]
        fits, rpm_level, tpm_level = await client.eval(
            _TAKE, 2, base + ":rpm", base + ":tpm", *args, PERIOD_S
        )
        if rpm is not None:
            raise_level(rpm, float(rpm_level))
        if tpm is not None:
            raise_level(tpm, float(tpm_level))
        return int(fits) == 1

    async def _claim(self, client: Redis, lease: Lease) -> bool:
        lease_ms = int(self.settings.probe_lease_s * 1000)
        left_ms = int(await client.eval(_CLAIM, 1, self._probe_key(lease.lane),
                                        self.link.origin, lease_ms))  # fmt: skip
        if left_ms == -1:
            return True
        # hold off until the lease ends, or for one open period if that is sooner (the
        # holder's outcome usually arrives first; if not, ask again then)
        now = self.clock.monotonic()
        hold_s = min(max(left_ms, 1) / 1000, lease.breaker.settings.open_s)
        lease.breaker.adopt_open(now + hold_s, now)
        return False

    def release_probe(self, lane: LaneId) -> None:
        """Give the lane's probe lease back if this replica holds it (off the request path;
        a failure only means the lease runs out by itself)."""
        client = self.link.client
        if client is None:
            return
        task = asyncio.ensure_future(self._give_back(client, lane))
        self._returns.add(task)
        task.add_done_callback(self._returns.discard)

    async def _give_back(self, client: Redis, lane: LaneId) -> None:
        try:
            await client.eval(_GIVE_BACK, 1, self._probe_key(lane), self.link.origin)
        except FAILURES:
            return

    def _probe_key(self, lane: LaneId) -> str:
        digest = hashlib.sha256(str(lane).encode()).hexdigest()[:32]
        return f"{self.prefix}probe:{digest}"
