"""Reply rate limits (§3.2): one reply per user per cooldown, N replies per channel per minute.

`try_acquire` checks and reserves in one step, so concurrent workers cannot both pass.
Memory is bounded: both maps are LRU caches whose entries age out on their own.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable

from cachetools import LRUCache

from services import metrics


class ReplyRateLimiter:
    def __init__(self, user_cooldown_s: float, channel_per_min: int, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.user_cooldown_s = user_cooldown_s
        self.channel_per_min = channel_per_min
        self._clock = clock
        self._last_user_reply: LRUCache[tuple[str, str, str], float] = LRUCache(max_keys)
        self._channel_replies: LRUCache[tuple[str, str], deque[float]] = LRUCache(max_keys)

    def try_acquire(self, platform: str, entity_id: str, user_id: str,
                    user_cooldown_s: float | None = None, channel_per_min: int | None = None) -> str | None:
        """Reserve a reply slot. Returns None when allowed, else the scope that refused: user | channel."""
        cooldown = self.user_cooldown_s if user_cooldown_s is None else user_cooldown_s
        per_min = self.channel_per_min if channel_per_min is None else channel_per_min
        now = self._clock()
        user_key = (platform, entity_id, user_id)
        last = self._last_user_reply.get(user_key)
        if last is not None and now - last < cooldown:
            metrics.rate_limited_total.labels(scope="user").inc()
            return "user"
        channel_key = (platform, entity_id)
        window = self._channel_replies.get(channel_key)
        if window is None:
            window = deque()
            self._channel_replies[channel_key] = window
        while window and now - window[0] >= 60.0:
            window.popleft()
        if len(window) >= per_min:
            metrics.rate_limited_total.labels(scope="channel").inc()
            return "channel"
        window.append(now)
        self._last_user_reply[user_key] = now
        return None
