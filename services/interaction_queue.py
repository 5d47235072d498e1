"""The in-memory interaction queue: bounded, deduplicating, with a depth gauge.

The PostgreSQL queue (storage/pg_queue.py) offers the same calls (`durable`, `enqueue`, `claim`,
`finish`, `depth`, `reachable`, `take_all`, `erase_user`, `aclose`), so the workers do not care
which one they drain.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Callable

from api.errors import ApiError
from services.dedupe import DedupeWindow
from services.interaction import Interaction, dedupe_key


class QueueFull(Exception):
    """The queue holds MAX_QUEUE interactions already."""


class StoreUnavailable(ApiError):
    """The durable store cannot be reached: answered 503 with Retry-After, never a false ACK."""

    def __init__(self, message: str = "Durable store unavailable, retry later", retry_after_s: int = 5) -> None:
        super().__init__(503, "store_unavailable", message, headers={"Retry-After": str(retry_after_s)})


@dataclass(frozen=True, slots=True)
class Enqueued:
    interaction_id: str
    duplicate: bool


class MemoryQueue:
    durable = False

    def __init__(self, maxsize: int, dedupe_window_s: float, dedupe_max_keys: int = 200_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._queue: asyncio.Queue[Interaction] = asyncio.Queue(maxsize)
        # key → first interaction id, for DEDUPE_WINDOW_S, at most dedupe_max_keys (services/dedupe.py)
        self._seen: DedupeWindow | None = (
            DedupeWindow(dedupe_window_s, dedupe_max_keys, clock) if dedupe_window_s > 0 else None
        )

    async def enqueue(self, interaction: Interaction) -> Enqueued:
        key = dedupe_key(interaction.request)
        if self._seen is not None:
            first_id = self._seen.get(key)
            if first_id is not None:
                return Enqueued(first_id, duplicate=True)
        try:
            self._queue.put_nowait(interaction)
        except asyncio.QueueFull:
            raise QueueFull from None
        if self._seen is not None:
            self._seen.add(key, interaction.id)
        return Enqueued(interaction.id, duplicate=False)

    async def claim(self) -> Interaction:
        """Wait for the next interaction."""
        return await self._queue.get()

    async def finish(self, interaction: Interaction, outcome: str) -> None:
        """Record the final outcome (the durable queue marks its row; memory has nothing to keep)."""

    def depth(self) -> int:
        return self._queue.qsize()

    async def reachable(self) -> bool:
        return True

    async def erase_user(self, platform: str, user_id: str) -> int:
        """Drop the queued (not yet claimed) interactions of one user; returns how many."""
        kept, dropped = [], 0
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item.request.platform == platform and item.request.user_id == user_id:
                dropped += 1
            else:
                kept.append(item)
        for item in kept:
            self._queue.put_nowait(item)
        return dropped

    def take_all(self) -> list[Interaction]:
        """Empty the queue (used at shutdown for what could not be processed in time)."""
        items = []
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items

    async def aclose(self) -> None:
        return None
