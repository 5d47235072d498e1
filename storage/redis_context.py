"""Recent conversation context in Redis (REDIS_URL, §12), read there first by every replica.

Layout: per conversation a Redis list `{prefix}ctx:{digest of platform, entity, user}` of JSON
entries `[user_message, reply, at]` (`at`: Unix time), oldest first, at most CONTEXT_HISTORY_LIMIT,
expiring CONTEXT_TTL_S after its last append; per (platform, user) a set of that user's conversation
keys (`ctx-user:`), so an erasure finds them. Each write is one Lua script: one round trip, atomic.

Behind it, `backing` (a ContextStore), which always gets every write:
- durable (PostgreSQL, DATABASE_URL): the record. A Redis miss reads it and fills the list (only if
  still absent); an append goes to it, then onto the Redis list only if that list exists, so Redis
  never holds a conversation's tail without its beginning.
- else this process's MemoryContextStore, a copy used only while Redis is unavailable: Redis is
  where replicas share the history (a miss there is no history), and an append creates the list
  when it is missing. An erasure reaches Redis and this replica's copy; the other replicas' copies
  are never read while Redis answers, and age out (CONTEXT_TTL_S).

Redis unavailable: reads and writes use `backing` alone. The conversations written meanwhile are
remembered (up to MAX_DIRTY; beyond, every context key of the prefix) and deleted from Redis when it
is back, before anything reads it again, so Redis never serves a history missing those exchanges.
An erasure needs Redis: while it is unavailable it answers 503 (retry), after erasing the rest.
"""

from __future__ import annotations

import hashlib
import json
import time

from observability import metrics
from observability.logs import get_logger
from storage.context import ContextStore, ConversationKey, Exchange
from storage.errors import StoreUnavailable
from storage.redis_link import RedisLink, RedisUnavailable

log = get_logger(__name__)
MAX_DIRTY = 10_000
_DELETE_BATCH = 500

# KEYS: the conversation, the user's set of conversations. ARGV: the entry, history limit, TTL ms,
# "1" to create a missing list ("0": only extend one that exists). Returns 1 when appended.
APPEND_LUA = """
if ARGV[4] == '0' and redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[2]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('SADD', KEYS[2], KEYS[1])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
"""
# KEYS: as above. ARGV: TTL ms, then the entries oldest first. Fills only an absent list.
FILL_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('RPUSH', KEYS[1], unpack(ARGV, 2))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], KEYS[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1
"""
# KEYS: the user's set of conversations. Deletes them all; returns the exchanges removed.
ERASE_LUA = """
local removed = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  removed = removed + redis.call('LLEN', key)
  redis.call('DEL', key)
end
redis.call('DEL', KEYS[1])
return removed
"""


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\x00".join(parts).encode(), digest_size=16).hexdigest()


class RedisContextStore:
    def __init__(self, link: RedisLink, backing: ContextStore, *, durable: bool, history_limit: int,
                 ttl_s: float) -> None:
        self.link = link
        self.backing = backing
        self.durable = durable
        self.history_limit = history_limit
        self.ttl_s = ttl_s
        self._append = link.client.register_script(APPEND_LUA)
        self._fill = link.client.register_script(FILL_LUA)
        self._erase = link.client.register_script(ERASE_LUA)
        self._dirty: set[str] = set()  # conversations written while Redis was unavailable
        self._dirty_overflow = False
        link.on_recovery(self._forget_dirty)

    def _keys(self, key: ConversationKey) -> list[str]:
        platform, entity_id, user_id = key
        return [self.link.key("ctx", _digest(platform, entity_id, user_id)),
                self.link.key("ctx-user", _digest(platform, user_id))]

    # --- ContextStore ----------------------------------------------------------------------------
    async def history(self, key: ConversationKey) -> list[Exchange]:
        """The conversation's live exchanges, oldest first: Redis first, else `backing`."""
        if self.history_limit <= 0:
            return await self.backing.history(key)
        names = self._keys(key)
        try:
            entries = await self.link.call("context", lambda: self.link.client.lrange(names[0], -self.history_limit, -1))
        except RedisUnavailable:
            return await self.backing.history(key)
        horizon = time.time() - self.ttl_s
        exchanges = [Exchange(*json.loads(entry)) for entry in entries]
        exchanges = [e for e in exchanges if e.at > horizon]
        if exchanges or not self.durable:  # in memory mode Redis is the truth while it answers
            metrics.context_lookups_total.labels(result="hit" if exchanges else "miss").inc()
            return exchanges
        exchanges = await self.backing.history(key)
        if exchanges:
            await self._fill_from(names, exchanges)
        return exchanges

    async def append(self, key: ConversationKey, user_message: str, reply: str) -> None:
        if self.history_limit <= 0:
            return
        await self.backing.append(key, user_message, reply)
        names = self._keys(key)
        entry = json.dumps([user_message, reply, time.time()], ensure_ascii=False)
        args = [entry, self.history_limit, round(self.ttl_s * 1000), "0" if self.durable else "1"]
        try:
            await self.link.call("context", lambda: self._append(keys=names, args=args))
        except RedisUnavailable:
            self._mark_dirty(names[0])

    async def erase_user(self, platform: str, user_id: str) -> int:
        """Forget every conversation of one user, here and in `backing`; returns the exchanges removed."""
        removed = await self.backing.erase_user(platform, user_id)
        index = self.link.key("ctx-user", _digest(platform, user_id))
        try:
            in_redis = await self.link.call("context", lambda: self._erase(keys=[index]))
        except RedisUnavailable:
            raise StoreUnavailable("Redis unavailable: the user's recent context cannot be erased yet, retry later") from None
        return removed if self.durable else max(removed, int(in_redis))

    # --- while and after Redis was away ----------------------------------------------------------
    async def _fill_from(self, names: list[str], exchanges: list[Exchange]) -> None:
        """The durable history read after a miss goes to Redis, unless an append created the list meanwhile."""
        ttl_ms = max(1, round((exchanges[-1].at + self.ttl_s - time.time()) * 1000))
        entries = [json.dumps([e.user_message, e.reply, e.at], ensure_ascii=False) for e in exchanges]
        try:
            await self.link.call("context", lambda: self._fill(keys=names, args=[ttl_ms, *entries]))
        except RedisUnavailable:
            pass  # nothing written: nothing stale

    def _mark_dirty(self, name: str) -> None:
        if len(self._dirty) < MAX_DIRTY:
            self._dirty.add(name)
        else:
            self._dirty_overflow = True

    async def _forget_dirty(self) -> None:
        """Recovery hook: delete the lists that miss exchanges written while Redis was unavailable."""
        client = self.link.client
        if self._dirty_overflow:
            pattern = self.link.key("ctx", "*")
            cursor: int | None = None
            while cursor != 0:
                cursor, found = await self.link.bounded(
                    lambda: client.scan(cursor or 0, match=pattern, count=_DELETE_BATCH))
                if found:
                    await self.link.bounded(lambda: client.unlink(*found))
            self._dirty_overflow = False
            self._dirty.clear()
            log.info("context in Redis dropped after an outage with many writes", action="redis",
                     result="context_dropped")
        while self._dirty:
            batch = [self._dirty.pop() for _ in range(min(_DELETE_BATCH, len(self._dirty)))]
            try:
                await self.link.bounded(lambda: client.unlink(*batch))
            except BaseException:
                self._dirty.update(batch)  # tried again at the next recovery
                raise
