"""SQL of the durable interaction queue (table ai_interaction_queue, migration 0001), one function each.

Every function takes a connection; the caller owns transactions, pooling and error handling.
A row is claimable when it is 'queued', or 'working' with its lease run out (a dead instance).
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

_CLAIMABLE = "status IN ('queued', 'working') AND (status = 'queued' OR lease_until < now())"


# --- enqueue: the dedupe key and the row in one statement (one round trip, one commit) -------------
# `d` records key → id for the window unless a live record exists (concurrent callers with the same
# key serialize on its row; the loser's RETURNING gives the winner's id); `ins` queues the row only
# when `d` returned this interaction's id. Bounded variants first count waiting rows (up to the
# bound, on the pending index) and then neither record the key nor queue the row when full; `old`
# (read before this statement) still tells a duplicate of a live key from a refusal.
_KEY = """d AS (
               INSERT INTO ai_interaction_dedupe AS k (key, interaction_id, expires_at)
               SELECT $6, $1, now() + make_interval(secs => $7) {room_from}
               ON CONFLICT (key) DO UPDATE SET
                   interaction_id = CASE WHEN k.expires_at <= now() THEN EXCLUDED.interaction_id
                                         ELSE k.interaction_id END,
                   expires_at = CASE WHEN k.expires_at <= now() THEN EXCLUDED.expires_at
                                     ELSE k.expires_at END
               RETURNING interaction_id),
           ins AS (
               INSERT INTO ai_interaction_queue (id, payload, request_id, platform, user_id)
               SELECT $1, $2::text::jsonb, $3, $4, $5 FROM d WHERE d.interaction_id = $1
               RETURNING id)"""
_ROOM = """room AS (
               SELECT count(*) AS n FROM (
                   SELECT 1 FROM ai_interaction_queue WHERE status = 'queued' LIMIT {bound}) waiting)"""
_ENQUEUE = {
    # (deduplicating, bounded) → statement; the result is the id the message belongs to, or NULL (full)
    (True, False): f"WITH {_KEY.format(room_from='')} SELECT interaction_id::text FROM d",
    (True, True): "WITH " + _ROOM.format(bound="$8") + ",\n"
                  "           old AS (SELECT interaction_id FROM ai_interaction_dedupe"
                  " WHERE key = $6 AND expires_at > now()),\n           "
                  + _KEY.format(room_from="FROM room WHERE room.n < $8")
                  + "\n           SELECT coalesce((SELECT interaction_id FROM d),"
                    " (SELECT interaction_id FROM old))::text",
    (False, False): """INSERT INTO ai_interaction_queue (id, payload, request_id, platform, user_id)
                       VALUES ($1, $2::text::jsonb, $3, $4, $5) RETURNING id::text""",
    (False, True): "WITH " + _ROOM.format(bound="$6") + """
                    INSERT INTO ai_interaction_queue (id, payload, request_id, platform, user_id)
                    SELECT $1, $2::text::jsonb, $3, $4, $5 FROM room WHERE room.n < $6
                    RETURNING id::text""",
}


async def enqueue(conn: asyncpg.Connection, interaction_id: str, payload_json: str, request_id: str,
                  platform: str, user_id: str, *, key: str | None, window_s: float,
                  bound: int | None) -> str | None:
    """Queue one interaction in one statement (autocommit: committed when this returns).

    `key`: the dedupe key, remembered for `window_s` (None: no dedupe). `bound`: refuse when that
    many rows are waiting (None: do not count). Returns `interaction_id` when queued, the first
    interaction's id for a live duplicate, None when refused for the bound (nothing is written)."""
    args: list[object] = [interaction_id, payload_json, request_id, platform, user_id]
    if key is not None:
        args += [key, float(window_s)]
    if bound is not None:
        args.append(bound)
    winner = await conn.fetchval(_ENQUEUE[key is not None, bound is not None], *args)
    return None if winner is None else str(winner)


# Many interactions in one statement: the same, for rows given as arrays (keys unique within the
# batch, in key order, so that concurrent batches lock their dedupe keys in the same order).
_ENQUEUE_MANY = {
    True: """WITH input AS (
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
                     WITH ORDINALITY AS i(id, payload, request_id, platform, user_id, key, n)),
             d AS (
                 INSERT INTO ai_interaction_dedupe AS k (key, interaction_id, expires_at)
                 SELECT key, id, now() + make_interval(secs => $7) FROM input ORDER BY n
                 ON CONFLICT (key) DO UPDATE SET
                     interaction_id = CASE WHEN k.expires_at <= now() THEN EXCLUDED.interaction_id
                                           ELSE k.interaction_id END,
                     expires_at = CASE WHEN k.expires_at <= now() THEN EXCLUDED.expires_at
                                       ELSE k.expires_at END
                 RETURNING key, interaction_id),
             ins AS (
                 INSERT INTO ai_interaction_queue (id, payload, request_id, platform, user_id)
                 SELECT i.id, i.payload::jsonb, i.request_id, i.platform, i.user_id
                 FROM input i JOIN d ON d.key = i.key AND d.interaction_id = i.id
                 RETURNING id)
             SELECT key, interaction_id::text FROM d""",
    False: """INSERT INTO ai_interaction_queue (id, payload, request_id, platform, user_id)
              SELECT id, payload::jsonb, request_id, platform, user_id
              FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])
                  AS i(id, payload, request_id, platform, user_id)""",
}

Row = tuple[str, str, str, str, str, str | None]  # id, payload JSON, request id, platform, user id, key


async def enqueue_many(conn: asyncpg.Connection, rows: Sequence[Row], window_s: float) -> list[str | None]:
    """Queue many interactions in one statement, unbounded (autocommit: committed when this returns).

    Rows carry a dedupe key each, or none at all (no dedupe). Returns, per row, the id the message
    belongs to: its own when queued, the first interaction's for a duplicate (of a live key, or of
    an earlier row of the same batch)."""
    if rows and rows[0][5] is None:
        await conn.execute(_ENQUEUE_MANY[False], *(list(column) for column in zip(*(r[:5] for r in rows))))
        return [r[0] for r in rows]
    first: dict[str, Row] = {}
    for row in rows:
        first.setdefault(row[5], row)  # type: ignore[arg-type]
    unique = sorted(first.values(), key=lambda r: r[5])  # type: ignore[arg-type, return-value]
    columns = [list(column) for column in zip(*unique)]
    winners = dict(await conn.fetch(_ENQUEUE_MANY[True], *columns, float(window_s)))
    return [winners[r[5]] for r in rows]


async def notify(conn: asyncpg.Connection, channel: str) -> None:
    """Tell the other instances' claimers that rows are waiting."""
    await conn.execute("SELECT pg_notify($1, '')", channel)


async def claim(conn: asyncpg.Connection, owner: str, lease_s: float, limit: int = 1) -> list[asyncpg.Record]:
    """Take up to `limit` of the oldest claimable rows under a lease, oldest first (empty: nothing to do)."""
    rows = await conn.fetch(
        f"""UPDATE ai_interaction_queue q
            SET status = 'working', lease_owner = $1, attempts = q.attempts + 1,
                lease_until = now() + make_interval(secs => $2)
            FROM (SELECT id FROM ai_interaction_queue WHERE {_CLAIMABLE}
                  ORDER BY accepted_at LIMIT $3 FOR UPDATE SKIP LOCKED) next
            WHERE q.id = next.id
            RETURNING q.id::text AS id, q.payload::text AS payload, q.request_id, q.attempts,
                      (q.payload->'trace_context')::text AS trace_context,
                      extract(epoch FROM now() - q.accepted_at)::float8 AS age_s""",
        owner, float(lease_s), limit)
    return sorted(rows, key=lambda r: -r["age_s"])


async def finish(conn: asyncpg.Connection, ids: list[str], outcomes: list[str]) -> int:
    """Mark rows done with their outcome and forget their content (and undelivered reply: a row
    'sending' is the outbox's, interactions/outbox/outbox_sql.py); returns how many changed."""
    result = await conn.execute(
        """UPDATE ai_interaction_queue q
           SET status = 'done', outcome = f.outcome, finished_at = now(), lease_until = NULL,
               payload = NULL, platform = NULL, user_id = NULL, reply = NULL
           FROM unnest($1::uuid[], $2::text[]) AS f(id, outcome)
           WHERE q.id = f.id AND q.status IN ('working', 'sending')""", ids, outcomes)
    return int(result.split()[-1])


async def renew(conn: asyncpg.Connection, ids: list[str], owner: str, lease_s: float) -> set[str]:
    """Extend this owner's leases (of interactions being processed, and of replies in its outbox);
    returns the ids still held (others were taken over or finished)."""
    rows = await conn.fetch(
        """UPDATE ai_interaction_queue SET lease_until = now() + make_interval(secs => $3)
           WHERE id = ANY($1::uuid[]) AND status IN ('working', 'sending') AND lease_owner = $2
           RETURNING id::text""", ids, owner, float(lease_s))
    return {r[0] for r in rows}


async def release(conn: asyncpg.Connection, owner: str, unstarted: Sequence[str] = ()) -> int:
    """Put this owner's unfinished rows back in the queue at once (shutdown). Rows in `unstarted`
    were claimed but never processed: their claim is not counted as an attempt."""
    result = await conn.execute(
        """UPDATE ai_interaction_queue SET status = 'queued', lease_owner = NULL, lease_until = NULL,
                  attempts = attempts - (id = ANY($2::uuid[]))::int
           WHERE status = 'working' AND lease_owner = $1""", owner, list(unstarted))
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
