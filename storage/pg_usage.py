"""Token usage in PostgreSQL (table ai_usage): one upsert with increments per provider call.

An increment that cannot be written (PostgreSQL unreachable) is kept in memory, merged with later
ones, and written by the maintenance task or the next report: usage survives short outages.
"""

from __future__ import annotations

from datetime import date

import asyncpg

from storage.errors import StoreUnavailable
from observability.logs import get_logger
from storage.usage import UsageKey, UsageRow, usage_key
from storage.db import DB_ERRORS, Database, describe

log = get_logger(__name__)


async def add(conn: asyncpg.Connection, increments: dict[UsageKey, tuple[int, int, int]]) -> None:
    keys = list(increments)
    sums = [increments[k] for k in keys]
    await conn.execute(
        """INSERT INTO ai_usage AS u (community_id, provider, model, day, requests, prompt_tokens, completion_tokens)
           SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::date[], $5::bigint[], $6::bigint[],
                                $7::bigint[])
           ON CONFLICT (community_id, provider, model, day) DO UPDATE SET
               requests = u.requests + EXCLUDED.requests,
               prompt_tokens = u.prompt_tokens + EXCLUDED.prompt_tokens,
               completion_tokens = u.completion_tokens + EXCLUDED.completion_tokens""",
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [k[3] for k in keys],
        [s[0] for s in sums], [s[1] for s in sums], [s[2] for s in sums])


async def fetch(conn: asyncpg.Connection, community_id: int | None, since: date | None) -> list[UsageRow]:
    rows = await conn.fetch(
        """SELECT community_id, provider, model, day, requests, prompt_tokens, completion_tokens
           FROM ai_usage
           WHERE ($1::int IS NULL OR community_id = $1) AND ($2::date IS NULL OR day >= $2)
           ORDER BY day, community_id, provider, model""", community_id, since)
    return [UsageRow(*r) for r in rows]


class PgUsage:
    persisted = True

    def __init__(self, db: Database, max_pending: int = 50_000) -> None:
        self.db = db
        self.max_pending = max_pending
        self._pending: dict[UsageKey, tuple[int, int, int]] = {}

    async def record(self, community_id: int | None, provider: str, model: str,
                     prompt_tokens: int, completion_tokens: int) -> None:
        key = usage_key(community_id, provider, model)
        increment = (1, max(0, prompt_tokens or 0), max(0, completion_tokens or 0))
        try:
            async with self.db.acquire() as conn:
                await add(conn, {key: increment})
        except DB_ERRORS as exc:
            self.db.mark_down(exc, "usage")
            self._keep(key, increment)
            log.warning("usage kept in memory until the store answers", action="usage_record",
                        result="deferred", error=describe(exc), pending=len(self._pending))

    def _keep(self, key: UsageKey, increment: tuple[int, int, int]) -> None:
        if key not in self._pending and len(self._pending) >= self.max_pending:
            return  # bounded: a very long outage loses the newest keys, never memory
        old = self._pending.get(key, (0, 0, 0))
        self._pending[key] = (old[0] + increment[0], old[1] + increment[1], old[2] + increment[2])

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            async with self.db.acquire() as conn:
                await add(conn, pending)
        except DB_ERRORS as exc:
            self.db.mark_down(exc, "usage")
            for key, increment in pending.items():
                self._keep(key, increment)

    async def report(self, community_id: int | None = None, since: date | None = None) -> list[UsageRow]:
        await self.flush()
        try:
            async with self.db.acquire() as conn:
                return await fetch(conn, community_id, since)
        except DB_ERRORS as exc:
            self.db.mark_down(exc, "usage")
            raise StoreUnavailable() from None
