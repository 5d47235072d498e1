"""A small circuit breaker per provider (§5).

closed → open after `failure_threshold` consecutive failures; open calls fail at once with
ProviderUnavailable; after `reset_s` one probe is let through (half_open): success closes,
failure re-opens and restarts the timer. Not thread-safe: use it from one event loop.

    async with breaker.guard():
        result = await provider.chat(request)

Streaming callers that cannot use one `with` block: `ticket = breaker.before_call()`, then exactly
one of `record_success(ticket)`, `record_failure(ticket)` or `release(ticket)` (neutral outcome).

A provider's breaker counts failures of its endpoint only (`scope == "endpoint"`: connection,
timeout, 5xx). A failure that concerns one model (its quota or rate limit: `scope == "model"`)
counts in that model's own breaker (`ModelBreakers`), so it never closes the provider to its
other models (§5).
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable

from llm.types import ENDPOINT, MODEL, ProviderError, ProviderUnavailable
from observability import metrics
from observability.logs import get_logger

log = get_logger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

Transition = Callable[[str, str, str], None]
Counts = Callable[[Exception], bool]


def endpoint_failure(exc: Exception) -> bool:
    """Does this failure count against the provider's endpoint? (A bug of ours does: it is not a
    request's fault.)"""
    if isinstance(exc, ProviderError):
        return exc.counts_for_breaker and exc.scope == ENDPOINT
    return True


def model_failure(exc: Exception) -> bool:
    return isinstance(exc, ProviderError) and exc.counts_for_breaker and exc.scope == MODEL


class CircuitBreaker:
    def __init__(self, name: str, failure_threshold: int = 5, reset_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic,
                 on_transition: Transition | None = None, tracked: bool = True) -> None:
        if failure_threshold < 1 or reset_s <= 0:
            raise ValueError("failure_threshold must be >= 1 and reset_s > 0")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_s = reset_s
        self.clock = clock
        self.tracked = tracked  # False: not exported in the metrics (ModelBreakers' own)
        self._on_transition = on_transition
        self._state = CLOSED
        self._failures = 0  # consecutive
        self._opened_at = 0.0
        self._probe = 0  # ticket of the half-open probe in flight, 0 when none
        self._tickets = 0
        if tracked:
            metrics.track_breaker(self)

    @property
    def state(self) -> str:
        if self._state == OPEN and self.clock() - self._opened_at >= self.reset_s:
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
            self._opened_at = self.clock()
            self._transition(OPEN)

    def release(self, ticket: int = 0) -> None:
        """A neutral outcome (bad request, cancellation): only frees the probe slot."""
        if ticket and ticket == self._probe:
            self._probe = 0

    @asynccontextmanager
    async def guard(self, counts: Counts = endpoint_failure) -> AsyncIterator[None]:
        """`counts` says which failures count here; the others are neutral (`release`)."""
        ticket = self.before_call()
        try:
            yield
        except asyncio.CancelledError:
            self.release(ticket)
            raise
        except Exception as exc:
            if counts(exc):
                self.record_failure(ticket)
            else:
                self.release(ticket)
            raise
        except BaseException:
            self.release(ticket)
            raise
        else:
            self.record_success(ticket)

    def _transition(self, new: str) -> None:
        old, self._state = self._state, new
        self._probe = 0
        if self.tracked:
            metrics.record_breaker_transition(self.name, new)
        if self._on_transition is not None:
            self._on_transition(self.name, old, new)


class ModelBreakers:
    """A breaker per (endpoint, model), for model-scoped failures (a model's quota or rate limit):
    after the endpoint breaker's threshold of them, that model fails fast for its reset time while
    the endpoint's other models go on. Made on a model's first such failure and dropped once it
    closes again, so only troubled models are held; at most `limit` (the oldest goes first).
    Their states are logged, not exported as metrics (model names come from callers)."""

    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self._breakers: dict[tuple[str, str], CircuitBreaker] = {}

    def get(self, endpoint: CircuitBreaker, model: str) -> CircuitBreaker | None:
        return self._breakers.get((endpoint.name, model))

    @asynccontextmanager
    async def guard(self, endpoint: CircuitBreaker, model: str) -> AsyncIterator[None]:
        """Inside the endpoint's own `guard()`: fails fast while this model's breaker is open."""
        key = (endpoint.name, model)
        breaker = self._breakers.get(key)
        if breaker is not None and not breaker.available:
            raise ProviderUnavailable(f"{endpoint.name} model {model!r} is unavailable: its circuit breaker is "
                                      f"{breaker.state} after repeated failures of that model",
                                      provider=endpoint.name, model=model)
        ticket = breaker.before_call() if breaker is not None else 0
        try:
            yield
        except Exception as exc:
            if model_failure(exc):
                if breaker is None:
                    breaker = self._add(key, endpoint)
                breaker.record_failure(ticket)
            elif breaker is not None:
                breaker.release(ticket)
            raise
        except BaseException:
            if breaker is not None:
                breaker.release(ticket)
            raise
        else:
            if breaker is not None:
                breaker.record_success(ticket)
                self._breakers.pop(key, None)

    def _add(self, key: tuple[str, str], endpoint: CircuitBreaker) -> CircuitBreaker:
        while len(self._breakers) >= self.limit:
            self._breakers.pop(next(iter(self._breakers)))
        name, model = key

        def logged(_: str, old: str, new: str) -> None:
            log.warning("model circuit breaker transition", action="breaker_transition", provider=name,
                        model=model, result=new, previous=old)

        breaker = CircuitBreaker(name, endpoint.failure_threshold, endpoint.reset_s, endpoint.clock,
                                 on_transition=logged, tracked=False)
        self._breakers[key] = breaker
        return breaker
