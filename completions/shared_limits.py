"""The OpenAI-compatible API's per-key limit (COMPLETIONS_RATE_PER_MIN) shared by every replica (§12).

The same token bucket as completions/limits.py, kept where every replica takes from it in ONE
atomic step with the server's clock: a Lua script in Redis (`RedisKeyLimits`), or the statement
`SELECT * FROM ai_take_request(…)` in PostgreSQL (`PgKeyLimits`, storage/migrations/0006). Each
wraps a fallback used while its store cannot answer (Redis down: PostgreSQL when configured, else
this process; PostgreSQL down: this process). Keys are already hashes (`key_id`).
"""

from __future__ import annotations

from completions.limits import Decision, KeyLimits, refused
from observability.logs import get_logger
from storage import pg_limits
from storage.db import DB_ERRORS, Database, describe
from storage.redis_link import RedisLink, RedisUnavailable

log = get_logger(__name__)

# KEYS: the key's bucket (a hash: tokens, at). ARGV: requests per minute. Returns {allowed 0|1,
# tokens left as a string}. The key expires once the bucket would be full again anyway.
TAKE_REQUEST_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(saved[1]) or rate
local since = tonumber(saved[2]) or now
tokens = math.min(rate, tokens + math.max(0, now - since) * rate / 60)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((rate - tokens) * 60000 / rate) + 1000)
return {allowed, tostring(tokens)}
"""


def _decision(rate_per_min: int, allowed: bool, tokens: float) -> Decision:
    return Decision(True, rate_per_min, int(tokens)) if allowed else refused(rate_per_min, tokens)


class RedisKeyLimits:
    def __init__(self, link: RedisLink, fallback: KeyLimits) -> None:
        self.link = link
        self.fallback = fallback
        self.rate_per_min = fallback.rate_per_min
        self._script = link.client.register_script(TAKE_REQUEST_LUA)

    async def take(self, key: str) -> Decision:
        keys, args = [self.link.key("api", key)], [self.rate_per_min]
        try:
            allowed, tokens = await self.link.call("api_key", lambda: self._script(keys=keys, args=args))
        except RedisUnavailable:
            return await self.fallback.take(key)
        return _decision(self.rate_per_min, bool(int(allowed)), float(tokens))


class PgKeyLimits:
    def __init__(self, db: Database, fallback: KeyLimits) -> None:
        self.db = db
        self.fallback = fallback
        self.rate_per_min = fallback.rate_per_min
        self._degraded = False  # logged once per outage

    async def take(self, key: str) -> Decision:
        try:
            async with self.db.acquire() as conn:
                allowed, tokens = await pg_limits.take_request(conn, key, self.rate_per_min)
        except DB_ERRORS as exc:
            self.db.mark_down(exc, "api_key_limit")
            if not self._degraded:
                self._degraded = True
                log.warning("API key limits kept in this process until PostgreSQL answers",
                            action="rate_limit", result="unavailable", error=describe(exc))
            return await self.fallback.take(key)
        self._degraded = False
        return _decision(self.rate_per_min, allowed, tokens)
