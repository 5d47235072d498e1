"""The circuit breaker (§5), driven by a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from llm.types import ModelNotFound, ProviderError, ProviderUnavailable
from observability import metrics
from llm.breaker import CircuitBreaker, ModelBreakers
from tests.llm.conftest import Clock
from tests.waiting import async_wait_until


@pytest.fixture
def transitions() -> list[tuple[str, str, str]]:
    return []


@pytest.fixture
def breaker(clock: Clock, transitions: list) -> CircuitBreaker:
    return CircuitBreaker("test", failure_threshold=3, reset_s=30, clock=clock,
                          on_transition=lambda *t: transitions.append(t))


class Upstream:
    """A stand-in provider call that counts how often it was really reached."""

    def __init__(self) -> None:
        self.calls = 0

    async def call(self, breaker: CircuitBreaker, error: BaseException | None = None) -> str:
        async with breaker.guard():
            self.calls += 1
            if error is not None:
                raise error
            return "ok"


def boom() -> ProviderError:
    return ProviderError("500", provider="test", status=500, kind="bad_status")


async def trip(breaker: CircuitBreaker, upstream: Upstream, n: int = 3) -> None:
    for _ in range(n):
        with pytest.raises(ProviderError):
            await upstream.call(breaker, boom())


async def test_opens_after_threshold_consecutive_failures(breaker, transitions):
    upstream = Upstream()
    await trip(breaker, upstream, 2)
    assert breaker.state == "closed" and breaker.available
    await trip(breaker, upstream, 1)
    assert breaker.state == "open" and not breaker.available
    assert transitions == [("test", "closed", "open")]


async def test_success_resets_the_consecutive_count(breaker):
    upstream = Upstream()
    await trip(breaker, upstream, 2)
    assert await upstream.call(breaker) == "ok"
    await trip(breaker, upstream, 2)
    assert breaker.state == "closed"


async def test_open_fails_fast_without_calling(breaker, clock):
    upstream = Upstream()
    await trip(breaker, upstream)
    clock.now += 29.9
    with pytest.raises(ProviderUnavailable) as info:
        await upstream.call(breaker)
    assert upstream.calls == 3
    assert info.value.counts_for_breaker is False and info.value.provider == "test"


async def test_half_open_lets_exactly_one_probe_through(breaker, clock, transitions):
    upstream = Upstream()
    await trip(breaker, upstream)
    clock.now += 30
    assert breaker.state == "half_open" and breaker.available
    release = asyncio.Event()

    async def slow_probe() -> str:
        async with breaker.guard():
            upstream.calls += 1
            await release.wait()
            return "probe ok"

    probe = asyncio.create_task(slow_probe())
    await async_wait_until(lambda: upstream.calls == 4, message="the probe to be inside the guard")
    assert not breaker.available
    others = await asyncio.gather(*(upstream.call(breaker) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, ProviderUnavailable) for r in others)
    assert upstream.calls == 4
    release.set()
    assert await probe == "probe ok"
    assert breaker.state == "closed"
    assert transitions[-2:] == [("test", "open", "half_open"), ("test", "half_open", "closed")]
    assert await upstream.call(breaker) == "ok"


async def test_probe_failure_reopens_and_restarts_the_timer(breaker, clock, transitions):
    upstream = Upstream()
    await trip(breaker, upstream)
    clock.now += 30
    with pytest.raises(TimeoutError):
        await upstream.call(breaker, TimeoutError())
    assert breaker.state == "open"
    assert transitions[-1] == ("test", "half_open", "open")
    clock.now += 29
    assert breaker.state == "open"
    with pytest.raises(ProviderUnavailable):
        await upstream.call(breaker)
    clock.now += 1
    assert breaker.state == "half_open"


async def test_request_errors_are_neutral(breaker, clock):
    upstream = Upstream()
    bad_request = ProviderError("400", provider="test", status=400, counts_for_breaker=False, kind="request")
    for error in (bad_request, ModelNotFound("nope", provider="test", model="x")) * 3:
        with pytest.raises(ProviderError):
            await upstream.call(breaker, error)
    assert breaker.state == "closed" and breaker.consecutive_failures == 0
    await trip(breaker, upstream)
    clock.now += 30
    with pytest.raises(ProviderError):  # a neutral probe only frees the slot
        await upstream.call(breaker, bad_request)
    assert breaker.state == "half_open" and breaker.available
    assert await upstream.call(breaker) == "ok"
    assert breaker.state == "closed"


async def test_cancellation_is_neutral(breaker, clock):
    upstream = Upstream()
    for _ in range(5):
        with pytest.raises(asyncio.CancelledError):
            await upstream.call(breaker, asyncio.CancelledError())
    assert breaker.state == "closed"
    await trip(breaker, upstream)
    clock.now += 30
    started = asyncio.Event()

    async def probe() -> None:
        async with breaker.guard():
            started.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(probe())
    await started.wait()
    assert not breaker.available
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state == "half_open" and breaker.available


async def test_timeouts_and_other_exceptions_count(breaker):
    upstream = Upstream()
    for error in (asyncio.TimeoutError(), RuntimeError("x"), ValueError("garbage")):
        with pytest.raises(Exception):
            await upstream.call(breaker, error)
    assert breaker.state == "open"


async def test_manual_api_for_streaming_callers(breaker, clock):
    for _ in range(3):
        assert breaker.before_call() == 0
        breaker.record_failure()
    with pytest.raises(ProviderUnavailable):
        breaker.before_call()
    clock.now += 30
    ticket = breaker.before_call()
    assert ticket and not breaker.available
    with pytest.raises(ProviderUnavailable):
        breaker.before_call()
    breaker.release(ticket)
    ticket = breaker.before_call()
    breaker.record_success(ticket)
    assert breaker.state == "closed"


async def test_transitions_are_exported_as_metrics(clock):
    breaker = CircuitBreaker("metrics-test", failure_threshold=1, reset_s=5, clock=clock)

    def sample(name: str, **labels: str) -> float | None:
        return metrics.REGISTRY.get_sample_value(name, {"provider": "metrics-test", **labels})

    assert sample("ai_circuit_breaker_state") == 0
    breaker.record_failure()
    assert sample("ai_circuit_breaker_state") == 2
    assert sample("ai_circuit_breaker_transitions_total", to="open") == 1
    clock.now += 5
    assert breaker.state == "half_open"
    assert sample("ai_circuit_breaker_state") == 1


async def test_model_breakers_are_bounded_and_hold_only_troubled_models(breaker):
    models = ModelBreakers(limit=2)
    rate_limited = ProviderError("429", provider="test", status=429, kind="bad_status", scope="model")

    async def call(model: str, error: BaseException | None = None) -> None:
        async with breaker.guard(), models.guard(breaker, model):
            if error is not None:
                raise error

    for model in ("a", "b", "c"):
        with pytest.raises(ProviderError):
            await call(model, rate_limited)
    assert [m for m in "abc" if models.get(breaker, m)] == ["b", "c"], "the oldest goes first"
    assert breaker.state == "closed" and breaker.consecutive_failures == 0
    await call("b")
    assert models.get(breaker, "b") is None, "a model that answers again is no longer held"
    with pytest.raises(ProviderError):
        await call("c", boom())  # an endpoint failure: the endpoint's breaker counts it, not the model's
    assert breaker.consecutive_failures == 1 and models.get(breaker, "c").consecutive_failures == 1
