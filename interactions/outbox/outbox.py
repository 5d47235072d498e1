"""The reply outbox (§6): workers hand it finished replies and go on; its own senders deliver them.

- `put(reply)` returns at once (PostgreSQL mode: once the reply is in its interaction's row). Beyond
  OUTBOX_MAX undelivered replies a reply overflows: counted (`ai_outbox_overflow_total`) and logged
  with its interaction id; in memory mode it ends `failed`, in PostgreSQL mode it stays in the store
  for any instance with room (interactions/outbox/postgres.py).
- OUTBOX_SENDERS sender tasks make one attempt at a time (a ReplySink, router/sink.py: the router,
  router/client.py, or the console when ROUTER_API_URL is unset, router/console.py), whichever reply is due
  first (interactions/outbox/schedule.py). A retryable failure (connection error, timeout, 429,
  5xx) schedules the next attempt after the backoff or the router's `Retry-After`, within
  ROUTER_RETRY_MAX_S from the first attempt; meanwhile the reply holds no sender. A hanging router
  holds a sender for one attempt (ROUTER_TIMEOUT_S) at most.
- Before every attempt, the first included: a reply older than INTERACTION_MAX_AGE_S (from the
  ACK) is not posted: outcome `expired`.
- The interaction's outcome is recorded when the outbox is done with its reply (delivered: the
  pipeline's; refused or out of budget: `failed`; too old: `expired`), once, through the queue
  (PostgreSQL: the row becomes `done`) and interactions/outcomes.py. Only a delivered reply joins
  the context (`remember`).
- Every attempt of a reply carries the same `Idempotency-Key` (the interaction id): a reply posted
  again (an attempt that timed out after the router got it, an instance that died between the
  router's 2xx and the row's `done`) can be recognised by the router.
- PostgreSQL mode: every QUEUE_POLL_S the outbox takes undelivered replies no live instance holds
  (a dead instance's, once their lease ran out, or parked ones) while it has room.
- `drain()` lets it deliver until the shutdown deadline; `stop()` cancels the senders, then what is
  left is counted `failed` and logged one by one (memory), or left for another instance (PostgreSQL).
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

from interactions.model import Interaction
from interactions.outbox.pending import PendingReply
from interactions.outbox.schedule import Schedule
from interactions.outbox.store import ReplyStore
from interactions.outcomes import record_outcome
from interactions.queue.base import InteractionQueue
from observability import metrics, tracing
from observability.logs import get_logger
from router.client import Attempt
from router.sink import ReplySink

log = get_logger(__name__)
Remember = Callable[[Interaction, tuple[str, str]], Awaitable[None]]


class Outbox:
    def __init__(self, router: ReplySink, store: ReplyStore, queue: InteractionQueue, *, senders: int,
                 capacity: int, max_age_s: float, poll_s: float, remember: Remember) -> None:
        self.router, self.store, self.queue = router, store, queue
        self.senders, self.capacity = senders, capacity
        self.max_age_s, self.poll_s = max_age_s, poll_s
        self.remember = remember
        self._entries: dict[str, PendingReply] = {}  # undelivered, oldest first (scheduled or being sent)
        self._schedule: Schedule[PendingReply] = Schedule()
        self._tasks: list[asyncio.Task[None]] = []
        self._taking = True  # PostgreSQL mode: take other instances' undelivered replies

    # --- what the metrics and /status read ------------------------------------------------------
    def depth(self) -> int:
        """Undelivered replies this instance holds."""
        return len(self._entries)

    def oldest_s(self) -> float:
        """How long the oldest undelivered reply has been in this outbox (0 when empty)."""
        for reply in self._entries.values():
            return max(0.0, time.monotonic() - reply.since)
        return 0.0

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._send(i), name=f"outbox-sender-{i}") for i in range(self.senders)]
        if self.store.durable:
            self._tasks.append(asyncio.create_task(self._take_over(), name="outbox-takeover"))

    async def drain(self, grace_s: float, cut_short: asyncio.Event | None = None) -> bool:
        """Deliver what is held for up to `grace_s` (or until `cut_short`); take nothing new. True if empty."""
        self._taking = False
        deadline = time.monotonic() + grace_s
        while self._entries:
            if time.monotonic() >= deadline or (cut_short is not None and cut_short.is_set()):
                return False
            await asyncio.sleep(0.02)
        return True

    async def stop(self) -> None:
        """Cancel the senders; what is still undelivered is failed (memory) or released (PostgreSQL)."""
        self._taking = False
        for task in self._tasks:
            task.cancel()
        for result in await asyncio.gather(*self._tasks, return_exceptions=True):
            if isinstance(result, Exception):
                log.error("outbox task failed", action="outbox_stop", error=repr(result))
        self._tasks = []
        left = list(self._entries.values())
        self._entries.clear()
        if not left:
            return
        if self.store.durable:
            released = await self.store.release(left)
            log.info("undelivered replies left for another instance", action="shutdown", released=released,
                     held=len(left))
            return
        for reply in left:
            log.error("reply not delivered before shutdown", action="shutdown_drain", interaction_id=reply.id,
                      attempts=reply.attempts, result="failed")
            metrics.outbox_replies_total.labels(result="failed").inc()
            metrics.router_posts_total.labels(result="failed").inc()
            record_outcome(reply.interaction, "failed", reply.trigger, reply.started)

    # --- the worker's side ----------------------------------------------------------------------
    async def put(self, reply: PendingReply) -> None:
        """Take a finished reply; the interaction's outcome is recorded once the outbox is done with it."""
        reply.since = time.monotonic()
        if len(self._entries) >= self.capacity:
            await self._overflow(reply)
            return
        self._entries[reply.id] = reply  # counted before the store's await: the bound holds
        try:
            kept = await self.store.hand_over(reply)
        except BaseException:
            self._entries.pop(reply.id, None)
            raise
        if not kept:
            self._entries.pop(reply.id, None)
            return
        self._schedule.add(reply, asyncio.get_running_loop().time())

    async def _overflow(self, reply: PendingReply) -> None:
        metrics.outbox_overflow_total.inc()
        if await self.store.park(reply):
            log.warning("outbox full (OUTBOX_MAX): reply left in the store for any instance with room",
                        action="outbox_put", interaction_id=reply.id, depth=len(self._entries), result="parked")
            return
        log.error("outbox full (OUTBOX_MAX): reply dropped", action="outbox_put", interaction_id=reply.id,
                  depth=len(self._entries), result="failed")
        metrics.outbox_replies_total.labels(result="failed").inc()
        await self._finish(reply, "failed")

    # --- the senders ----------------------------------------------------------------------------
    async def _send(self, index: int) -> None:
        while True:
            reply = await self._schedule.next_due()
            if reply.id not in self._entries:
                continue
            try:
                await self._attempt(reply)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug must not kill a sender or lose the outcome
                log.error("reply delivery crashed", action="router_post", interaction_id=reply.id,
                          error_type=type(exc).__name__, exc_info=exc)
                metrics.outbox_replies_total.labels(result="failed").inc()
                await self._finish(reply, "failed")

    async def _attempt(self, reply: PendingReply) -> None:
        loop = asyncio.get_running_loop()
        if not self.store.holds(reply.id):  # PostgreSQL: the lease went to another instance
            self._entries.pop(reply.id, None)
            log.warning("reply dropped: another instance holds its interaction now", action="router_post",
                        interaction_id=reply.id, attempts=reply.attempts, result="lost")
            return
        if reply.interaction.age_s > self.max_age_s:
            log.info("reply expired before it could be posted", action="router_post", interaction_id=reply.id,
                     attempts=reply.attempts, result="expired")
            metrics.outbox_replies_total.labels(result="expired").inc()
            await self._finish(reply, "expired")
            return
        if reply.first_attempt is None:
            reply.first_attempt = loop.time()
            reply.headers = self.router.headers(reply.id, reply.interaction.request_id)
        else:
            metrics.router_posts_total.labels(result="retried").inc()
        reply.attempts += 1
        with tracing.continued(reply.trace), tracing.span(
                "router.post_reply", attributes={"interaction.id": reply.id, "router.attempt": reply.attempts}) as span:
            attempt = await self.router.attempt(reply.body, reply.headers, reply.attempts)
            tracing.set_attributes({"router.result": attempt.result}, span)
        if attempt.result == "delivered":
            await self._delivered(reply, attempt)
            return
        remaining = self.router.retry_max_s - (loop.time() - reply.first_attempt)
        if attempt.result == "refused" or remaining <= 0:
            self._given_up(reply, attempt)
            await self._finish(reply, "failed")
            return
        wait = min(self.router.wait_before(reply.attempts, attempt.retry_after), remaining)
        expires_in = self.max_age_s - reply.interaction.age_s  # not kept past its age: expired then
        self._schedule.add(reply, loop.time() + max(0.0, min(wait, expires_in + 0.001)))

    async def _delivered(self, reply: PendingReply, attempt: Attempt) -> None:
        metrics.router_posts_total.labels(result="delivered").inc()
        metrics.outbox_replies_total.labels(result="delivered").inc()
        self._observe_latency(reply)
        if reply.attempts > 1:
            log.info("reply delivered after retries", action="router_post", interaction_id=reply.id,
                     status=attempt.status, attempts=reply.attempts, result="delivered")
        if reply.exchange is not None:  # only a delivered reply is history (§3 step 10)
            try:
                await self.remember(reply.interaction, reply.exchange)
            except Exception as exc:  # noqa: BLE001 - the reply was delivered: its outcome stands
                log.warning("delivered reply not remembered", action="remember", interaction_id=reply.id,
                            error=f"{type(exc).__name__}: {exc}"[:200])
        await self._finish(reply, reply.outcome)

    def _given_up(self, reply: PendingReply, attempt: Attempt) -> None:
        metrics.router_posts_total.labels(result="failed").inc()
        metrics.outbox_replies_total.labels(result="failed").inc()
        elapsed = self._observe_latency(reply)
        log.error("reply not delivered to the router", action="router_post", interaction_id=reply.id,
                  request_id=reply.headers.get("X-Request-ID"), status=attempt.status,
                  error=attempt.error, attempts=reply.attempts, result="failed",
                  execution_time_ms=round(elapsed * 1000, 1))

    def _observe_latency(self, reply: PendingReply) -> float:
        """From the first attempt to the last one's answer (ai_router_post_latency_seconds)."""
        elapsed = asyncio.get_running_loop().time() - reply.first_attempt if reply.first_attempt is not None else 0.0
        metrics.router_post_latency.observe(elapsed)
        return elapsed

    async def _finish(self, reply: PendingReply, outcome: str) -> None:
        """The interaction's one outcome: written (PostgreSQL: the row `done`), counted, logged."""
        self._entries.pop(reply.id, None)
        try:
            await self.queue.finish(reply.interaction, outcome)
        finally:
            record_outcome(reply.interaction, outcome, reply.trigger, reply.started)

    # --- PostgreSQL mode: undelivered replies no live instance holds -----------------------------
    async def _take_over(self) -> None:
        while True:
            room = self.capacity - len(self._entries)
            if self._taking and room > 0:
                try:
                    taken = await self.store.take_over(room)
                except Exception as exc:  # a bug must not stop the takeovers for good
                    log.error("taking over replies failed", action="outbox_takeover", result="error", exc_info=exc)
                    taken = []
                for reply in taken:
                    if reply.id in self._entries:
                        continue
                    reply.since, reply.started = time.monotonic(), time.perf_counter()
                    self._entries[reply.id] = reply
                    self._schedule.add(reply, asyncio.get_running_loop().time())
            await asyncio.sleep(self.poll_s)
