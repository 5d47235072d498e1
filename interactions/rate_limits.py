"""Reply rate limits (§3.2): one reply per user per cooldown, N replies per channel per minute.

`ReplyLimits` is what the reply pipeline asks; three implement it, chosen in runtime.py:
`ReplyRateLimiter` here (one process), `PgReplyLimits` and `RedisReplyLimits`
(interactions/shared_limits.py: shared by every replica, so N replicas never allow N times the limits).

`ReplyRateLimiter.try_acquire` checks and reserves in one step, so concurrent workers cannot both pass.
Memory follows activity, not history: the maps are kept in time order (an entry moves to the end
when it is touched), and entries that can no longer refuse anything — a user whose cooldown is
over, a channel without a reply in the last minute — are dropped from the front as time passes.
`max_keys` is a hard cap on top.

Entries are small because there can be one per active channel and user: keys are the parts joined
with NUL (no text field may contain it, web/models.py), a channel's window is a tuple of times.
"""

from __future__ import annotations

import time
from typing import Callable, Protocol

from observability import metrics

WINDOW_S = 60.0


class ReplyLimits(Protocol):
    async def reserve(self, platform: str, entity_id: str, user_id: str, user_cooldown_s: float,
                      channel_per_min: int) -> str | None:
        """Check and reserve a reply slot in one atomic step: None when allowed, else the scope that
        refused (`user` | `channel`, counted in ai_rate_limited_total). A refusal reserves nothing."""
        ...


class ReplyRateLimiter:
    def __init__(self, user_cooldown_s: float, channel_per_min: int, max_keys: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.user_cooldown_s = user_cooldown_s
        self.channel_per_min = channel_per_min
        self.max_keys = max_keys
        self._clock = clock
        self._longest_cooldown = user_cooldown_s  # per-community cooldowns may be longer
        self._last_user_reply: dict[str, float] = {}  # platform NUL entity NUL user → last reply
        self._channel_replies: dict[str, tuple[float, ...]] = {}  # platform NUL entity → reply times

    async def reserve(self, platform: str, entity_id: str, user_id: str, user_cooldown_s: float,
                      channel_per_min: int) -> str | None:
        return self.try_acquire(platform, entity_id, user_id, user_cooldown_s, channel_per_min)

    def try_acquire(self, platform: str, entity_id: str, user_id: str,
                    user_cooldown_s: float | None = None, channel_per_min: int | None = None) -> str | None:
        """Reserve a reply slot. Returns None when allowed, else the scope that refused: user | channel."""
        cooldown = self.user_cooldown_s if user_cooldown_s is None else user_cooldown_s
        per_min = self.channel_per_min if channel_per_min is None else channel_per_min
        self._longest_cooldown = max(self._longest_cooldown, cooldown)
        now = self._clock()
        self._prune(now)
        channel_key = f"{platform}\x00{entity_id}"
        user_key = f"{channel_key}\x00{user_id}"
        last = self._last_user_reply.get(user_key)
        if last is not None and now - last < cooldown:
            metrics.rate_limited_total.labels(scope="user").inc()
            return "user"
        window = self._channel_replies.pop(channel_key, ())
        start = 0
        while start < len(window) and now - window[start] >= WINDOW_S:
            start += 1
        if start:
            window = window[start:]
        if len(window) >= per_min:
            self._channel_replies[channel_key] = window
            metrics.rate_limited_total.labels(scope="channel").inc()
            return "channel"
        self._channel_replies[channel_key] = window + (now,)  # re-inserted: the map stays in time order
        self._last_user_reply.pop(user_key, None)
        self._last_user_reply[user_key] = now
        return None

    def _prune(self, now: float) -> None:
        users = self._last_user_reply
        while users:
            oldest = next(iter(users))
            if now - users[oldest] < self._longest_cooldown and len(users) <= self.max_keys:
                break
            del users[oldest]
        channels = self._channel_replies
        while channels:
            oldest = next(iter(channels))
            window = channels[oldest]
            if window and now - window[-1] < WINDOW_S and len(channels) <= self.max_keys:
                break
            del channels[oldest]

    def __len__(self) -> int:
        return len(self._last_user_reply) + len(self._channel_replies)
