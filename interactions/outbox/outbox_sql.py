"""SQL of the durable outbox: reply columns on the interaction queue (migration 0006), one function each.

A reply waits in its interaction's row, status 'sending', its JSON in `reply`, under the lease of
the instance that holds it (renewed with the queue's leases, interactions/queue/leases.py). A
'sending' row whose lease ran out (a dead instance's, or parked: released at once) is taken by
another instance's outbox. The queue never claims 'sending' rows: a reply is never generated twice.
Every function takes a connection; the caller owns pooling and error handling.
"""

from __future__ import annotations

import asyncpg


def _count(result: str) -> int:
    return int(result.split()[-1])


async def hand_over(conn: asyncpg.Connection, interaction_id: str, owner: str, reply_json: str,
                    lease_s: float) -> bool:
    """The worker's row becomes the outbox's: 'sending' with its reply, under `owner`'s lease.
    False when the row is no longer `owner`'s (its lease was lost, or it was erased)."""
    result = await conn.execute(
        """UPDATE ai_interaction_queue
           SET status = 'sending', reply = $3::text::jsonb, lease_until = now() + make_interval(secs => $4)
           WHERE id = $1 AND status = 'working' AND lease_owner = $2""",
        interaction_id, owner, reply_json, float(lease_s))
    return _count(result) == 1


async def park(conn: asyncpg.Connection, interaction_id: str, owner: str, reply_json: str) -> bool:
    """The same, but held by nobody: any instance's outbox with room takes it."""
    result = await conn.execute(
        """UPDATE ai_interaction_queue
           SET status = 'sending', reply = $3::text::jsonb, lease_owner = NULL, lease_until = now()
           WHERE id = $1 AND status = 'working' AND lease_owner = $2""",
        interaction_id, owner, reply_json)
    return _count(result) == 1


async def take_over(conn: asyncpg.Connection, owner: str, lease_s: float, limit: int) -> list[asyncpg.Record]:
    """Take up to `limit` of the oldest undelivered replies whose lease ran out, under `owner`'s lease."""
    return await conn.fetch(
        """UPDATE ai_interaction_queue q
           SET lease_owner = $1, lease_until = now() + make_interval(secs => $2)
           FROM (SELECT id, lease_owner AS previous FROM ai_interaction_queue
                 WHERE status = 'sending' AND lease_until < now()
                 ORDER BY accepted_at LIMIT $3 FOR UPDATE SKIP LOCKED) next
           WHERE q.id = next.id
           RETURNING q.id::text AS id, q.payload::text AS payload, q.request_id, q.reply::text AS reply,
                     next.previous, extract(epoch FROM now() - q.accepted_at)::float8 AS age_s""",
        owner, float(lease_s), limit)


async def release(conn: asyncpg.Connection, owner: str) -> int:
    """Shutdown: `owner`'s undelivered replies become takeable by the other instances at once."""
    return _count(await conn.execute(
        """UPDATE ai_interaction_queue SET lease_owner = NULL, lease_until = now()
           WHERE status = 'sending' AND lease_owner = $1""", owner))
