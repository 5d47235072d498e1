"""Periodic clean-up of the shared tables, run by every instance (the statements are idempotent).

Every `interval_s` (60 s): finished interactions older than QUEUE_RETENTION_S and expired dedupe
keys, context exchanges older than CONTEXT_TTL_S (deleted in batches), reply-limit rows that can no
longer refuse anything, and usage increments that could not be written earlier.
"""

from __future__ import annotations

import asyncio
from typing import Any

from observability.logs import get_logger
from interactions.queue import queue_sql
from storage.db import DB_ERRORS, Database, describe
from storage import pg_limits
from storage.pg_context import delete_expired

log = get_logger(__name__)
BATCH = 5000
MAX_BATCHES = 20


class Maintenance:
    def __init__(self, db: Database, usage: Any, retention_s: float, context_ttl_s: float,
                 interval_s: float = 60.0) -> None:
        self.db, self.usage = db, usage
        self.retention_s, self.context_ttl_s, self.interval_s = retention_s, context_ttl_s, interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="store-maintenance")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.db.pool is not None:
            await self.usage.flush()

    async def _loop(self) -> None:
        await self.db.wait_connected()
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval_s)

    async def run_once(self) -> dict[str, int]:
        """One round; returns the rows removed per kind (nothing when the store is unreachable).

        Deletes in batches of BATCH rows and keeps going (up to MAX_BATCHES) while batches come
        back full, so a busy deployment does not outgrow its clean-up."""
        removed = {"finished": 0, "dedupe_keys": 0, "context": 0, "rate_limits": 0}
        try:
            async with self.db.acquire() as conn:
                for _ in range(MAX_BATCHES):
                    finished, keys = await queue_sql.prune(conn, self.retention_s, BATCH)
                    context = await delete_expired(conn, self.context_ttl_s, BATCH)
                    limits = await pg_limits.delete_expired(conn, BATCH)
                    removed["finished"] += finished
                    removed["dedupe_keys"] += keys
                    removed["context"] += context
                    removed["rate_limits"] += limits
                    if max(finished, keys, context, limits) < BATCH:
                        break
        except DB_ERRORS as exc:
            self.db.mark_down(exc, "maintenance")
            log.warning("maintenance skipped: store unavailable", action="store_maintenance", error=describe(exc))
            return removed
        await self.usage.flush()
        if any(removed.values()):
            log.info("pruned old rows", action="store_maintenance", **removed)
        return removed
