"""Reply rate limits shared by every replica (§3.2, §12): in Redis, or in PostgreSQL.

Both check and reserve in ONE atomic step on the server, with the server's clock, so two replicas
racing for one user's cooldown give one reply, and N replicas never allow N times a channel's
replies per minute:

- `RedisReplyLimits`: one Lua script (EVALSHA, loaded again by redis-py after a Redis restart):
  the user's cooldown is a key that expires after it (`SET … PX`), the channel's minute a sorted set
  of reply times. Redis runs a script alone, so nothing interleaves between check and reserve.
- `PgReplyLimits`: one statement, `SELECT ai_reserve_reply(…)` (storage/migrations/0006): it locks
  the channel's row, then checks and writes both rows in the statement's own transaction.

Each wraps a fallback `ReplyLimits` used while its store cannot answer (Redis down: PostgreSQL when
configured, else this process; PostgreSQL down: this process). Keys are hashes of the parts, so
neither store holds a raw user id for this.
"""

from __future__ import annotations

import hashlib
import math
import os

from interactions.rate_limits import WINDOW_S, ReplyLimits
from observability import metrics
from observability.logs import get_logger
from storage import pg_limits
from storage.db import DB_ERRORS, Database, describe
from storage.redis_link import RedisLink, RedisUnavailable

log = get_logger(__name__)

# KEYS: the user's cooldown key, the channel's window. ARGV: cooldown ms, replies per minute,
# a unique member for this reply. Returns 0 reserved, 1 refused by the user's cooldown, 2 by the channel.
RESERVE_REPLY_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then return 2 end
redis.call('ZADD', KEYS[2], now, ARGV[3])
redis.call('PEXPIRE', KEYS[2], window)
local cooldown = tonumber(ARGV[1])
if cooldown > 0 then redis.call('SET', KEYS[1], now, 'PX', cooldown) end
return 0
"""
_SCOPES = {0: None, 1: "user", 2: "channel"}


def limit_keys(platform: str, entity_id: str, user_id: str) -> tuple[str, str]:
    """(user key, channel key): digests of the NUL-joined parts (no part may contain NUL)."""
    channel = hashlib.blake2b(f"{platform}\x00{entity_id}".encode(), digest_size=16).hexdigest()
    user = hashlib.blake2b(f"{platform}\x00{entity_id}\x00{user_id}".encode(), digest_size=16).hexdigest()
    return "u:" + user, "c:" + channel


class RedisReplyLimits:
    def __init__(self, link: RedisLink, fallback: ReplyLimits) -> None:
        self.link = link
        self.fallback = fallback
        self._script = link.client.register_script(RESERVE_REPLY_LUA)

    async def reserve(self, platform: str, entity_id: str, user_id: str, user_cooldown_s: float,
                      channel_per_min: int) -> str | None:
        user, channel = limit_keys(platform, entity_id, user_id)
        keys = [self.link.key("rl", user), self.link.key("rl", channel)]
        args = [math.ceil(user_cooldown_s * 1000), channel_per_min, os.urandom(8).hex(), int(WINDOW_S * 1000)]
        try:
            answer = await self.link.call("rate_limit", lambda: self._script(keys=keys, args=args))
        except RedisUnavailable:
            return await self.fallback.reserve(platform, entity_id, user_id, user_cooldown_s, channel_per_min)
        scope = _SCOPES[int(answer)]
        if scope is not None:
            metrics.rate_limited_total.labels(scope=scope).inc()
        return scope


class PgReplyLimits:
    def __init__(self, db: Database, fallback: ReplyLimits) -> None:
        self.db = db
        self.fallback = fallback
        self._degraded = False  # logged once per outage

    async def reserve(self, platform: str, entity_id: str, user_id: str, user_cooldown_s: float,
                      channel_per_min: int) -> str | None:
        user, channel = limit_keys(platform, entity_id, user_id)
        try:
            async with self.db.acquire() as conn:
                scope = await pg_limits.reserve_reply(conn, user, channel, user_cooldown_s, channel_per_min)
        except DB_ERRORS as exc:
            self.db.mark_down(exc, "rate_limit")
            if not self._degraded:
                self._degraded = True
                log.warning("rate limits kept in this process until PostgreSQL answers", action="rate_limit",
                            result="unavailable", error=describe(exc))
            return await self.fallback.reserve(platform, entity_id, user_id, user_cooldown_s, channel_per_min)
        self._degraded = False
        if scope is not None:
            metrics.rate_limited_total.labels(scope=scope).inc()
        return scope
