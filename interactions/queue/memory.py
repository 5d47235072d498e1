"""The in-memory interaction queue (an `InteractionQueue`, interactions/queue/base.py): bounded,
deduplicating, one process. With REDIS_URL its dedupe keys are shared with every replica
(interactions/queue/shared_dedupe.py); this process's own window stays the fallback."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING, Callable

from interactions.model import Interaction, dedupe_key
from interactions.queue.base import Enqueued, QueueFull
from interactions.queue.dedupe import DedupeWindow

if TYPE_CHECKING:  # redis is imported only with REDIS_URL
    from interactions.queue.shared_dedupe import SharedDedupe


class MemoryQueue:
    """Interactions in arrival order, and the idle workers waiting for them.

    A burst of interactions wakes one worker, not one each: while a woken worker has not run yet,
    further arrivals wake nobody. A worker that takes an interaction and leaves others behind wakes
    the next one, so interactions that wait on the LLM still spread over the workers (one more loop
    turn per worker). Interactions that end at once (most chat: no trigger) are then taken one after
    the other by the same running worker instead of waking a worker each: fewer task switches. The
    most recently idle worker is woken first (its memory is the likeliest to be still in the caches).
    """

    durable = False

    def __init__(self, maxsize: int, dedupe_window_s: float, dedupe_max_keys: int = 200_000,
                 clock: Callable[[], float] = time.monotonic, shared: SharedDedupe | None = None) -> None:
        self._maxsize = maxsize
        self._items: deque[Interaction] = deque()
        self._idle: list[asyncio.Future[None]] = []  # waiting workers, the most recent last
        self._waking = 0  # workers woken that have not run yet
        # key → first interaction id, for DEDUPE_WINDOW_S, at most dedupe_max_keys (interactions/queue/dedupe.py)
        self._seen: DedupeWindow | None = (
            DedupeWindow(dedupe_window_s, dedupe_max_keys, clock) if dedupe_window_s > 0 else None
        )
        self._shared = shared if self._seen is not None else None  # Redis: claimed there first

    async def enqueue(self, interaction: Interaction) -> Enqueued:
        key = dedupe_key(interaction.request)
        if self._seen is not None:
            first_id = self._seen.get(key)
            if first_id is None and self._shared is not None:
                first_id = await self._shared.claim(key, interaction.id)  # None: ours, or Redis unavailable
                if first_id is not None:
                    self._seen.add(key, first_id)
            if first_id is not None:
                return Enqueued(first_id, duplicate=True)
        if len(self._items) >= self._maxsize:
            if self._shared is not None:
                await self._shared.release(key, interaction.id)
            raise QueueFull
        self._items.append(interaction)
        self._pass_wake_on()
        if self._seen is not None:
            self._seen.add(key, interaction.id)
        return Enqueued(interaction.id, duplicate=False)

    def _wake_one(self) -> None:
        idle = self._idle
        while idle:
            waiter = idle.pop()
            if not waiter.done():  # a cancelled worker's waiter is skipped
                waiter.set_result(None)
                self._waking += 1
                return

    async def claim(self) -> Interaction:
        """Wait for the next interaction."""
        items = self._items
        while not items:
            waiter = asyncio.get_running_loop().create_future()
            self._idle.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():  # woken, then cancelled before it ran
                    self._waking -= 1
                    self._pass_wake_on()
                raise
            self._waking -= 1
        interaction = items.popleft()
        self._pass_wake_on()
        return interaction

    def _pass_wake_on(self) -> None:
        """Interactions left and no worker on its way to them: wake the next."""
        if self._items and not self._waking:
            self._wake_one()

    async def finish(self, interaction: Interaction, outcome: str) -> None:
        """Record the final outcome (the durable queue marks its row; memory has nothing to keep)."""

    def depth(self) -> int:
        return len(self._items)

    def stop_claiming(self) -> None:
        """Nothing to do: in memory, draining means processing everything queued."""

    async def reachable(self) -> bool:
        return True

    async def erase_user(self, platform: str, user_id: str) -> int:
        """Drop the queued (not yet claimed) interactions of one user; returns how many."""
        kept = [item for item in self._items
                if not (item.request.platform == platform and item.request.user_id == user_id)]
        dropped = len(self._items) - len(kept)
        self._items.clear()  # in place: waiting claims hold this deque
        self._items.extend(kept)
        return dropped

    def take_all(self) -> list[Interaction]:
        """Empty the queue (used at shutdown for what could not be processed in time)."""
        items = list(self._items)
        self._items.clear()
        return items

    async def aclose(self) -> None:
        return None
