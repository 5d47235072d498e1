"""Inserts of new interactions into the queue, in batches: a group commit.

Each insert is one statement (the dedupe key and the row), so one round trip and one commit. The
interactions that arrive during one turn of the event loop share that statement (and those that
arrive while ENQUEUE_WRITERS statements are in flight share the next one). Each request still waits
for the commit of its own row, and a failed statement fails all of them (StoreUnavailable: 503).
Near the MAX_QUEUE bound (the queue decides when) an interaction is inserted alone, by a statement
that counts the waiting rows, so that the refusal (QueueFull: 429) is exact.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from storage.errors import StoreUnavailable
from observability.logs import get_logger
from interactions.queue import queue_sql
from storage.db import DB_ERRORS, Database, describe

log = get_logger(__name__)
ENQUEUE_BATCH = 256       # interactions per insert statement, at most
ENQUEUE_WRITERS = 4       # insert statements in flight at once (at most half the pool)


class EnqueueBatcher:
    def __init__(self, db: Database, *, dedupe_window_s: float, max_queue: int,
                 on_queued: Callable[[int], None]) -> None:
        """`on_queued(n)`: n new rows were committed (duplicates and refusals are not counted)."""
        self.db, self.dedupe_window_s, self.max_queue = db, dedupe_window_s, max_queue
        self._on_queued = on_queued
        self._batch: list[tuple[queue_sql.Row, asyncio.Future[str | None]]] = []  # for the next insert
        self._flush_soon = False
        self._writers = 0  # insert statements in flight
        self._writing = 0  # rows in them
        self.max_writers = max(1, min(ENQUEUE_WRITERS, db.max_size // 2))
        self._writer_tasks: set[asyncio.Task[None]] = set()

    @property
    def unsent(self) -> int:
        """Rows not committed yet: in statements in flight and waiting to be sent."""
        return self._writing + len(self._batch)

    async def insert(self, row: queue_sql.Row) -> str | None:
        """Queue `row` with the next batch (unbounded); returns the id the message belongs to."""
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._batch.append((row, future))
        self._schedule_flush()
        return await future

    async def insert_counted(self, row: queue_sql.Row) -> str | None:
        """Near the bound: one interaction, counting the waiting rows in the same statement.
        Returns the id the message belongs to, or None when the queue is full."""
        try:
            async with self.db.acquire() as conn:
                winner = await queue_sql.enqueue(conn, *row[:5], key=row[5], window_s=self.dedupe_window_s,
                                                 bound=self.max_queue)
        except DB_ERRORS as exc:
            self._refused(exc, 1)
            raise StoreUnavailable() from None
        if winner == row[0]:
            self._on_queued(1)
        return winner

    async def drain(self) -> None:
        """Wait for the inserts in flight (they answer their requests first)."""
        if self._writer_tasks:
            await asyncio.gather(*self._writer_tasks, return_exceptions=True)

    def _refused(self, exc: BaseException, count: int) -> None:
        self.db.mark_down(exc, "enqueue")
        log.warning("interaction refused: store unavailable", action="enqueue", result="unavailable",
                    error=describe(exc), refused=count)

    def _schedule_flush(self) -> None:
        if not self._flush_soon and self._writers < self.max_writers:
            self._flush_soon = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """Write what arrived during this turn of the event loop (and while all writers were busy)."""
        self._flush_soon = False
        while self._batch and self._writers < self.max_writers:
            batch, self._batch = self._batch[:ENQUEUE_BATCH], self._batch[ENQUEUE_BATCH:]
            self._writers += 1
            self._writing += len(batch)
            task = asyncio.create_task(self._write_batch(batch), name="queue-enqueue")
            self._writer_tasks.add(task)
            task.add_done_callback(self._writer_tasks.discard)

    async def _write_batch(self, batch: list[tuple[queue_sql.Row, asyncio.Future[str | None]]]) -> None:
        try:
            rows = [row for row, _ in batch]
            try:
                async with self.db.acquire() as conn:
                    if len(rows) == 1:
                        winners = [await queue_sql.enqueue(conn, *rows[0][:5], key=rows[0][5],
                                                           window_s=self.dedupe_window_s, bound=None)]
                    else:
                        winners = await queue_sql.enqueue_many(conn, rows, self.dedupe_window_s)
            except Exception as exc:  # never an ACK without the commit: every waiting request fails
                if isinstance(exc, DB_ERRORS):
                    self._refused(exc, len(batch))
                else:
                    log.error("enqueue failed", action="enqueue", result="error", refused=len(batch), exc_info=exc)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(StoreUnavailable())
                return
            queued = 0
            for (row, future), winner in zip(batch, winners):
                queued += winner == row[0]
                if not future.done():
                    future.set_result(winner)
            if queued:
                self._on_queued(queued)
        finally:
            self._writers -= 1
            self._writing -= len(batch)
            if self._batch:
                self._schedule_flush()
