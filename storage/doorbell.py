"""Wake idle workers: `ring(n)` wakes up to n waiters, `ring_all()` every one of them."""

from __future__ import annotations

import asyncio
from collections import deque


class Doorbell:
    def __init__(self) -> None:
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._waiters if not f.done())

    async def wait(self, timeout: float) -> bool:
        """Sleep until rung or `timeout`; True when rung."""
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

    def ring_all(self) -> None:
        self.ring(len(self._waiters))
