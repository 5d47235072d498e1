"""Dedupe keys in Redis (REDIS_URL, §12): the first interaction id per key for DEDUPE_WINDOW_S, seen
by every replica, so a router retry that lands on another replica is still a duplicate.

- The in-memory queue `claim`s a key (`SET key id NX GET EX window`: one atomic round trip; the
  first claimant wins and every later one learns its id), and `release`s its claim when the
  interaction was refused after all (queue full: the router's retry must not read as a duplicate;
  a release Redis could not take is retried when it is back, before anything else uses it).
- The PostgreSQL queue stays the durable judge (its own dedupe table): it `lookup`s Redis first
  (a retry is answered without a statement) and `remember`s the winner after the commit.

Every method returns None / does nothing when Redis is unavailable (storage/redis_link.py): the
queue then decides with its own state, and the ACK never fails because of Redis.
"""

from __future__ import annotations

from storage.redis_link import RedisLink, RedisUnavailable

MAX_PENDING_RELEASES = 10_000

# Delete the key only if it still holds this claimant's id.
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class SharedDedupe:
    def __init__(self, link: RedisLink, window_s: float) -> None:
        self.link = link
        self.window_ms = max(1, round(window_s * 1000))
        self._release = link.client.register_script(RELEASE_LUA)
        self._pending: dict[str, str] = {}  # releases Redis could not take: key → claimant id
        link.on_recovery(self._release_pending)

    async def claim(self, key: str, interaction_id: str) -> str | None:
        """None: `interaction_id` is the first with this key (or Redis is unavailable); else the
        first one's id."""
        name = self.link.key("dd", key)
        try:
            first = await self.link.call("dedupe", lambda: self.link.client.set(
                name, interaction_id, px=self.window_ms, nx=True, get=True))
        except RedisUnavailable:
            return None
        return _text(first)

    async def release(self, key: str, interaction_id: str) -> None:
        """Forget this claim (the interaction was not accepted after all)."""
        keys, args = [self.link.key("dd", key)], [interaction_id]
        try:
            await self.link.call("dedupe", lambda: self._release(keys=keys, args=args))
        except RedisUnavailable:
            if len(self._pending) < MAX_PENDING_RELEASES:
                self._pending[key] = interaction_id

    async def _release_pending(self) -> None:
        """Recovery hook: the releases that failed while Redis was away."""
        while self._pending:
            key, interaction_id = next(iter(self._pending.items()))
            await self.link.bounded(lambda: self._release(keys=[self.link.key("dd", key)], args=[interaction_id]))
            self._pending.pop(key, None)

    async def lookup(self, key: str) -> str | None:
        """The first interaction id with this key, when Redis knows it."""
        name = self.link.key("dd", key)
        try:
            return _text(await self.link.call("dedupe", lambda: self.link.client.get(name)))
        except RedisUnavailable:
            return None

    async def remember(self, key: str, interaction_id: str) -> None:
        """Record the durable queue's decision (the first one's id) for later lookups."""
        name = self.link.key("dd", key)
        try:
            await self.link.call("dedupe", lambda: self.link.client.set(
                name, interaction_id, px=self.window_ms, nx=True))
        except RedisUnavailable:
            pass
