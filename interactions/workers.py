"""A fixed set of owned worker tasks draining the interaction queue.

Each accepted interaction ends in exactly one outcome, counted and logged here. `drain()` lets
queued and in-flight interactions finish for up to the grace period; `stop()` cancels what is
left. Interactions that a memory queue still holds at that point end as `failed` (logged); a
durable queue keeps them for another instance.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from observability import metrics
from interactions.model import Interaction
from observability.logs import get_logger, hash_user, request_id_var
from interactions.queue.base import InteractionQueue
from interactions.reply import ReplyPipeline

log = get_logger(__name__)


_outcome_children: dict[tuple[str, str], tuple[Any, Any]] = {}


def _children(outcome: str, trigger: str) -> tuple[Any, Any]:
    """The two metric series of one (outcome, trigger), looked up once (labels() is a dict build)."""
    children = _outcome_children.get((outcome, trigger))
    if children is None:
        children = (metrics.interactions_total.labels(outcome=outcome, trigger=trigger),
                    metrics.interaction_duration.labels(outcome=outcome))
        _outcome_children[(outcome, trigger)] = children
    return children


def record_outcome(interaction: Interaction, outcome: str, trigger: str, started: float | None = None) -> None:
    req = interaction.request
    counter, duration = _children(outcome, trigger)
    counter.inc()
    duration.observe(max(0.0, interaction.age_s))
    # Most chat is ignored: those lines go to debug (the metrics count them), the rest to info.
    # The line's fields (a user hash among them) are computed only when it is written.
    if outcome == "ignored" and not log.is_enabled_for(logging.DEBUG):
        return
    (log.debug if outcome == "ignored" else log.info)(
        "interaction finished", action="process_interaction", result=outcome, trigger=trigger,
        interaction_id=interaction.id, request_id=interaction.request_id, platform=req.platform,
        community=req.community_id, user=hash_user(req.user_id),
        execution_time_ms=None if started is None else round((time.perf_counter() - started) * 1000, 1),
    )


class WorkerPool:
    def __init__(self, queue: InteractionQueue, pipeline: ReplyPipeline, count: int) -> None:
        self.queue = queue
        self.pipeline = pipeline
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
        try:
            outcome, trigger = await self.pipeline.process(interaction)
        except asyncio.CancelledError:
            if not self.queue.durable:
                record_outcome(interaction, "failed", trigger, started)
            raise
        except Exception as exc:  # a bug must not kill the worker or lose the outcome
            log.error("interaction crashed", action="process_interaction", interaction_id=interaction.id,
                      error_type=type(exc).__name__, exc_info=exc)
        finally:
            request_id_var.reset(token)
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
