"""The durable interaction queue in PostgreSQL, shared by every instance (the MemoryQueue interface).

- `enqueue`: dedupe key and row in one transaction; the 202 is answered only after COMMIT.
- `claim`: `FOR UPDATE SKIP LOCKED` under a lease of QUEUE_LEASE_S, renewed every third of it while
  this process lives; a row whose lease ran out (its instance died) is claimed again: a takeover.
- Idle workers sleep on a doorbell rung by LISTEN/NOTIFY; a polling loop (QUEUE_POLL_S) rings it
  too and watches the store: while PostgreSQL is unreachable new interactions get 503 at once and
  workers wait; both resume on their own when the poll succeeds again.
- `finish`: the row keeps its outcome but no content. A finish that cannot be written is retried
  with its lease kept alive, so that no other instance processes the interaction again.
- Shutdown: `stop_claiming()`; `aclose()` puts this instance's unfinished rows back in the queue.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time

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


class PgQueue:
    durable = True

    def __init__(self, db: Database, *, owner: str, max_queue: int, dedupe_window_s: float,
                 lease_s: float, poll_s: float) -> None:
        self.db, self.owner = db, owner
        self.max_queue, self.dedupe_window_s = max_queue, dedupe_window_s
        self.lease_s, self.poll_s = lease_s, poll_s
        self._depth = 0
        self._healthy: bool | None = None  # None: not polled yet; False: the poll failed
        self._claiming = True
        self._leases = Leases(db, owner, lease_s, poll_s)
        self._bell = Doorbell()
        self._listener: Listener | None = None
        self._task: asyncio.Task[None] | None = None

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

    # --- the MemoryQueue interface -------------------------------------------------------------
    async def enqueue(self, interaction: Interaction) -> Enqueued:
        req = interaction.request
        if self._healthy is False:  # known down: answer 503 at once rather than wait for timeouts
            raise StoreUnavailable()
        try:
            async with self.db.acquire() as conn, conn.transaction():
                if self.dedupe_window_s > 0:
                    first = await queue_sql.remember_key(conn, dedupe_key(req), interaction.id,
                                                         self.dedupe_window_s)
                    if first != interaction.id:
                        return Enqueued(first, duplicate=True)
                if not await queue_sql.insert(conn, interaction.id, req.model_dump(mode="json"),
                                              interaction.request_id, req.platform, req.user_id,
                                              self.max_queue, self.channel):
                    raise QueueFull
        except DB_ERRORS as exc:
            self.db.mark_down(exc, "enqueue")
            log.warning("interaction refused: store unavailable", action="enqueue", result="unavailable",
                        error=describe(exc))
            raise StoreUnavailable() from None
        return Enqueued(interaction.id, duplicate=False)

    async def claim(self) -> Interaction:
        """Wait for the next interaction this instance may process."""
        while True:
            if not self._claiming:
                await asyncio.get_running_loop().create_future()  # until the worker is cancelled
            if not self._healthy:
                await self._bell.wait(self.poll_s)
                continue
            try:
                async with self.db.acquire() as conn:
                    row = await queue_sql.claim(conn, self.owner, self.lease_s)
            except DB_ERRORS as exc:  # this worker backs off; the poll decides whether the store is down
                self.db.mark_down(exc, "claim")
                await self._bell.wait(self.poll_s)
                continue
            if row is None:  # woken by NOTIFY, or by the poll when rows are claimable
                await self._bell.wait(self.poll_s * 10)
                continue
            self._leases.add(row["id"])
            try:
                req = InteractionRequest.model_validate(row["payload"], context=_RESTORE)
            except ValidationError as exc:
                log.error("unreadable queued interaction", action="claim", interaction_id=row["id"],
                          result="failed", error=str(exc)[:200])
                self._leases.defer(row["id"], "failed")
                continue
            if row["attempts"] > 1:
                metrics.queue_takeovers_total.inc()
                log.warning("interaction taken over after its lease ran out", action="claim",
                            interaction_id=row["id"], attempts=row["attempts"], result="takeover")
            return Interaction(req, request_id=row["request_id"], id=row["id"],
                               accepted_at=time.time() - row["age_s"])

    async def finish(self, interaction: Interaction, outcome: str) -> None:
        try:
            async with self.db.acquire() as conn:
                await queue_sql.finish(conn, [interaction.id], [outcome])
        except DB_ERRORS as exc:
            self.db.mark_down(exc, "finish")
            self._leases.defer(interaction.id, outcome)  # retried; the lease stays renewed meanwhile
            log.warning("outcome not written yet, will retry", action="finish", interaction_id=interaction.id,
                        result=outcome, error=describe(exc))
            return
        self._leases.done(interaction.id)

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

    async def erase_user(self, platform: str, user_id: str) -> int:
        try:
            async with self.db.acquire() as conn:
                return await queue_sql.erase_user(conn, platform, user_id)
        except DB_ERRORS as exc:
            self.db.mark_down(exc, "erase")
            raise StoreUnavailable() from None

    async def aclose(self) -> None:
        self._claiming = False
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._leases.stop()
        if self.db.pool is not None:
            try:
                async with self.db.acquire() as conn:
                    released = await queue_sql.release(conn, self.owner)
                if released:
                    log.info("unfinished interactions left queued for another instance", action="shutdown",
                             released=released)
            except DB_ERRORS as exc:
                log.warning("could not release claims; another instance takes them after the lease",
                            action="shutdown", error=describe(exc), leased=len(self._leases.held))
        if self._listener is not None:
            await self._listener.close()

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
            self._depth = queued
            metrics.queue_depth.set(queued)
            if not self._healthy:
                self._healthy = True
                self.db.mark_up()
                log.info("store reachable: accepting and processing", action="queue_watch", result="up",
                         queued=queued)
                self._bell.ring_all()
            elif claimable:
                self._bell.ring(claimable)
            await self._listener.ensure()
            await asyncio.sleep(self.poll_s)
