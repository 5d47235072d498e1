"""Per-API-key request rate limit of the OpenAI-compatible API (COMPLETIONS_RATE_PER_MIN).

A token bucket per key: up to `rate_per_min` requests in a burst, refilled at `rate_per_min`
per minute. Keys are identified by `key_id()`, a hash: the raw key is never stored or logged.
Only authenticated keys reach the limiter, so the table holds at most one bucket per entry of
VALID_API_KEYS. `rate_per_min == 0` means unlimited.

`KeyLimits` is what the API asks; three implement it, chosen in runtime.py: `KeyRateLimiter` here
(one process), `PgKeyLimits` and `RedisKeyLimits` (completions/shared_limits.py: the same bucket
shared by every replica, so N replicas never allow a key N times its rate).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import Callable, Protocol

from observability import metrics


def key_id(key: str) -> str:
    """A short, stable, non-reversible identifier of an API key (for buckets and logs)."""
    return hashlib.sha256(b"openai-api-key:" + key.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after_s: int = 0  # whole seconds until one request is allowed again (when refused)


class KeyLimits(Protocol):
    rate_per_min: int

    async def take(self, key: str) -> Decision:
        """Take one request from this key's bucket (atomically), or refuse with the time to wait."""
        ...


def refused(rate_per_min: int, tokens: float) -> Decision:
    """The refusal for a bucket holding `tokens` (< 1): whole seconds until one request is allowed."""
    metrics.rate_limited_total.labels(scope="api_key").inc()
    wait = max(1, math.ceil((1.0 - tokens) / (rate_per_min / 60.0)))
    return Decision(False, rate_per_min, 0, wait)


class KeyRateLimiter:
    def __init__(self, rate_per_min: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_min = rate_per_min
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key id → (tokens, updated_at)

    async def take(self, key: str) -> Decision:
        return self.check(key)

    def check(self, key: str) -> Decision:
        """Take one request from this key's bucket, or refuse with the time to wait."""
        if self.rate_per_min <= 0:
            return Decision(True, 0, 0)
        now = self._clock()
        per_second = self.rate_per_min / 60.0
        tokens, updated = self._buckets.get(key, (float(self.rate_per_min), now))
        tokens = min(float(self.rate_per_min), tokens + (now - updated) * per_second)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return Decision(True, self.rate_per_min, int(tokens - 1.0))
        self._buckets[key] = (tokens, now)
        return refused(self.rate_per_min, tokens)
