"""The claimer of one instance: claims queued rows for its idle workers, and wakes the other instances'.

- One claimer task per instance takes as many rows as workers are idle, in one statement,
  `FOR UPDATE SKIP LOCKED` under a lease of QUEUE_LEASE_S (kept alive by `Leases`); a row whose
  lease ran out (its instance died) is claimed again: a takeover. A claim never takes more rows than
  idle workers wait for, so nothing is held that nobody processes. Claimed rows no worker picked up
  yet are handed back by `unstarted()` at shutdown.
- Waking: the claimer sleeps on the doorbell when nothing is claimable. After an insert `announce()`
  rings this instance's doorbell directly when a worker is idle, else tells the other instances by
  NOTIFY, at most one per NOTIFY_INTERVAL_S and never in the insert itself (PostgreSQL serializes
  notifying commits on one lock held through the commit: a NOTIFY in every insert would serialize
  the enqueues and defeat group commit).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import deque
from typing import Callable

import asyncpg

from observability.logs import get_logger
from interactions.queue import queue_sql
from storage.db import DB_ERRORS, Database
from storage.doorbell import Doorbell
from interactions.queue.leases import Leases

log = get_logger(__name__)
CLAIM_BATCH = 64          # rows per claim statement, at most
NOTIFY_INTERVAL_S = 0.05  # at most one NOTIFY per this interval and instance


def notify_channel(schema: str) -> str:
    """The NOTIFY channel: one per schema (names are database-wide), at most 63 bytes."""
    channel = f"ai_interaction_queue:{schema}"
    if len(channel.encode()) > 63:
        channel = "ai_interaction_queue:" + hashlib.sha1(schema.encode()).hexdigest()[:32]
    return channel


class Claimer:
    def __init__(self, db: Database, *, owner: str, lease_s: float, poll_s: float, leases: Leases,
                 bell: Doorbell, healthy: Callable[[], bool], on_claimed: Callable[[int], None]) -> None:
        """`bell` wakes the claimer; `healthy()`: the store answered the last poll; `on_claimed(n)`:
        n rows left the queue for this instance."""
        self.db, self.owner, self.lease_s, self.poll_s = db, owner, lease_s, poll_s
        self._leases, self._bell = leases, bell
        self._healthy, self._on_claimed = healthy, on_claimed
        self._claiming = True
        self._idle: deque[asyncio.Future[None]] = deque()  # workers waiting in next_row()
        self._ready: deque[asyncpg.Record] = deque()  # claimed for them, not picked up yet
        self._owed = 0  # workers woken for a row in _ready that have not run yet
        self._hungry = asyncio.Event()  # a worker became idle
        self._last_notify = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self._notifier: asyncio.Task[None] | None = None

    @property
    def idle_workers(self) -> int:
        return len(self._idle)

    @property
    def notifying(self) -> bool:
        """A NOTIFY is due or being sent."""
        return self._notifier is not None and not self._notifier.done()

    def start(self) -> None:
        if self._claiming and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._claim_loop(), name="queue-claim")

    async def next_row(self) -> asyncpg.Record:
        """Wait for the next row claimed for this worker (for ever once claiming stopped)."""
        loop = asyncio.get_running_loop()
        while True:
            if not self._claiming:
                await loop.create_future()  # until the worker is cancelled
            if self._ready:
                return self._ready.popleft()
            self.start()
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

    def stop(self) -> None:
        """Claim nothing more; waiting workers wait until cancelled."""
        self._claiming = False
        self._bell.ring_all()
        self._hungry.set()

    def halt(self) -> None:
        """Shutdown: claim nothing more (the tasks are cancelled by `aclose`)."""
        self._claiming = False

    async def aclose(self) -> None:
        self._claiming = False
        tasks = [t for t in (self._task, self._notifier) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def unstarted(self) -> list[str]:
        """The ids of rows claimed but never handed to a worker; forgotten here."""
        ids = [row["id"] for row in self._ready]
        self._ready.clear()
        return ids

    async def _claim_loop(self) -> None:
        """Claim rows for idle workers: as many as wait, in one statement; sleep when none are claimable."""
        while self._claiming:
            want = min(self._wanted(), CLAIM_BATCH)
            if want <= 0:
                self._hungry.clear()
                await self._hungry.wait()
                continue
            if not self._healthy():
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
            self._on_claimed(len(rows))
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

    def announce(self) -> None:
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
                await queue_sql.notify(conn, notify_channel(self.db.schema))
        except DB_ERRORS as exc:  # the other instances' polls find the rows anyway
            self.db.mark_down(exc, "notify")
