"""SQL of the durable interaction queue (table ai_interaction_queue, migration 0001), one function each.

Every function takes a connection; the caller owns transactions, pooling and error handling.
A row is claimable when it is 'queued', or 'working' with its lease run out (a dead instance).
"""

from __future__ import annotations

from typing import Any

import asyncpg

_CLAIMABLE = "status IN ('queued', 'working') AND (status = 'queued' OR lease_until < now())"


async def remember_key(conn: asyncpg.Connection, key: str, interaction_id: str, window_s: float) -> str:
    """Record `key` → `interaction_id` for `window_s`, unless a live record exists.

    Returns the id the key belongs to: `interaction_id` when it is new (or the old record expired),
    else the first interaction's id. Concurrent callers with the same key serialize on its row."""
    winner = await conn.fetchval(
        """INSERT INTO ai_interaction_dedupe AS d (key, interaction_id, expires_at)
           VALUES ($1, $2, now() + make_interval(secs => $3))
           ON CONFLICT (key) DO UPDATE SET
               interaction_id = CASE WHEN d.expires_at <= now() THEN EXCLUDED.interaction_id
                                     ELSE d.interaction_id END,
               expires_at = CASE WHEN d.expires_at <= now() THEN EXCLUDED.expires_at
                                 ELSE d.expires_at END
           RETURNING interaction_id""", key, interaction_id, float(window_s))
    return str(winner)


async def insert(conn: asyncpg.Connection, interaction_id: str, payload: dict[str, Any], request_id: str,
                 platform: str, user_id: str, max_queued: int, channel: str) -> bool:
    """Queue one interaction and wake listeners (on commit); False when `max_queued` are waiting."""
    inserted = await conn.fetchrow(
        """WITH room AS (
               SELECT count(*) AS n FROM (
                   SELECT 1 FROM ai_interaction_queue WHERE status = 'queued' LIMIT $6) waiting),
           ins AS (
               INSERT INTO ai_interaction_queue (id, payload, request_id, platform, user_id)
               SELECT $1, $2, $3, $4, $5 FROM room WHERE room.n < $6
               RETURNING id)
           SELECT ins.id, pg_notify($7, '') FROM ins""",
        interaction_id, payload, request_id, platform, user_id, max_queued, channel)
    return inserted is not None


async def claim(conn: asyncpg.Connection, owner: str, lease_s: float) -> asyncpg.Record | None:
    """Take the oldest claimable row under a lease; None when there is nothing to do."""
    return await conn.fetchrow(
        f"""UPDATE ai_interaction_queue q
            SET status = 'working', lease_owner = $1, attempts = q.attempts + 1,
                lease_until = now() + make_interval(secs => $2)
            FROM (SELECT id FROM ai_interaction_queue WHERE {_CLAIMABLE}
                  ORDER BY accepted_at LIMIT 1 FOR UPDATE SKIP LOCKED) next
            WHERE q.id = next.id
            RETURNING q.id::text AS id, q.payload, q.request_id, q.attempts,
                      extract(epoch FROM now() - q.accepted_at)::float8 AS age_s""",
        owner, float(lease_s))


async def finish(conn: asyncpg.Connection, ids: list[str], outcomes: list[str]) -> int:
    """Mark rows done with their outcome and forget their content; returns how many changed."""
    result = await conn.execute(
        """UPDATE ai_interaction_queue q
           SET status = 'done', outcome = f.outcome, finished_at = now(), lease_until = NULL,
               payload = NULL, platform = NULL, user_id = NULL
           FROM unnest($1::uuid[], $2::text[]) AS f(id, outcome)
           WHERE q.id = f.id AND q.status = 'working'""", ids, outcomes)
    return int(result.split()[-1])


async def renew(conn: asyncpg.Connection, ids: list[str], owner: str, lease_s: float) -> set[str]:
    """Extend this owner's leases; returns the ids still held (others were taken over or finished)."""
    rows = await conn.fetch(
        """UPDATE ai_interaction_queue SET lease_until = now() + make_interval(secs => $3)
           WHERE id = ANY($1::uuid[]) AND status = 'working' AND lease_owner = $2
           RETURNING id::text""", ids, owner, float(lease_s))
    return {r[0] for r in rows}


async def release(conn: asyncpg.Connection, owner: str) -> int:
    """Put this owner's unfinished rows back in the queue at once (shutdown)."""
    result = await conn.execute(
        """UPDATE ai_interaction_queue SET status = 'queued', lease_owner = NULL, lease_until = NULL
           WHERE status = 'working' AND lease_owner = $1""", owner)
    return int(result.split()[-1])


async def counts(conn: asyncpg.Connection) -> tuple[int, int]:
    """(rows waiting, rows claimable now) — claimable includes expired leases."""
    row = await conn.fetchrow(
        f"""SELECT count(*) FILTER (WHERE status = 'queued') AS queued,
                   count(*) FILTER (WHERE {_CLAIMABLE}) AS claimable
            FROM ai_interaction_queue WHERE status IN ('queued', 'working')""")
    return int(row["queued"]), int(row["claimable"])


async def erase_user(conn: asyncpg.Connection, platform: str, user_id: str) -> int:
    """Delete one user's rows that no live worker holds; returns how many."""
    result = await conn.execute(
        f"""DELETE FROM ai_interaction_queue
            WHERE platform = $1 AND user_id = $2 AND {_CLAIMABLE}""", platform, user_id)
    return int(result.split()[-1])


async def prune(conn: asyncpg.Connection, retention_s: float, batch: int = 5000) -> tuple[int, int]:
    """Delete finished rows older than the retention and expired dedupe keys, a batch of each
    (rows another instance is deleting right now are skipped, not waited for)."""
    done = await conn.execute(
        """DELETE FROM ai_interaction_queue WHERE id IN (
               SELECT id FROM ai_interaction_queue
               WHERE status = 'done' AND finished_at < now() - make_interval(secs => $1)
               LIMIT $2 FOR UPDATE SKIP LOCKED)""",
        float(retention_s), batch)
    keys = await conn.execute(
        """DELETE FROM ai_interaction_dedupe WHERE key IN (
               SELECT key FROM ai_interaction_dedupe WHERE expires_at < now()
               LIMIT $1 FOR UPDATE SKIP LOCKED)""", batch)
    return int(done.split()[-1]), int(keys.split()[-1])
