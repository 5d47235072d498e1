"""A small circuit breaker per provider (§5).

closed → open after `failure_threshold` consecutive failures; open calls fail at once with
ProviderUnavailable; after `reset_s` one probe is let through (half_open): success closes,
failure re-opens and restarts the timer. Not thread-safe: use it from one event loop.

    async with breaker.guard():
        result = await provider.chat(request)

Streaming callers that cannot use one `with` block: `ticket = breaker.before_call()`, then exactly
one of `record_success(ticket)`, `record_failure(ticket)` or `release(ticket)` (neutral outcome).
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable

from llm.types import ProviderError, ProviderUnavailable
from observability import metrics

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

Transition = Callable[[str, str, str], None]


class CircuitBreaker:
    def __init__(self, name: str, failure_threshold: int = 5, reset_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic,
                 on_transition: Transition | None = None) -> None:
        if failure_threshold < 1 or reset_s <= 0:
            raise ValueError("failure_threshold must be >= 1 and reset_s > 0")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_s = reset_s
        self._clock = clock
        self._on_transition = on_transition
        self._state = CLOSED
        self._failures = 0  # consecutive
        self._opened_at = 0.0
        self._probe = 0  # ticket of the half-open probe in flight, 0 when none
        self._tickets = 0
        metrics.track_breaker(self)

    @property
    def state(self) -> str:
        if self._state == OPEN and self._clock() - self._opened_at >= self.reset_s:
            self._transition(HALF_OPEN)
        return self._state

    @property
    def available(self) -> bool:
        """Would a call be let through now? (Does not claim the half-open probe.)"""
        state = self.state
        return state == CLOSED or (state == HALF_OPEN and not self._probe)

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def before_call(self) -> int:
        """Admit a call or raise ProviderUnavailable. Returns a ticket (non-zero for the probe)."""
        state = self.state
        if state == CLOSED:
            return 0
        if state == HALF_OPEN and not self._probe:
            self._tickets += 1
            self._probe = self._tickets
            return self._probe
        raise ProviderUnavailable(f"circuit breaker for {self.name} is {state}", provider=self.name)

    def record_success(self, ticket: int = 0) -> None:
        self._failures = 0
        if self._state != CLOSED:
            self._transition(CLOSED)

    def record_failure(self, ticket: int = 0) -> None:
        self._failures += 1
        if self._state == HALF_OPEN or (self._state == CLOSED and self._failures >= self.failure_threshold):
            self._opened_at = self._clock()
            self._transition(OPEN)

    def release(self, ticket: int = 0) -> None:
        """A neutral outcome (bad request, cancellation): only frees the probe slot."""
        if ticket and ticket == self._probe:
            self._probe = 0

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        ticket = self.before_call()
        try:
            yield
        except asyncio.CancelledError:
            self.release(ticket)
            raise
        except ProviderError as exc:
            if exc.counts_for_breaker:
                self.record_failure(ticket)
            else:
                self.release(ticket)
            raise
        except Exception:
            self.record_failure(ticket)
            raise
        except BaseException:
            self.release(ticket)
            raise
        else:
            self.record_success(ticket)

    def _transition(self, new: str) -> None:
        old, self._state = self._state, new
        self._probe = 0
        metrics.record_breaker_transition(self.name, new)
        if self._on_transition is not None:
            self._on_transition(self.name, old, new)
