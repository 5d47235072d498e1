"""A fixed set of owned worker tasks draining the interaction queue.

Each accepted interaction ends in exactly one outcome, counted and logged here, or, when it has a
reply to post, by the reply outbox (interactions/outbox/) once that is done with it: a worker
hands the reply over and goes on with the next interaction, so a router outage never holds a
worker. `drain()` lets
queued and in-flight interactions finish for up to the grace period; `stop()` cancels what is
left. Interactions that a memory queue still holds at that point end as `failed` (logged); a
durable queue keeps them for another instance.
"""

from __future__ import annotations

import asyncio
import time

from interactions import spans
from interactions.model import Interaction
from interactions.outbox.outbox import Outbox
from interactions.outcomes import record_outcome
from observability import tracing
from observability.logs import get_logger, request_id_var
from interactions.queue.base import InteractionQueue
from interactions.reply import ReplyPipeline

log = get_logger(__name__)


class WorkerPool:
    def __init__(self, queue: InteractionQueue, pipeline: ReplyPipeline, outbox: Outbox, count: int) -> None:
        self.queue = queue
        self.pipeline = pipeline
        self.outbox = outbox
        self.count = count
        self._tasks: list[asyncio.Task[None]] = []
        self._inflight: dict[str, Interaction] = {}

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._work(i), name=f"interaction-worker-{i}") for i in range(self.count)]

    async def _work(self, index: int) -> None:
        while True:
            interaction = await self.queue.claim()
            self._inflight[interaction.id] = interaction
            try:
                await self._handle(interaction)
            finally:
                self._inflight.pop(interaction.id, None)

    async def _handle(self, interaction: Interaction) -> None:
        token = request_id_var.set(interaction.request_id)
        started = time.perf_counter()
        outcome, trigger = "failed", "none"
        reply = None
        with spans.processing(interaction) as span:
            try:
                outcome, trigger, reply = await self.pipeline.process(interaction)
                if reply is not None:
                    reply.started = started
                    reply.trace = tracing.carrier()  # the post continues this trace (interactions/outbox)
                    await self.outbox.put(reply)  # its outcome is recorded when the outbox is done with it
            except asyncio.CancelledError:
                if not self.queue.durable:
                    record_outcome(interaction, "failed", trigger, started)
                raise
            except Exception as exc:  # a bug must not kill the worker or lose the outcome
                outcome, reply = "failed", None
                log.error("interaction crashed", action="process_interaction", interaction_id=interaction.id,
                          error_type=type(exc).__name__, exc_info=exc)
                tracing.error(span, type(exc).__name__)
            finally:
                request_id_var.reset(token)
            tracing.set_attributes({"interaction.outcome": outcome, "interaction.trigger": trigger}, span)
        if reply is not None:
            return
        await self.queue.finish(interaction, outcome)
        record_outcome(interaction, outcome, trigger, started)

    async def drain(self, grace_s: float, cut_short: asyncio.Event | None = None) -> bool:
        """Wait until the queue is empty and nothing is in flight, up to `grace_s` or until
        `cut_short` is set. True if drained.

        A durable queue is shared with other instances: this one stops claiming and only finishes
        what it holds; what is still queued stays for the others."""
        deadline = time.monotonic() + grace_s
        durable = self.queue.durable
        self.queue.stop_claiming()
        while (not durable and self.queue.depth()) or self._inflight:
            if time.monotonic() >= deadline or (cut_short is not None and cut_short.is_set()):
                return False
            await asyncio.sleep(0.02)
        return True

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                log.error("worker failed", action="worker_stop", error=repr(result))
        self._tasks = []
        if not self.queue.durable:
            for interaction in self.queue.take_all():
                log.error("interaction not processed before shutdown", action="shutdown_drain",
                          interaction_id=interaction.id, result="failed")
                record_outcome(interaction, "failed", "none")
