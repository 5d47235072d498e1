"""Conversation context in PostgreSQL (table ai_conversation_context), shared by every instance.

No read cache: another instance may have appended a moment ago. Each append also trims the
conversation to CONTEXT_HISTORY_LIMIT exchanges; the maintenance task deletes what outlived
CONTEXT_TTL_S. A read or write that fails degrades to "no history" / "not remembered" (logged):
a reply without context beats no reply.
"""

from __future__ import annotations

import asyncpg

from observability import metrics
from storage.context import ConversationKey, Exchange
from storage.errors import StoreUnavailable
from observability.logs import get_logger
from storage.db import DB_ERRORS, Database, describe

log = get_logger(__name__)


async def fetch_history(conn: asyncpg.Connection, key: ConversationKey, ttl_s: float, limit: int) -> list[Exchange]:
    rows = await conn.fetch(
        """SELECT user_message, reply, extract(epoch FROM created_at)::float8 AS at
           FROM ai_conversation_context
           WHERE platform = $1 AND entity_id = $2 AND user_id = $3
             AND created_at > now() - make_interval(secs => $4)
           ORDER BY created_at DESC, id DESC LIMIT $5""", *key, float(ttl_s), limit)
    return [Exchange(r["user_message"], r["reply"], r["at"]) for r in reversed(rows)]


async def append_exchange(conn: asyncpg.Connection, key: ConversationKey, user_message: str, reply: str,
                          limit: int) -> None:
    """Insert one exchange and drop all but the newest `limit` of the conversation, atomically."""
    await conn.execute(
        """WITH added AS (
               INSERT INTO ai_conversation_context (platform, entity_id, user_id, user_message, reply)
               VALUES ($1, $2, $3, $4, $5) RETURNING id)
           DELETE FROM ai_conversation_context WHERE id IN (
               SELECT id FROM ai_conversation_context
               WHERE platform = $1 AND entity_id = $2 AND user_id = $3
               ORDER BY created_at DESC, id DESC OFFSET $6)""",
        *key, user_message, reply, max(0, limit - 1))  # the statement does not see its own insert


async def delete_user(conn: asyncpg.Connection, platform: str, user_id: str) -> int:
    result = await conn.execute(
        "DELETE FROM ai_conversation_context WHERE platform = $1 AND user_id = $2", platform, user_id)
    return int(result.split()[-1])


async def delete_expired(conn: asyncpg.Connection, ttl_s: float, batch: int = 5000) -> int:
    result = await conn.execute(
        """DELETE FROM ai_conversation_context WHERE id IN (
               SELECT id FROM ai_conversation_context
               WHERE created_at < now() - make_interval(secs => $1)
               LIMIT $2 FOR UPDATE SKIP LOCKED)""", float(ttl_s), batch)
    return int(result.split()[-1])


class PgContextStore:
    def __init__(self, db: Database, history_limit: int, ttl_s: float) -> None:
        self.db = db
        self.history_limit = history_limit
        self.ttl_s = ttl_s

    async def history(self, key: ConversationKey) -> list[Exchange]:
        """The conversation's live exchanges, oldest first."""
        if self.history_limit <= 0:
            return []
        try:
            async with self.db.acquire() as conn:
                exchanges = await fetch_history(conn, key, self.ttl_s, self.history_limit)
        except DB_ERRORS as exc:
            self.db.mark_down(exc, "context_read")
            log.warning("context unavailable, answering without history", action="context_read",
                        result="unavailable", error=describe(exc))
            exchanges = []
        metrics.context_lookups_total.labels(result="hit" if exchanges else "miss").inc()
        return exchanges

    async def append(self, key: ConversationKey, user_message: str, reply: str) -> None:
        if self.history_limit <= 0:
            return
        try:
            async with self.db.acquire() as conn:
                await append_exchange(conn, key, user_message, reply, self.history_limit)
        except DB_ERRORS as exc:
            self.db.mark_down(exc, "context_write")
            log.warning("exchange not remembered: store unavailable", action="context_write",
                        result="unavailable", error=describe(exc))

    async def erase_user(self, platform: str, user_id: str) -> int:
        """Forget everything about one user on one platform; returns the exchanges removed."""
        try:
            async with self.db.acquire() as conn:
                return await delete_user(conn, platform, user_id)
        except DB_ERRORS as exc:
            self.db.mark_down(exc, "erase")
            raise StoreUnavailable() from None
