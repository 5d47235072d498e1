"""The statements of the rate limits shared in PostgreSQL (table ai_rate_limits, ai_key_buckets and
their functions: storage/migrations/0006_shared_rate_limits.sql). Each check-and-reserve is one
statement, atomic in its own transaction, timed by the server's clock."""

from __future__ import annotations

import asyncpg


async def reserve_reply(conn: asyncpg.Connection, user_key: str, channel_key: str, cooldown_s: float,
                        per_min: int) -> str | None:
    """None: reserved; else the scope that refused (`user` | `channel`)."""
    return await conn.fetchval("SELECT ai_reserve_reply($1, $2, $3, $4)", user_key, channel_key,
                               float(cooldown_s), per_min)


async def take_request(conn: asyncpg.Connection, key: str, rate_per_min: int) -> tuple[bool, float]:
    """One request from the key's token bucket: (allowed, tokens left)."""
    row = await conn.fetchrow("SELECT allowed, tokens FROM ai_take_request($1, $2)", key, rate_per_min)
    return row["allowed"], row["tokens"]


async def delete_expired(conn: asyncpg.Connection, batch: int = 5000) -> int:
    """Reply-limit rows that can no longer refuse anything (store maintenance)."""
    result = await conn.execute(
        """DELETE FROM ai_rate_limits WHERE key IN (
               SELECT key FROM ai_rate_limits WHERE expires_at < now() LIMIT $1 FOR UPDATE SKIP LOCKED)""",
        batch)
    return int(result.split()[-1])
