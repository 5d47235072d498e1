"""Outcomes of processed interactions, written to the queue in batches.

A finished row keeps its outcome but no content. One statement writes all the outcomes that arrived
while the previous batch was written; `write` returns once its batch is written. An outcome that
cannot be written is handed to `Leases`, which retries it with the lease kept alive, so that no
other instance processes the interaction again.
"""

from __future__ import annotations

import asyncio

from observability.logs import get_logger
from interactions.queue import queue_sql
from storage.db import DB_ERRORS, Database, describe
from interactions.queue.leases import Leases

log = get_logger(__name__)


class OutcomeBatcher:
    def __init__(self, db: Database, leases: Leases) -> None:
        self.db, self._leases = db, leases
        self._pending: dict[str, str] = {}  # interaction id → outcome, for the next batch
        self._batch: asyncio.Future[None] | None = None  # done when the next batch is written
        self._task: asyncio.Task[None] | None = None

    async def write(self, interaction_id: str, outcome: str) -> None:
        """Returns once the outcome is written (or deferred with its lease kept, when it cannot be)."""
        self._pending[interaction_id] = outcome
        if self._batch is None:
            self._batch = asyncio.get_running_loop().create_future()
        batch = self._batch
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write_outcomes(), name="queue-finish")
        await asyncio.shield(batch)

    async def drain(self) -> None:
        """Wait until the outcomes being written are written (or deferred)."""
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _write_outcomes(self) -> None:
        while self._pending:
            pending, self._pending = self._pending, {}
            batch, self._batch = self._batch, None
            try:
                async with self.db.acquire() as conn:
                    await queue_sql.finish(conn, list(pending), list(pending.values()))
            except Exception as exc:  # written later by the leases' retry; a bug is logged, not lost
                if isinstance(exc, DB_ERRORS):
                    self.db.mark_down(exc, "finish")
                else:
                    log.error("writing outcomes failed", action="finish", result="error", exc_info=exc)
                for interaction_id, outcome in pending.items():
                    self._leases.defer(interaction_id, outcome)  # retried; the lease stays renewed meanwhile
                    log.warning("outcome not written yet, will retry", action="finish",
                                interaction_id=interaction_id, result=outcome, error=describe(exc))
            else:
                for interaction_id in pending:
                    self._leases.done(interaction_id)
            finally:
                if batch is not None and not batch.done():
                    batch.set_result(None)
