"""Replies ordered by the time of their next attempt; the outbox's senders wait for the earliest due.

A reply waiting for its next attempt (backoff, `Retry-After`) sits here and holds no sender.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from typing import Generic, TypeVar

T = TypeVar("T")


class Schedule(Generic[T]):
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, T]] = []
        self._order = itertools.count()  # ties in arrival order; items are never compared
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, item: T, due: float) -> None:
        """Due at `due` (event-loop time); wakes the waiting senders."""
        heapq.heappush(self._heap, (due, next(self._order), item))
        self._changed.set()

    async def next_due(self) -> T:
        """Wait for the earliest item to be due and take it."""
        loop = asyncio.get_running_loop()
        while True:
            wait = None
            if self._heap:
                wait = self._heap[0][0] - loop.time()
                if wait <= 0:
                    return heapq.heappop(self._heap)[2]
            self._changed.clear()  # no await since the check above: nothing added in between is missed
            try:
                async with asyncio.timeout(wait):
                    await self._changed.wait()
            except TimeoutError:
                pass
