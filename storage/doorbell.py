"""Wake the queue's claimer: `ring()` wakes a waiter, or, when nobody waits, the next `wait()` returns at once.

A ring is never lost: the claimer may be busy with a claim when a row is committed (by this instance,
or announced by another one's NOTIFY), and that claim may not have seen the new row; the kept ring
makes the claimer look again instead of sleeping until the next poll.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Doorbell:
    def __init__(self) -> None:
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._kept = False

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._waiters if not f.done())

    async def wait(self, timeout: float) -> bool:
        """Sleep until rung or `timeout`; True when rung (or rung since the last wait)."""
        if self._kept:
            self._kept = False
            return True
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            async with asyncio.timeout(timeout):
                await future
            return True
        except TimeoutError:
            return False
        finally:
            try:
                self._waiters.remove(future)
            except ValueError:
                pass

    def ring(self, n: int = 1) -> None:
        woken = 0
        for future in list(self._waiters):
            if woken >= n:
                break
            if not future.done():
                future.set_result(None)
                woken += 1
        if not woken:
            self._kept = True

    def ring_all(self) -> None:
        self.ring(max(1, len(self._waiters)))
