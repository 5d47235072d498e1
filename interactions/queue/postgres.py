"""The durable interaction queue in PostgreSQL, shared by every instance (the MemoryQueue interface).

- `enqueue`: the row and its dedupe key in one statement, shared by the interactions that arrive
  together (interactions/queue/enqueue_batches.py); the 202 is answered only after that COMMIT
  (`synchronous_commit` as configured: on, by default).
- The MAX_QUEUE bound: waiting rows are counted only when the queue may be half full. Below that the
  estimate decides: the queued count of the last poll (all instances, every QUEUE_POLL_S) plus this
  instance's inserts (committed, in flight and waiting to be sent) minus its claims since. Above it
  each insert counts the waiting rows in its own statement, so the 429 is exact near the bound;
  other instances' inserts between two polls could only overshoot the bound if they filled half
  the queue within one poll interval.
- With REDIS_URL, dedupe keys are looked up in Redis first (a router retry costs no statement) and
  the winner is recorded there after the commit (interactions/queue/shared_dedupe.py); this table
  stays the judge.
- `claim`: the claimer (interactions/queue/claimer.py) takes rows for idle workers under a lease, renewed while
  this process lives (interactions/queue/leases.py); a row whose lease ran out is claimed again: a takeover.
  After an insert the claimer wakes this instance's workers, or the other instances by NOTIFY.
- The polling loop (QUEUE_POLL_S) rings the claimer too, keeps the LISTEN for other instances'
  NOTIFYs, and watches the store: while PostgreSQL is unreachable new interactions get 503 at once
  and workers wait; both resume on their own when the poll succeeds again.
- `finish`: returns once the outcome is written, in a batch (interactions/queue/outcome_batches.py); one that
  cannot be written is retried with its lease kept alive. An interaction with a reply is finished by
  the reply outbox once it is done with the reply (interactions/outbox/postgres.py): until then its
  row is 'sending', under this instance's lease.
- Shutdown: `stop_claiming()`; `aclose()` writes pending outcomes, then puts this instance's
  unfinished rows (claimed ones not yet processed included) back in the queue.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import TYPE_CHECKING

import asyncpg
from pydantic import ValidationError

from interactions.model import InteractionRequest
from observability import metrics
from interactions.model import Interaction, dedupe_key
from interactions.queue.base import Enqueued, QueueFull
from storage.errors import StoreUnavailable
from observability.logs import get_logger
from interactions.queue import queue_sql
from interactions.queue.claimer import Claimer, notify_channel
from storage.db import DB_ERRORS, Database, describe
from storage.doorbell import Doorbell
from interactions.queue.enqueue_batches import EnqueueBatcher
from interactions.queue.leases import Leases
from storage.listener import Listener
from interactions.queue.outcome_batches import OutcomeBatcher

if TYPE_CHECKING:  # redis is imported only with REDIS_URL
    from interactions.queue.shared_dedupe import SharedDedupe

log = get_logger(__name__)
_RESTORE = {"max_message_chars": sys.maxsize}  # validated at the ACK already
TRACE_CONTEXT_KEY = "trace_context"  # beside the request's fields in the stored payload
_encode = json.JSONEncoder(separators=(",", ":")).encode


def stored_payload(interaction: Interaction) -> str:
    """The row's `payload`: the request as validated, and with tracing on the ACK's trace context
    (W3C headers) under TRACE_CONTEXT_KEY, so that whichever instance claims the row continues the
    trace. The request model ignores that key when the row is read back (by any version)."""
    payload = interaction.request.model_dump_json()
    if not interaction.trace_context:
        return payload
    return f'{payload[:-1]},"{TRACE_CONTEXT_KEY}":{_encode(interaction.trace_context)}}}'


class PgQueue:
    durable = True

    def __init__(self, db: Database, *, owner: str, max_queue: int, dedupe_window_s: float,
                 lease_s: float, poll_s: float, shared: SharedDedupe | None = None) -> None:
        self.db, self.owner = db, owner
        self._shared = shared if dedupe_window_s > 0 else None
        self.max_queue, self.dedupe_window_s = max_queue, dedupe_window_s
        self.lease_s, self.poll_s = lease_s, poll_s
        self.count_from = max_queue // 2  # estimated depth from which each insert counts waiting rows
        self._depth = 0  # rows waiting (all instances) at the last poll
        self._drift = 0  # this instance's inserts minus its claims since that poll
        self._healthy: bool | None = None  # None: not polled yet; False: the poll failed
        self._leases = Leases(db, owner, lease_s, poll_s)
        self._bell = Doorbell()  # rows may be claimable: wakes the claimer
        self._claimer = Claimer(db, owner=owner, lease_s=lease_s, poll_s=poll_s, leases=self._leases,
                                bell=self._bell, healthy=lambda: bool(self._healthy),
                                on_claimed=self._claimed)
        self._enqueues = EnqueueBatcher(db, dedupe_window_s=dedupe_window_s, max_queue=max_queue,
                                        on_queued=self._queued)
        self._outcomes = OutcomeBatcher(db, self._leases)
        self._listener: Listener | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def leases(self) -> Leases:
        """The claims this instance holds (the reply outbox keeps its replies' leases here too)."""
        return self._leases

    @property
    def channel(self) -> str:
        """The NOTIFY channel of this schema's queue."""
        return notify_channel(self.db.schema)

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch(), name="queue-watch")
        self._leases.start()
        self._claimer.start()

    # --- the MemoryQueue interface -------------------------------------------------------------
    async def enqueue(self, interaction: Interaction) -> Enqueued:
        req = interaction.request
        key = dedupe_key(req) if self.dedupe_window_s > 0 else None
        if self._shared is not None and key is not None:
            first = await self._shared.lookup(key)
            if first is not None:
                return Enqueued(first, duplicate=True)
        if self._healthy is False:  # known down: answer 503 at once rather than wait for timeouts
            raise StoreUnavailable()
        row = (interaction.id, stored_payload(interaction), interaction.request_id, req.platform, req.user_id, key)
        if self._depth + self._drift + self._enqueues.unsent >= self.count_from:
            winner = await self._enqueues.insert_counted(row)
        else:
            winner = await self._enqueues.insert(row)
        if winner is None:
            raise QueueFull
        if self._shared is not None and key is not None:
            await self._shared.remember(key, str(winner))
        if winner != interaction.id:
            return Enqueued(winner, duplicate=True)
        return Enqueued(interaction.id, duplicate=False)

    async def claim(self) -> Interaction:
        """Wait for the next interaction this instance may process."""
        while True:
            interaction = self._restore(await self._claimer.next_row())
            if interaction is not None:
                return interaction

    async def finish(self, interaction: Interaction, outcome: str) -> None:
        """Returns once the outcome is written (or deferred with its lease kept, when it cannot be)."""
        await self._outcomes.write(interaction.id, outcome)

    def depth(self) -> int:
        """Interactions waiting (all instances), as of the last poll."""
        return self._depth

    async def reachable(self) -> bool:
        """For /ready: the poll has not seen the store fail since it last worked, and it answers now."""
        return self._healthy is not False and await self.db.probe()

    def take_all(self) -> list[Interaction]:
        return []  # nothing to hand back: unfinished rows stay queued for another instance

    def stop_claiming(self) -> None:
        self._claimer.stop()

    async def erase_user(self, platform: str, user_id: str) -> int:
        try:
            async with self.db.acquire() as conn:
                return await queue_sql.erase_user(conn, platform, user_id)
        except DB_ERRORS as exc:
            self.db.mark_down(exc, "erase")
            raise StoreUnavailable() from None

    async def aclose(self) -> None:
        self._claimer.halt()
        await self._enqueues.drain()  # inserts in flight answer their requests first
        if self._task is not None:
            self._task.cancel()
        await self._claimer.aclose()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self._outcomes.drain()  # outcomes being written are written before the release
        await self._leases.stop()
        if self.db.pool is not None:
            try:
                unstarted = self._claimer.unstarted()  # claimed, never handed to a worker
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

    # --- the estimated depth -------------------------------------------------------------------
    def _queued(self, rows: int) -> None:
        """Rows this instance committed: counted until the next poll, and announced to the claimers."""
        self._drift += rows
        self._claimer.announce()

    def _claimed(self, rows: int) -> None:
        self._drift -= rows

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
        carried = row["trace_context"]
        return Interaction(req, request_id=row["request_id"], id=row["id"], accepted_at=time.time() - row["age_s"],
                           trace_context=json.loads(carried) if carried else None)

    # --- background: polling and health -------------------------------------------------------
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
