"""The claims one instance holds on queued interactions, kept alive until their outcome is written.

Every third of QUEUE_LEASE_S the leases of interactions still being processed are extended in one
statement; every QUEUE_POLL_S outcomes that could not be written (PostgreSQL unreachable at the
time) are tried again.
A lease that is no longer ours (finished or taken over elsewhere) is dropped and logged.
"""

from __future__ import annotations

import asyncio

from observability.logs import get_logger
from interactions.queue import queue_sql
from storage.db import DB_ERRORS, Database, describe

log = get_logger(__name__)


class Leases:
    def __init__(self, db: Database, owner: str, lease_s: float, retry_s: float) -> None:
        self.db, self.owner, self.lease_s = db, owner, lease_s
        self.retry_s = min(retry_s, lease_s / 3)
        self.held: set[str] = set()
        self.unwritten: dict[str, str] = {}  # interaction id → outcome not yet written
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="queue-leases")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.write_unwritten()

    def add(self, interaction_id: str) -> None:
        self.held.add(interaction_id)

    def defer(self, interaction_id: str, outcome: str) -> None:
        """Keep the lease and write `outcome` later."""
        self.held.add(interaction_id)
        self.unwritten[interaction_id] = outcome

    def done(self, interaction_id: str) -> None:
        self.held.discard(interaction_id)
        self.unwritten.pop(interaction_id, None)

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while True:
            await asyncio.sleep(self.retry_s)
            await self.write_unwritten()
            if loop.time() - renewed >= self.lease_s / 3 - self.retry_s / 2:
                renewed = loop.time()
                await self.renew()

    async def renew(self) -> None:
        ids = list(self.held)
        if not ids:
            return
        try:
            async with self.db.acquire() as conn:
                kept = await queue_sql.renew(conn, ids, self.owner, self.lease_s)
        except DB_ERRORS as exc:
            self.db.mark_down(exc, "renew")
            log.warning("lease renewal failed", action="queue_lease", error=describe(exc), leased=len(ids))
            return
        for lost in (i for i in ids if i not in kept and i in self.held):
            self.held.discard(lost)
            if self.unwritten.pop(lost, None) is None:
                log.warning("lease lost: interaction finished or taken over elsewhere", action="queue_lease",
                            interaction_id=lost, result="lost")

    async def write_unwritten(self) -> None:
        pending = dict(self.unwritten)
        if not pending or self.db.pool is None:
            return
        try:
            async with self.db.acquire() as conn:
                await queue_sql.finish(conn, list(pending), list(pending.values()))
        except DB_ERRORS as exc:
            self.db.mark_down(exc, "finish")
            return
        for interaction_id in pending:
            self.done(interaction_id)
