"""The durable interaction queue in PostgreSQL, shared by every instance (the MemoryQueue interface).

- `enqueue`: the dedupe key and the row in one statement, so one round trip and one commit; the 202
  is answered only after that COMMIT (`synchronous_commit` as configured: on, by default). The
  interactions that arrive during one turn of the event loop share that statement (and those that
  arrive while ENQUEUE_WRITERS statements are in flight share the next one): a group commit. Each
  request still waits for the commit of its own row, and a failed statement fails all of them (503).
- The MAX_QUEUE bound: waiting rows are counted only when the queue may be half full. Below that the
  estimate decides: the queued count of the last poll (all instances, every QUEUE_POLL_S) plus this
  instance's inserts (committed, in flight and waiting to be sent) minus its claims since. Above it
  each insert counts the waiting rows in its own statement, so the 429 is exact near the bound;
  other instances' inserts between two polls could only overshoot the bound if they filled half
  the queue within one poll interval.
- `claim`: one claimer task per instance takes as many rows as workers are idle, in one statement,
  `FOR UPDATE SKIP LOCKED` under a lease of QUEUE_LEASE_S, renewed every third of it while this
  process lives; a row whose lease ran out (its instance died) is claimed again: a takeover. A claim
  never takes more rows than idle workers wait for, so nothing is held that nobody processes.
- Waking the claimer: after an insert, this instance's claimer directly when a worker is idle, else
  the other instances by NOTIFY, at most one per NOTIFY_INTERVAL_S and never in the insert itself
  (PostgreSQL serializes notifying commits on one lock held through the commit: a NOTIFY in every
  insert would serialize the enqueues and defeat group commit). The polling loop (QUEUE_POLL_S)
  rings too and watches the store: while PostgreSQL is unreachable new interactions get 503 at once
  and workers wait; both resume on their own when the poll succeeds again.
- `finish`: the row keeps its outcome but no content. Outcomes are written in batches (one statement
  for all the outcomes that arrived while the previous batch was written); `finish` returns once its
  batch is written. A finish that cannot be written is retried with its lease kept alive, so that no
  other instance processes the interaction again.
- Shutdown: `stop_claiming()`; `aclose()` writes pending outcomes, then puts this instance's
  unfinished rows (claimed ones not yet processed included) back in the queue.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from collections import deque

import asyncpg
from pydantic import ValidationError

from api.models import InteractionRequest
from services import metrics
from services.interaction import Interaction, dedupe_key
from services.interaction_queue import Enqueued, QueueFull, StoreUnavailable
from services.logs import get_logger
from storage import queue_sql
from storage.db import DB_ERRORS, Database, describe
from storage.doorbell import Doorbell
from storage.leases import Leases
from storage.listener import Listener

log = get_logger(__name__)
_RESTORE = {"max_message_chars": sys.maxsize}  # validated at the ACK already
ENQUEUE_BATCH = 256       # interactions per insert statement, at most
ENQUEUE_WRITERS = 4       # insert statements in flight at once (at most half the pool)
CLAIM_BATCH = 64          # rows per claim statement, at most
NOTIFY_INTERVAL_S = 0.05  # at most one NOTIFY per this interval and instance


class PgQueue:
    durable = True

    def __init__(self, db: Database, *, owner: str, max_queue: int, dedupe_window_s: float,
                 lease_s: float, poll_s: float) -> None:
        self.db, self.owner = db, owner
        self.max_queue, self.dedupe_window_s = max_queue, dedupe_window_s
        self.lease_s, self.poll_s = lease_s, poll_s
        self.count_from = max_queue // 2  # estimated depth from which each insert counts waiting rows
        self._depth = 0  # rows waiting (all instances) at the last poll
        self._drift = 0  # this instance's inserts minus its claims since that poll
        self._healthy: bool | None = None  # None: not polled yet; False: the poll failed
        self._claiming = True
        self._leases = Leases(db, owner, lease_s, poll_s)
        self._bell = Doorbell()  # rows may be claimable: wakes the claimer
        self._idle: deque[asyncio.Future[None]] = deque()  # workers waiting in claim()
        self._ready: deque[asyncpg.Record] = deque()  # claimed for them, not picked up yet
        self._owed = 0  # workers woken for a row in _ready that have not run yet
        self._hungry = asyncio.Event()  # a worker became idle
        self._batch: list[tuple[queue_sql.Row, asyncio.Future[str | None]]] = []  # for the next insert
        self._flush_soon = False
        self._writers = 0  # insert statements in flight
        self._writing = 0  # rows in them
        self.max_writers = max(1, min(ENQUEUE_WRITERS, db.max_size // 2))
        self._writer_tasks: set[asyncio.Task[None]] = set()
        self._finishing: dict[str, str] = {}  # outcomes for the next batch
        self._finish_batch: asyncio.Future[None] | None = None
        self._last_notify = float("-inf")
        self._listener: Listener | None = None
        self._task: asyncio.Task[None] | None = None
        self._claimer: asyncio.Task[None] | None = None
        self._finisher: asyncio.Task[None] | None = None
        self._notifier: asyncio.Task[None] | None = None

    @property
    def channel(self) -> str:
        """The NOTIFY channel: one per schema (names are database-wide), at most 63 bytes."""
        channel = f"ai_interaction_queue:{self.db.schema}"
        if len(channel.encode()) > 63:
            channel = "ai_interaction_queue:" + hashlib.sha1(self.db.schema.encode()).hexdigest()[:32]
        return channel

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="queue-watch")
        self._leases.start()
        self._start_claimer()

    def _start_claimer(self) -> None:
        if self._claiming and (self._claimer is None or self._claimer.done()):
            self._claimer = asyncio.create_task(self._claim_loop(), name="queue-claim")

    # --- the MemoryQueue interface -------------------------------------------------------------
    async def enqueue(self, interaction: Interaction) -> Enqueued:
        req = interaction.request
        if self._healthy is False:  # known down: answer 503 at once rather than wait for timeouts
            raise StoreUnavailable()
        row = (interaction.id, req.model_dump_json(), interaction.request_id, req.platform, req.user_id,
               dedupe_key(req) if self.dedupe_window_s > 0 else None)
        if self._depth + self._drift + self._writing + len(self._batch) >= self.count_from:
            winner = await self._enqueue_counted(row)
        else:
            future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
            self._batch.append((row, future))
            self._schedule_flush()
            winner = await future
        if winner is None:
            raise QueueFull
        if winner != interaction.id:
            return Enqueued(winner, duplicate=True)
        return Enqueued(interaction.id, duplicate=False)

    async def claim(self) -> Interaction:
        """Wait for the next interaction this instance may process."""
        loop = asyncio.get_running_loop()
        while True:
            if not self._claiming:
                await loop.create_future()  # until the worker is cancelled
            if self._ready:
                interaction = self._restore(self._ready.popleft())
                if interaction is not None:
                    return interaction
                continue
            self._start_claimer()
            waiter: asyncio.Future[None] = loop.create_future()
            self._idle.append(waiter)
            self._hungry.set()
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter in self._idle:  # cancelled while waiting
                    self._idle.remove(waiter)
                elif not waiter.cancelled():  # cancelled after a row was claimed for it: left for the next
                    self._owed -= 1
                raise
            self._owed -= 1

    async def finish(self, interaction: Interaction, outcome: str) -> None:
        """Returns once the outcome is written (or deferred with its lease kept, when it cannot be)."""
        self._finishing[interaction.id] = outcome
        if self._finish_batch is None:
            self._finish_batch = asyncio.get_running_loop().create_future()
        batch = self._finish_batch
        if self._finisher is None or self._finisher.done():
            self._finisher = asyncio.create_task(self._write_outcomes(), name="queue-finish")
        await asyncio.shield(batch)

    def depth(self) -> int:
        """Interactions waiting (all instances), as of the last poll."""
        return self._depth

    async def reachable(self) -> bool:
        """For /ready: the poll has not seen the store fail since it last worked, and it answers now."""
        return self._healthy is not False and await self.db.probe()

    def take_all(self) -> list[Interaction]:
        return []  # nothing to hand back: unfinished rows stay queued for another instance

    def stop_claiming(self) -> None:
        self._claiming = False
        self._bell.ring_all()
        self._hungry.set()

    async def erase_user(self, platform: str, user_id: str) -> int:
        try:
            async with self.db.acquire() as conn:
                return await queue_sql.erase_user(conn, platform, user_id)
        except DB_ERRORS as exc:
            self.db.mark_down(exc, "erase")
            raise StoreUnavailable() from None

    async def aclose(self) -> None:
        self._claiming = False
        if self._writer_tasks:  # inserts in flight answer their requests first
            await asyncio.gather(*self._writer_tasks, return_exceptions=True)
        tasks = [t for t in (self._task, self._claimer, self._notifier) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._finisher is not None:  # outcomes being written are written before the release
            await asyncio.gather(self._finisher, return_exceptions=True)
        await self._leases.stop()
        if self.db.pool is not None:
            try:
                unstarted = [row["id"] for row in self._ready]  # claimed, never handed to a worker
                self._ready.clear()
                async with self.db.acquire() as conn:
                    released = await queue_sql.release(conn, self.owner, unstarted)
                if released:
                    log.info("unfinished interactions left queued for another instance", action="shutdown",
                             released=released)
            except DB_ERRORS as exc:
                log.warning("could not release claims; another instance takes them after the lease",
                            action="shutdown", error=describe(exc), leased=len(self._leases.held))
        if self._listener is not None:
            await self._listener.close()

    # --- enqueueing ----------------------------------------------------------------------------
    def _refused(self, exc: BaseException, count: int) -> None:
        self.db.mark_down(exc, "enqueue")
        log.warning("interaction refused: store unavailable", action="enqueue", result="unavailable",
                    error=describe(exc), refused=count)

    async def _enqueue_counted(self, row: queue_sql.Row) -> str | None:
        """Near the bound: one interaction, counting the waiting rows in the same statement."""
        try:
            async with self.db.acquire() as conn:
                winner = await queue_sql.enqueue(conn, *row[:5], key=row[5], window_s=self.dedupe_window_s,
                                                 bound=self.max_queue)
        except DB_ERRORS as exc:
            self._refused(exc, 1)
            raise StoreUnavailable() from None
        if winner == row[0]:
            self._drift += 1
            self._announce()
        return winner

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
                self._drift += queued
                self._announce()
        finally:
            self._writers -= 1
            self._writing -= len(batch)
            if self._batch:
                self._schedule_flush()

    # --- claiming ------------------------------------------------------------------------------
    def _restore(self, row: asyncpg.Record) -> Interaction | None:
        try:
            req = InteractionRequest.model_validate_json(row["payload"], context=_RESTORE)
        except ValidationError as exc:
            log.error("unreadable queued interaction", action="claim", interaction_id=row["id"],
                      result="failed", error=str(exc)[:200])
            self._leases.defer(row["id"], "failed")
            return None
        if row["attempts"] > 1:
            metrics.queue_takeovers_total.inc()
            log.warning("interaction taken over after its lease ran out", action="claim",
                        interaction_id=row["id"], attempts=row["attempts"], result="takeover")
        return Interaction(req, request_id=row["request_id"], id=row["id"], accepted_at=time.time() - row["age_s"])

    async def _claim_loop(self) -> None:
        """Claim rows for idle workers: as many as wait, in one statement; sleep when none are claimable."""
        while self._claiming:
            want = min(self._wanted(), CLAIM_BATCH)
            if want <= 0:
                self._hungry.clear()
                await self._hungry.wait()
                continue
            if not self._healthy:
                await self._bell.wait(self.poll_s)
                continue
            try:
                async with self.db.acquire() as conn:
                    rows = await queue_sql.claim(conn, self.owner, self.lease_s, want)
            except DB_ERRORS as exc:  # back off; the poll decides whether the store is down
                self.db.mark_down(exc, "claim")
                await self._bell.wait(self.poll_s)
                continue
            except Exception as exc:  # a bug must not leave every worker waiting for ever
                log.error("claim failed", action="claim", result="error", exc_info=exc)
                await self._bell.wait(self.poll_s)
                continue
            for row in rows:
                self._leases.add(row["id"])
                self._ready.append(row)
            self._drift -= len(rows)
            woken = 0
            while woken < len(rows) and self._idle:
                waiter = self._idle.popleft()
                if not waiter.done():
                    waiter.set_result(None)
                    woken += 1
            self._owed += woken
            if len(rows) < want:  # none left for now: until an insert, a NOTIFY or the poll rings
                await self._bell.wait(self.poll_s * 10)

    def _wanted(self) -> int:
        """Idle workers, less the rows already claimed that no woken worker is about to take."""
        return len(self._idle) - (len(self._ready) - self._owed)

    def _announce(self) -> None:
        """A row was committed: wake this instance's claimer when a worker is idle, else the others'."""
        if self._wanted() > 0:
            self._bell.ring()
        elif self._notifier is None or self._notifier.done():
            self._notifier = asyncio.create_task(self._notify(), name="queue-notify")

    async def _notify(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self._last_notify + NOTIFY_INTERVAL_S - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        self._last_notify = loop.time()
        try:
            async with self.db.acquire() as conn:
                await queue_sql.notify(conn, self.channel)
        except DB_ERRORS as exc:  # the other instances' polls find the rows anyway
            self.db.mark_down(exc, "notify")

    # --- finishing -----------------------------------------------------------------------------
    async def _write_outcomes(self) -> None:
        while self._finishing:
            pending, self._finishing = self._finishing, {}
            batch, self._finish_batch = self._finish_batch, None
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

    # --- background: polling and health ---------------------------------------------------
    def _unhealthy(self, exc: BaseException) -> None:
        self.db.mark_down(exc, "poll")
        if self._healthy is not False:
            self._healthy = False
            log.error("store unreachable: new interactions get 503, workers wait and retry",
                      action="queue_watch", result="down", error=describe(exc))

    async def _watch(self) -> None:
        await self.db.wait_connected()
        self._listener = Listener(self.db, self.channel, self._bell.ring)
        delay = self.poll_s
        while True:
            try:
                async with self.db.acquire() as conn:
                    queued, claimable = await queue_sql.counts(conn)
            except DB_ERRORS as exc:
                self._unhealthy(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, max(2.0, self.poll_s))
                continue
            delay = self.poll_s
            self._depth, self._drift = queued, 0
            metrics.queue_depth.set(queued)
            if not self._healthy:
                self._healthy = True
                self.db.mark_up()
                log.info("store reachable: accepting and processing", action="queue_watch", result="up",
                         queued=queued)
                self._bell.ring_all()
            elif claimable:
                self._bell.ring()
            await self._listener.ensure()
            await asyncio.sleep(self.poll_s)

